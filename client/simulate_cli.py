"""``huzhu simulate``: run a consortium in virtual time under a scenario and check it.

Exit codes: 0 safe and live; 2 a safety violation (the seed to reproduce it is printed);
3 safe but not live (an honest node made no progress after the faults healed); 1 a usage
error (bad option, unknown scenario, unreadable or invalid scenario file).

``simulate`` is a group that runs a simulation when called without a subcommand; ``simulate
replay TRACE`` re-runs a trace and checks it matches (exit 4 when it does not), ``simulate
sweep`` runs a grid of simulations (sim/sweep.py). A failing run prints one command that
replays it exactly: ``huzhu simulate replay TRACE`` when a trace was written, else every flag
that determines the run.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

import click

from client.cli_common import HuzhuGroup  # usage errors exit 1 here too

EXIT_OK = 0
EXIT_USAGE = 1
EXIT_UNSAFE = 2
EXIT_NOT_LIVE = 3
EXIT_REPLAY_MISMATCH = 4

DEFAULT_VERIFY_COST_MS = 0.06  # about one Ed25519 verification on a current core
DEFAULT_SIGN_COST_MS = 0.03
REAL_CRYPTO_MAX_NODES = 16  # above this, signatures are checked against the run's own table

_DURATION = re.compile(r"^\s*(\d+)\s*(ms|s|m|h)?\s*$")
_UNIT_MS = {None: 1, "ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000}


def parse_duration_ms(text: str) -> int:
    match = _DURATION.match(text)
    if not match:
        raise click.BadParameter(f"{text!r} is not a duration like 500ms, 10s, 2m or 1h")
    value = int(match.group(1)) * _UNIT_MS[match.group(2)]
    if value <= 0:
        raise click.BadParameter("duration must be positive")
    return value


def _usage_error(message: str, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({"error": {"code": "usage", "message": message}}))
    click.echo(f"error: {message}", err=True)
    sys.exit(EXIT_USAGE)


@click.group("simulate", cls=HuzhuGroup, invoke_without_command=True)
@click.option("--nodes", "-n", type=click.IntRange(1, 1024), default=None,
              help="Replicas in the consortium (default 4, or the scenario file's).")
@click.option("--seed", "-s", type=click.IntRange(0, 2**63 - 1), default=1, show_default=True,
              help="Seed of every random choice in the run.")
@click.option("--duration", "duration", default=None,
              help="Virtual duration: 500ms, 10s, 2m (default 10s, or the scenario file's).")
@click.option("--scenario", default=None,
              help="Built-in scenario: normal, crash-primary, equivocating-primary, "
                   "partition-heal, lossy-network, byzantine-mix.")
@click.option("--scenario-file", type=click.Path(dir_okay=False), default=None,
              help="A JSON or YAML scenario (see docs/simulation.md).")
@click.option("--trace", "trace_path", type=click.Path(dir_okay=False, writable=True),
              default=None, help="Write the JSONL trace here (it is hashed either way).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--verify-cost-ms", type=click.FloatRange(0, 1000), default=DEFAULT_VERIFY_COST_MS,
              show_default=True, help="Virtual CPU time charged per signature verification.")
@click.option("--sign-cost-ms", type=click.FloatRange(0, 1000), default=DEFAULT_SIGN_COST_MS,
              show_default=True, help="Virtual CPU time charged per signature.")
@click.option("--crypto", type=click.Choice(["auto", "real", "fast"]), default="auto",
              show_default=True,
              help="real: verify every Ed25519 signature; fast: check signatures against the "
                   f"run's own table; auto: real up to {REAL_CRYPTO_MAX_NODES} nodes.")
@click.option("--keep-going", is_flag=True,
              help="Run to the end after a safety violation instead of stopping at it.")
@click.option("--calibrate-crypto", is_flag=True,
              help="Measure this machine's Ed25519 sign and verify cost and charge that "
                   "instead of --verify-cost-ms/--sign-cost-ms (recorded in the trace).")
@click.pass_context
def simulate(ctx: click.Context, nodes: int | None, seed: int, duration: str | None,
             scenario: str | None, scenario_file: str | None, trace_path: str | None,
             as_json: bool, verify_cost_ms: float, sign_cost_ms: float, crypto: str,
             keep_going: bool, calibrate_crypto: bool) -> None:
    """Simulate a consortium in virtual time and check safety and liveness.

    Exit 0 when safe and live, 2 on a safety violation (with the command that replays it),
    3 when an honest node made no progress after the faults healed, 1 on a usage error.
    Subcommands: replay TRACE (re-run a trace and check it matches), sweep (a grid of runs).
    """
    if ctx.invoked_subcommand is not None:
        return
    from sim.backend import CryptoCost
    from sim.scenarios import (DEFAULT_DURATION_MS, DEFAULT_NODES, ScenarioError, builtin,
                               load_scenario_file)
    from sim.simulation import SimOptions, Simulation

    if scenario is not None and scenario_file is not None:
        _usage_error("give --scenario or --scenario-file, not both", as_json)
    try:
        duration_ms = parse_duration_ms(duration) if duration is not None else None
    except click.BadParameter as exc:
        _usage_error(f"--duration: {exc.message}", as_json)
    try:
        if scenario_file is not None:
            chosen = load_scenario_file(scenario_file, nodes or DEFAULT_NODES,
                                        duration_ms or DEFAULT_DURATION_MS)
            node_count = nodes or chosen.nodes or DEFAULT_NODES
            run_ms = duration_ms or chosen.duration_ms or DEFAULT_DURATION_MS
            if chosen.nodes is None or chosen.duration_ms is None or nodes or duration_ms:
                # scenario files may be written for a size; reload relative to the final one
                chosen = load_scenario_file(scenario_file, node_count, run_ms)
        else:
            node_count = nodes or DEFAULT_NODES
            run_ms = duration_ms or DEFAULT_DURATION_MS
            chosen = builtin(scenario or "normal", node_count, run_ms)
        chosen.validate(node_count, run_ms)
    except ScenarioError as exc:
        _usage_error(str(exc), as_json)

    real_verify = crypto == "real" or (crypto == "auto" and node_count <= REAL_CRYPTO_MAX_NODES)
    verify_us, sign_us = round(verify_cost_ms * 1000), round(sign_cost_ms * 1000)
    if calibrate_crypto:
        from sim.calibrate import measure_ed25519
        measured = measure_ed25519()
        verify_us, sign_us = measured.verify_us, measured.sign_us
    from sim.replay import run_info
    cost = CryptoCost(verify_us=verify_us, sign_us=sign_us, real_verify=real_verify)
    options = SimOptions(crypto=cost, trace_path=trace_path, stop_on_violation=not keep_going,
                         run_info=run_info(chosen, cost, not keep_going))
    try:
        from sim.nodes import NodeBackend
        backend = NodeBackend()
    except ImportError as exc:  # the node package is incomplete in this checkout
        click.echo(f"error: the simulator cannot load the node: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    try:
        result = Simulation(backend, chosen, node_count, seed, run_ms, options).run()
    except OSError as exc:
        _usage_error(f"cannot write the trace: {exc}", as_json)

    report: dict[str, Any] = result.to_json()
    report.update(_run_report(cost, calibrate_crypto))
    if as_json:
        click.echo(json.dumps(report, sort_keys=True))
    else:
        _print_human(report)
    if not result.safe or not result.live:
        command = _reproduce_command(trace_path, seed, node_count, run_ms, scenario_file,
                                     chosen.name, cost, keep_going)
        if not result.safe:
            click.echo(f"SAFETY VIOLATION: reproduce with `{command}`", err=True)
            sys.exit(EXIT_UNSAFE)
        click.echo(f"NO PROGRESS after the faults healed (seed {seed}): reproduce with "
                   f"`{command}`", err=True)
        sys.exit(EXIT_NOT_LIVE)
    sys.exit(EXIT_OK)


def _run_report(cost: Any, calibrated: bool) -> dict[str, Any]:
    """Which CPU/crypto mode ran and the process's peak memory, for the report."""
    import resource
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    mode = ("real Ed25519 verification, its cost also charged as virtual CPU time"
            if cost.real_verify else
            "no Ed25519 verification (signatures checked against the run's own table); "
            "verification charged as virtual CPU time only")
    return {"crypto": "real" if cost.real_verify else "fast", "cpu_model": mode,
            "verify_cost_us": cost.verify_us, "sign_cost_us": cost.sign_us,
            "cpu_calibrated": calibrated, "max_rss_mib": round(peak_kib / 1024, 1)}


def _reproduce_command(trace_path: str | None, seed: int, nodes: int, run_ms: int,
                       scenario_file: str | None, scenario_name: str, cost: Any,
                       keep_going: bool) -> str:
    """One command that re-runs exactly this run."""
    from sim.replay import replay_command, simulate_command
    if trace_path is not None:
        return replay_command(trace_path)
    return simulate_command(seed, nodes, run_ms,
                            ["--scenario-file", scenario_file] if scenario_file else
                            ["--scenario", scenario_name],
                            cost.verify_us, cost.sign_us, cost.real_verify,
                            ("--keep-going",) if keep_going else ())


@simulate.command("replay")
@click.argument("trace", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def replay_command(trace: str, as_json: bool) -> None:
    """Re-run the run that wrote TRACE and check the new trace is byte-identical.

    Exit 0 when it matches, 4 when it does not (the first differing line is shown), 1 when
    TRACE is not a replayable trace.
    """
    from sim.replay import ReplayError, replay

    try:
        outcome = replay(trace)
    except ReplayError as exc:
        _usage_error(str(exc), as_json)
    if as_json:
        click.echo(json.dumps(outcome.to_json(), sort_keys=True))
    else:
        spec = outcome.spec
        click.echo(f"replayed {trace}: scenario {spec.scenario.name}, {spec.nodes} nodes, "
                   f"seed {spec.seed}, {spec.duration_ms} ms")
        _print_human({**outcome.result.to_json(), **_run_report(spec.crypto, False)})
        if outcome.matches:
            click.echo(f"  MATCH: trace sha256 {outcome.expected_sha256}")
        else:
            click.echo(f"  MISMATCH at line {outcome.first_difference_line}:\n"
                       f"    recorded: {outcome.expected_line}\n"
                       f"    replayed: {outcome.actual_line}")
    sys.exit(EXIT_OK if outcome.matches else EXIT_REPLAY_MISMATCH)


def _print_human(report: dict[str, Any]) -> None:
    click.echo(f"scenario {report['scenario']}: {report['nodes']} nodes, seed {report['seed']}, "
               f"faulty {report['faulty']} {report['byzantine'] or ''}".rstrip())
    click.echo(f"  virtual {report['virtual_ms']} ms in {report['wall_s']} s wall "
               f"({report['crypto']} crypto), peak memory {report.get('max_rss_mib')} MiB")
    if "cpu_model" in report:
        click.echo(f"  cpu model: {report['cpu_model']}; {report['verify_cost_us']} us per "
                   f"verification, {report['sign_cost_us']} us per signature"
                   + (" (calibrated on this machine)" if report.get("cpu_calibrated") else ""))
    click.echo(f"  committed height {report['committed_height']} (lowest honest; highest "
               f"{report['max_committed_height']}), {report['committed_txs']} txs, "
               f"view changes {report['view_changes']}")
    click.echo(f"  messages {report['messages_sent']} sent ({report['bytes_sent']} bytes), "
               f"{report['messages_delivered']} delivered, {report['messages_dropped']} dropped")
    click.echo(f"  safety violations {report['safety_violations']}, liveness violations "
               f"{report['liveness_violations']}")
    for violation in report["violations"][:5]:
        click.echo(f"    {violation['kind']} at {violation['t_us']} us: {violation['detail']}")
    click.echo(f"  trace sha256 {report['trace_sha256']}")


def _csv_list(text: str, what: str, convert=str) -> list:
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise click.BadParameter(f"{what} needs at least one value")
    try:
        return [convert(item) for item in items]
    except ValueError:
        raise click.BadParameter(f"{what}: {text!r} is not a comma-separated list") from None


@simulate.command("sweep")
@click.option("--nodes", "nodes_text", default="4,7,16", show_default=True,
              help="Comma-separated node counts.")
@click.option("--scenarios", "scenarios_text", default="normal,crash-primary", show_default=True,
              help="Comma-separated built-in scenarios.")
@click.option("--profiles", "profiles_text", default="lan,region,continents", show_default=True,
              help="Comma-separated latency profiles: lan, region, continents, loopback.")
@click.option("--seeds", type=click.IntRange(1, 1000), default=3, show_default=True,
              help="Seeds per point (1..SEEDS); confidence intervals are across them.")
@click.option("--duration", "duration", default="5s", show_default=True,
              help="Virtual duration of each run.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="sweep-out",
              show_default=True, help="Directory for runs.csv, summary.csv and the plots.")
@click.option("--jobs", type=click.IntRange(0, 64), default=1, show_default=True,
              help="Runs at a time, each in its own process (0: in this process).")
@click.option("--verify-cost-ms", type=click.FloatRange(0, 1000), default=DEFAULT_VERIFY_COST_MS,
              show_default=True)
@click.option("--sign-cost-ms", type=click.FloatRange(0, 1000), default=DEFAULT_SIGN_COST_MS,
              show_default=True)
@click.option("--calibrate-crypto", is_flag=True,
              help="Charge this machine's measured Ed25519 costs.")
@click.option("--crypto", type=click.Choice(["auto", "real", "fast"]), default="auto",
              show_default=True)
@click.option("--plots/--no-plots", default=True, show_default=True)
def sweep_command(nodes_text: str, scenarios_text: str, profiles_text: str, seeds: int,
                  duration: str, out_dir: str, jobs: int, verify_cost_ms: float,
                  sign_cost_ms: float, calibrate_crypto: bool, crypto: str, plots: bool) -> None:
    """Run a grid of simulations and write CSV (and PNG plots) with 95% CIs across seeds.

    Exit 0 when every run was safe and live, 2 when one was unsafe, 3 when one made no
    progress after its faults healed (each failing run's reproduce command is printed).
    """
    from pathlib import Path

    from sim.backend import CryptoCost
    from sim.scenarios import BUILTIN
    from sim.sweep import (LATENCY_PROFILES, grid, reproduce_command, run_grid, summarize,
                           write_csv)

    try:
        node_counts = _csv_list(nodes_text, "--nodes", int)
        scenario_names = _csv_list(scenarios_text, "--scenarios")
        profile_names = _csv_list(profiles_text, "--profiles")
        run_ms = parse_duration_ms(duration)
    except click.BadParameter as exc:
        _usage_error(exc.message, False)
    bad = [n for n in node_counts if not 1 <= n <= 1024]
    if bad:
        _usage_error(f"--nodes must be in 1..1024, not {bad}", False)
    unknown = [s for s in scenario_names if s not in BUILTIN]
    if unknown:
        _usage_error(f"unknown scenarios {unknown}; known: {', '.join(BUILTIN)}", False)
    unknown = [p for p in profile_names if p not in LATENCY_PROFILES]
    if unknown:
        _usage_error(f"unknown profiles {unknown}; known: {', '.join(LATENCY_PROFILES)}", False)
    verify_us, sign_us = round(verify_cost_ms * 1000), round(sign_cost_ms * 1000)
    if calibrate_crypto:
        from sim.calibrate import measure_ed25519
        measured = measure_ed25519()
        verify_us, sign_us = measured.verify_us, measured.sign_us
        click.echo(f"calibrated: {measured.verifies_per_s} Ed25519 verifications/s, "
                   f"{measured.signs_per_s} signatures/s on this machine")
    cost = CryptoCost(verify_us=verify_us, sign_us=sign_us, real_verify=crypto != "fast")
    points = grid(node_counts, scenario_names, profile_names, list(range(1, seeds + 1)), run_ms,
                  cost, REAL_CRYPTO_MAX_NODES if crypto == "auto" else None)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    click.echo(f"{len(points)} runs, {jobs} at a time -> {out}")

    def progress(row: dict[str, Any]) -> None:
        click.echo(f"  n={row['nodes']} {row['scenario']} {row['profile']} seed {row['seed']}: "
                   f"height {row['committed_height']}, p50 "
                   f"{row['commit_latency_ms_p50']:.1f} ms, {row['wall_s']} s wall"
                   + ("" if row["safe"] and row["live"] else "  FAILED"))
    rows = run_grid(points, jobs, progress)
    summary = summarize(rows)
    write_csv(out / "runs.csv", rows)
    write_csv(out / "summary.csv", summary)
    click.echo(f"wrote {out / 'runs.csv'} and {out / 'summary.csv'}")
    if plots:
        from sim.plots import plot_vs_faults, plot_vs_nodes
        click.echo(f"wrote {plot_vs_nodes(summary, out / 'vs_nodes.png')} and "
                   f"{plot_vs_faults(summary, out / 'vs_faults.png')}")
    exit_code = EXIT_OK
    for row, point in zip(rows, points):
        if row["safe"] and row["live"]:
            continue
        failures = out / "failures"
        failures.mkdir(exist_ok=True)
        scenario_path = failures / (f"{point.scenario}-{point.profile}-n{point.nodes}"
                                    f"-s{point.seed}.json")
        scenario_path.write_text(json.dumps(point.resolved_scenario().to_plain(), indent=1))
        label = "SAFETY VIOLATION" if not row["safe"] else "NO PROGRESS"
        click.echo(f"{label}: reproduce with `{reproduce_command(row, scenario_path)}`", err=True)
        exit_code = EXIT_UNSAFE if not row["safe"] else max(exit_code, EXIT_NOT_LIVE)
    sys.exit(exit_code)
