"""``huzhu simulate``: run a consortium in virtual time under a scenario and check it.

Exit codes: 0 safe and live; 2 a safety violation (the seed to reproduce it is printed);
3 safe but not live (an honest node made no progress after the faults healed); 1 a usage
error (bad option, unknown scenario, unreadable or invalid scenario file).
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

import click

EXIT_OK = 0
EXIT_USAGE = 1
EXIT_UNSAFE = 2
EXIT_NOT_LIVE = 3

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


class _UsageExitsOne(click.Command):
    """Parsing errors exit 1 (click's default is 2, which here means 'unsafe')."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            exc.exit_code = EXIT_USAGE
            raise


def _usage_error(message: str, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({"error": {"code": "usage", "message": message}}))
    click.echo(f"error: {message}", err=True)
    sys.exit(EXIT_USAGE)


@click.command("simulate", cls=_UsageExitsOne)
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
def simulate(nodes: int | None, seed: int, duration: str | None, scenario: str | None,
             scenario_file: str | None, trace_path: str | None, as_json: bool,
             verify_cost_ms: float, sign_cost_ms: float, crypto: str, keep_going: bool) -> None:
    """Simulate a consortium in virtual time and check safety and liveness.

    Exit 0 when safe and live, 2 on a safety violation (with the seed to reproduce it),
    3 when an honest node made no progress after the faults healed, 1 on a usage error.
    """
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
    options = SimOptions(
        crypto=CryptoCost(verify_us=round(verify_cost_ms * 1000), sign_us=round(sign_cost_ms * 1000),
                          real_verify=real_verify),
        trace_path=trace_path, stop_on_violation=not keep_going)
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
    report["crypto"] = "real" if real_verify else "fast"
    if as_json:
        click.echo(json.dumps(report, sort_keys=True))
    else:
        _print_human(report)
    if not result.safe:
        click.echo(f"SAFETY VIOLATION: reproduce with `huzhu simulate --seed {seed} "
                   f"--nodes {node_count} --duration {run_ms}ms "
                   + (f"--scenario-file {scenario_file}`" if scenario_file else
                      f"--scenario {chosen.name}`"), err=True)
        sys.exit(EXIT_UNSAFE)
    if not result.live:
        click.echo(f"NO PROGRESS after the faults healed (seed {seed})", err=True)
        sys.exit(EXIT_NOT_LIVE)
    sys.exit(EXIT_OK)


def _print_human(report: dict[str, Any]) -> None:
    click.echo(f"scenario {report['scenario']}: {report['nodes']} nodes, seed {report['seed']}, "
               f"faulty {report['faulty']} {report['byzantine'] or ''}".rstrip())
    click.echo(f"  virtual {report['virtual_ms']} ms in {report['wall_s']} s wall "
               f"({report['crypto']} crypto)")
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
