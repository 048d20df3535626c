"""Parameter sweeps: many simulations over node counts, fault scenarios, latency profiles and
seeds, summarized with confidence intervals across seeds, written as CSV (and PNG plots by
``sim.plots``).

Each point of the grid is one ordinary ``Simulation`` of a built-in scenario whose network
latencies are replaced by a latency profile (the scenario's loss, duplication and partitions
stay). A ``MeasuredSimulation`` adds what a sweep plots and the report lacks:

- **commit latency**: from a transaction's first submission to the first honest commit of the
  block that holds it (virtual ms), per transaction;
- **throughput**: committed transactions and blocks per virtual second;
- **messages and bytes per committed block**: everything sent, over the lowest honest height;
- **view-change recovery**: from the fault's onset to the first block an honest node commits
  in a view above the one it was in at the onset (virtual ms; empty when no view changed).

Points run in separate processes (one per run, so the peak memory of a run is its own), at
most ``jobs`` at a time. Every run is still a pure function of its inputs: a point that fails
gets its resolved scenario written next to the CSV and a command that reproduces it.
"""

from __future__ import annotations

import csv
import math
import resource
import statistics
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from sim.backend import CryptoCost
from sim.network import NetworkProfile, named_profile
from sim.replay import simulate_command
from sim.runtime import us_to_ms
from sim.scenarios import Scenario, builtin
from sim.simulation import SimOptions, Simulation

# One-way latencies in ms (integers: the network model's unit).
LATENCY_PROFILES: dict[str, NetworkProfile] = {
    # the simulator's LAN: one data centre
    "lan": named_profile("lan"),
    # one cloud region of three availability zones: ~0.5-1 ms inside a zone, ~1-2 ms across
    "region": NetworkProfile(regions=("az-a", "az-b", "az-c"),
                             latency_ms=((1, 2, 2), (2, 1, 2), (2, 2, 1)), jitter_ms=1,
                             bandwidth_bytes_per_ms=125_000),
    # three continents: Hangzhou, Frankfurt, Virginia (about half the public round trips)
    "continents": NetworkProfile(regions=("hangzhou", "frankfurt", "virginia"),
                                 latency_ms=((1, 110, 115), (110, 1, 45), (115, 45, 1)),
                                 jitter_ms=5, bandwidth_bytes_per_ms=6_250),
    # several node processes on one machine over loopback (the validation run): no wire delay
    # worth an integer millisecond, a fast loopback; CPU is what costs
    "loopback": NetworkProfile(regions=("localhost",), latency_ms=((0,),), jitter_ms=0,
                               bandwidth_bytes_per_ms=1_000_000),
}

METRICS = ("commit_latency_ms_p50", "commit_latency_ms_mean", "commit_latency_ms_p95",
           "throughput_tx_per_s", "blocks_per_s", "messages_per_block", "bytes_per_block",
           "view_change_recovery_ms")

# two-sided 95% Student t quantiles by degrees of freedom (no scipy dependency)
_T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
        9: 2.262, 10: 2.228, 12: 2.179, 15: 2.131, 20: 2.086, 30: 2.042}


def t95(degrees: int) -> float:
    for bound in sorted(_T95):
        if degrees <= bound:
            return _T95[bound]
    return 1.96


def mean_ci95(values: Sequence[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% confidence interval (0 for a single value)."""
    present = [v for v in values if v is not None and not math.isnan(v)]
    if not present:
        return math.nan, math.nan
    mean = statistics.fmean(present)
    if len(present) < 2:
        return mean, 0.0
    return mean, t95(len(present) - 1) * statistics.stdev(present) / math.sqrt(len(present))


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted values; NaN when empty."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return float(sorted_values[rank - 1])


def scenario_with_profile(scenario: Scenario, profile: NetworkProfile) -> Scenario:
    """The scenario with the profile's latencies, jitter and bandwidth; its faults stay."""
    network = replace(scenario.network, regions=profile.regions, latency_ms=profile.latency_ms,
                      jitter_ms=profile.jitter_ms,
                      bandwidth_bytes_per_ms=profile.bandwidth_bytes_per_ms)
    network.validate()
    return replace(scenario, network=network)


def fault_onset_ms(scenario: Scenario) -> int | None:
    """When the scenario's first fault starts; None for a fault-free scenario."""
    starts = [event.at_ms for event in scenario.events if event.kind != "skew"]
    starts += [role.from_ms or 0 for role in scenario.byzantine]
    return min(starts) if starts else None


class MeasuredSimulation(Simulation):
    """A Simulation that also records per-transaction latency and view-change recovery, and
    may charge ``message_us`` of virtual CPU for every message a node handles (on top of its
    signature work): the processing cost the crypto-only CPU model leaves out."""

    def __init__(self, *args: Any, message_us: int = 0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.message_us = message_us
        self.submitted_us: dict[bytes, int] = {}
        self.latencies_us: list[int] = []
        self.first_commit_us: dict[int, int] = {}
        self.onset_ms = fault_onset_ms(self.scenario)
        self.onset_views: dict[int, int] | None = None
        self.recovered_us: int | None = None
        workload_next = self.workload._next

        def next_tx(client: Any) -> None:
            workload_next(client)
            if client.tx_id is not None and client.tx_id not in self.submitted_us:
                self.submitted_us[client.tx_id] = self.loop.now_us
        self.workload._next = next_tx  # type: ignore[method-assign]
        if self.onset_ms is not None:
            self.loop.schedule_at(self.onset_ms * 1000, self._mark_onset)

    def _process(self, sender: Any, target: Any, *rest: Any) -> None:
        if self.message_us:
            target.cpu_free_us = max(target.cpu_free_us, self.loop.now_us) + self.message_us
        super()._process(sender, target, *rest)

    def _mark_onset(self) -> None:
        self.onset_views = {r: self._view_of(r) for r in self.honest}

    def _view_of(self, replica: int) -> int:
        endpoint = self.honest_endpoint(replica)
        return endpoint.core.status().get("view", 0) if endpoint.running else endpoint.view

    def _on_commit(self, endpoint: Any, commit: tuple) -> None:
        super()._on_commit(endpoint, commit)
        if endpoint.replica not in self.honest or endpoint.side is not None:
            return
        height, tx_ids = commit[0], commit[2]
        now = self.loop.now_us
        if height not in self.first_commit_us:
            self.first_commit_us[height] = now
            for tx_id in tx_ids:
                submitted = self.submitted_us.pop(tx_id, None)
                if submitted is not None:
                    self.latencies_us.append(now - submitted)
        if (self.onset_views is not None and self.recovered_us is None
                and self._view_of(endpoint.replica) > self.onset_views[endpoint.replica]):
            self.recovered_us = now


@dataclass(frozen=True, slots=True)
class SweepPoint:
    nodes: int
    scenario: str
    profile: str
    seed: int
    duration_ms: int
    verify_us: int
    sign_us: int
    real_verify: bool

    def resolved_scenario(self) -> Scenario:
        return scenario_with_profile(builtin(self.scenario, self.nodes, self.duration_ms),
                                     LATENCY_PROFILES[self.profile])


def run_point(point: SweepPoint, backend_factory: Callable[[], Any] | None = None) -> dict[str, Any]:
    """One run of the grid and its measured row (a CSV row: plain values only)."""
    crypto = CryptoCost(verify_us=point.verify_us, sign_us=point.sign_us,
                        real_verify=point.real_verify)
    row = asdict(point)
    row.update(measure(point.resolved_scenario(), point.nodes, point.seed, point.duration_ms,
                       crypto, backend_factory))
    return row


def measure(scenario: Scenario, nodes: int, seed: int, duration_ms: int, crypto: CryptoCost,
            backend_factory: Callable[[], Any] | None = None,
            message_us: int = 0) -> dict[str, Any]:
    """Run any scenario once and measure it (the metrics of a sweep row); ``message_us``:
    virtual CPU charged per handled message besides signatures (not part of a replayable
    trace's run information, so such runs are for measurement only)."""
    if backend_factory is None:
        from sim.nodes import NodeBackend
        backend = NodeBackend()
    else:
        backend = backend_factory()
    from sim.replay import run_info
    options = SimOptions(crypto=crypto, stop_on_violation=True,
                         run_info=run_info(scenario, crypto, True))
    sim = MeasuredSimulation(backend, scenario, nodes, seed, duration_ms, options,
                             message_us=message_us)
    result = sim.run()
    latencies = sorted(us / 1000 for us in sim.latencies_us)
    virtual_s = result.virtual_ms / 1000
    blocks = result.committed_height
    recovery_ms = (us_to_ms(sim.recovered_us) - sim.onset_ms
                   if sim.recovered_us is not None and sim.onset_ms is not None else math.nan)
    return {
        "safe": result.safe, "live": result.live,
        "committed_height": blocks, "committed_txs": result.committed_txs,
        "view_changes": result.view_changes,
        "commit_latency_ms_p50": percentile(latencies, 0.50),
        "commit_latency_ms_mean": statistics.fmean(latencies) if latencies else math.nan,
        "commit_latency_ms_p95": percentile(latencies, 0.95),
        "throughput_tx_per_s": result.committed_txs / virtual_s if virtual_s else math.nan,
        "blocks_per_s": blocks / virtual_s if virtual_s else math.nan,
        "messages_per_block": result.messages_sent / blocks if blocks else math.nan,
        "bytes_per_block": result.bytes_sent / blocks if blocks else math.nan,
        "view_change_recovery_ms": recovery_ms,
        "messages_sent": result.messages_sent, "bytes_sent": result.bytes_sent,
        "virtual_ms": result.virtual_ms, "wall_s": round(result.wall_s, 3),
        "virtual_s_per_wall_s": round(virtual_s / result.wall_s, 4) if result.wall_s else math.nan,
        "max_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "trace_sha256": result.trace_sha256,
    }


def grid(nodes: Sequence[int], scenarios: Sequence[str], profiles: Sequence[str],
         seeds: Sequence[int], duration_ms: int, cost: CryptoCost,
         real_verify_max_nodes: int | None) -> list[SweepPoint]:
    """Every combination, in a fixed order. ``real_verify_max_nodes``: verify for real up to
    this many nodes and by table above (None: as ``cost.real_verify`` says)."""
    points = []
    for n in nodes:
        real = cost.real_verify if real_verify_max_nodes is None else n <= real_verify_max_nodes
        for scenario in scenarios:
            for profile in profiles:
                for seed in seeds:
                    points.append(SweepPoint(n, scenario, profile, seed, duration_ms,
                                             cost.verify_us, cost.sign_us, real))
    return points


def run_grid(points: Sequence[SweepPoint], jobs: int = 1,
             on_row: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Run the points, each in a fresh process when ``jobs`` > 0 (its own peak memory);
    ``jobs`` == 0 runs them in this process (tests). Rows come back in the points' order."""
    rows: list[dict[str, Any]] = []
    if jobs == 0:
        for point in points:
            rows.append(run_point(point))
            if on_row:
                on_row(rows[-1])
        return rows
    with ProcessPoolExecutor(max_workers=jobs, max_tasks_per_child=1) as pool:
        for row in pool.map(run_point, points):
            rows.append(row)
            if on_row:
                on_row(row)
    return rows


GROUP_KEYS = ("nodes", "scenario", "profile")


def summarize(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (nodes, scenario, profile): each metric's mean and 95% CI across seeds."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(row[k] for k in GROUP_KEYS), []).append(row)
    summary = []
    for key in sorted(groups):
        members = groups[key]
        out: dict[str, Any] = dict(zip(GROUP_KEYS, key))
        out["seeds"] = len(members)
        out["unsafe_runs"] = sum(1 for r in members if not r["safe"])
        out["not_live_runs"] = sum(1 for r in members if not r["live"])
        for metric in METRICS + ("virtual_s_per_wall_s", "max_rss_mib"):
            mean, half = mean_ci95([float(r[metric]) for r in members])
            out[metric] = mean
            out[f"{metric}_ci95"] = half
        summary.append(out)
    return summary


def write_csv(path: str | Path, rows: Sequence[dict[str, Any]]) -> None:
    if not rows:
        Path(path).write_text("")
        return
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})


def reproduce_command(row: dict[str, Any], scenario_path: str | Path) -> str:
    """The ``huzhu simulate`` command that re-runs one point (its scenario written to a file)."""
    return simulate_command(row["seed"], row["nodes"], row["duration_ms"],
                            ["--scenario-file", str(scenario_path)], row["verify_us"],
                            row["sign_us"], row["real_verify"])


def measure_message_cost_us(duration_ms: int = 1000) -> int:
    """This machine's wall time per message a NodeCore handles, signatures excluded: a 4-node
    LAN run with table-checked signatures, wall time over messages delivered (it includes the
    simulator's own share, about a fifth)."""
    import time as wall_clock

    from sim.nodes import NodeBackend
    scenario = builtin("normal", 4, duration_ms)
    sim = Simulation(NodeBackend(), scenario, 4, 1, duration_ms,
                     SimOptions(crypto=CryptoCost(real_verify=False)))
    started = wall_clock.perf_counter()
    result = sim.run()
    elapsed = wall_clock.perf_counter() - started
    return max(1, round(elapsed * 1_000_000 / max(1, result.messages_delivered)))
