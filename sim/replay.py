"""Reproducing a run exactly: what a trace must carry, and re-running it.

A run is a pure function of (scenario, nodes, seed, duration, CPU costs, crypto mode, stop on
violation). ``run_info`` packs everything beyond seed, nodes and duration into the trace's
start line -- the fully resolved scenario, not a file name or a built-in name, so a trace
replays even when the scenario file is gone or a built-in scenario changed, and the CPU costs
as charged (a calibrated run replays with the costs measured then, on any machine).
``replay`` reads that line, runs the same simulation again, and compares the new trace with
the old one byte for byte (by SHA-256), naming the first line that differs.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim.backend import CryptoCost
from sim.scenarios import Scenario, ScenarioError, scenario_from_plain
from sim.simulation import SimOptions, SimResult, Simulation

RUN_INFO_VERSION = 1


class ReplayError(ValueError):
    """The file is not a trace this simulator can replay (reason in the message)."""


def run_info(scenario: Scenario, crypto: CryptoCost, stop_on_violation: bool) -> dict[str, Any]:
    return {"version": RUN_INFO_VERSION, "scenario": scenario.to_plain(),
            "verify_us": crypto.verify_us, "sign_us": crypto.sign_us,
            "real_verify": crypto.real_verify, "stop_on_violation": stop_on_violation}


def replay_command(trace_path: str) -> str:
    return f"huzhu simulate replay {shlex.quote(str(trace_path))}"


def simulate_command(seed: int, nodes: int, duration_ms: int, scenario: list[str],
                     verify_us: int, sign_us: int, real_verify: bool,
                     extra: tuple[str, ...] = ()) -> str:
    """The ``huzhu simulate`` command line for one run; ``scenario`` is ``["--scenario",
    NAME]`` or ``["--scenario-file", PATH]``."""
    parts = ["huzhu", "simulate", "--seed", str(seed), "--nodes", str(nodes),
             "--duration", f"{duration_ms}ms", *scenario,
             "--verify-cost-ms", f"{verify_us / 1000:g}", "--sign-cost-ms", f"{sign_us / 1000:g}",
             "--crypto", "real" if real_verify else "fast", *extra]
    return " ".join(shlex.quote(part) for part in parts)


@dataclass(frozen=True, slots=True)
class RunSpec:
    """Everything that determines a run."""

    seed: int
    nodes: int
    duration_ms: int
    scenario: Scenario
    crypto: CryptoCost
    stop_on_violation: bool

    def options(self, trace_path: str | None) -> SimOptions:
        return SimOptions(crypto=self.crypto, trace_path=trace_path,
                          stop_on_violation=self.stop_on_violation,
                          run_info=run_info(self.scenario, self.crypto, self.stop_on_violation))


def read_spec(trace_path: str | Path) -> RunSpec:
    """The run a trace came from, from its start line."""
    try:
        with open(trace_path, "rb") as handle:
            first = handle.readline()
    except OSError as exc:
        raise ReplayError(f"cannot read trace {trace_path}: {exc}") from None
    try:
        start = json.loads(first)
    except ValueError:
        raise ReplayError(f"{trace_path}: the first line is not JSON") from None
    if not isinstance(start, dict) or start.get("kind") != "start":
        raise ReplayError(f"{trace_path}: the first line is not a start line")
    info = start.get("run")
    if not isinstance(info, dict) or info.get("version") != RUN_INFO_VERSION:
        raise ReplayError(f"{trace_path}: the start line has no replay information "
                          "(written by an older simulator)")
    try:
        nodes = int(start["nodes"])
        duration_ms = int(start["duration_ms"])
        scenario = scenario_from_plain(info["scenario"], nodes, duration_ms)
        scenario.validate(nodes, duration_ms)
        crypto = CryptoCost(verify_us=int(info["verify_us"]), sign_us=int(info["sign_us"]),
                            real_verify=bool(info["real_verify"]))
        return RunSpec(seed=int(start["seed"]), nodes=nodes, duration_ms=duration_ms,
                       scenario=scenario, crypto=crypto,
                       stop_on_violation=bool(info["stop_on_violation"]))
    except (KeyError, TypeError, ValueError, ScenarioError) as exc:
        raise ReplayError(f"{trace_path}: bad start line: {exc}") from None


def run_spec(spec: RunSpec, trace_path: str | None, backend: Any = None) -> SimResult:
    if backend is None:
        from sim.nodes import NodeBackend
        backend = NodeBackend()
    return Simulation(backend, spec.scenario, spec.nodes, spec.seed, spec.duration_ms,
                      spec.options(trace_path)).run()


@dataclass(frozen=True, slots=True)
class ReplayResult:
    spec: RunSpec
    result: SimResult
    expected_sha256: str
    matches: bool
    first_difference_line: int | None  # 1-based; None when the traces match
    expected_line: str | None
    actual_line: str | None

    def to_json(self) -> dict[str, Any]:
        return {"matches": self.matches, "expected_sha256": self.expected_sha256,
                "actual_sha256": self.result.trace_sha256,
                "first_difference_line": self.first_difference_line,
                "expected_line": self.expected_line, "actual_line": self.actual_line,
                "result": self.result.to_json()}


def _first_difference(old_path: Path, new_path: Path) -> tuple[int, str | None, str | None]:
    with open(old_path, "rb") as old, open(new_path, "rb") as new:
        number = 0
        while True:
            number += 1
            old_line, new_line = old.readline(), new.readline()
            if old_line != new_line:
                return (number, old_line.decode(errors="replace").rstrip("\n") or None,
                        new_line.decode(errors="replace").rstrip("\n") or None)
            if not old_line:
                return number, None, None


def replay(trace_path: str | Path, backend: Any = None) -> ReplayResult:
    """Re-run the trace's run and check the new trace is byte-identical."""
    trace_path = Path(trace_path)
    spec = read_spec(trace_path)
    digest = hashlib.sha256()
    with open(trace_path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    expected = digest.hexdigest()
    with tempfile.TemporaryDirectory(prefix="huzhu-replay-") as scratch:
        new_path = Path(scratch) / "replay.jsonl"
        result = run_spec(spec, str(new_path), backend)
        matches = result.trace_sha256 == expected
        line = old_line = new_line = None
        if not matches:
            line, old_line, new_line = _first_difference(trace_path, new_path)
    return ReplayResult(spec, result, expected, matches, line, old_line, new_line)
