"""Sweeps: measured rows, confidence intervals, CSV and PNG output, reproduce commands, and the
CPU model's effect on virtual time (no wall-clock assertions)."""

from __future__ import annotations

import csv
import json
import math
import shlex

from click.testing import CliRunner

from client.cli import main
from sim.backend import CryptoCost
from sim.sweep import (LATENCY_PROFILES, SweepPoint, grid, mean_ci95, percentile, run_grid,
                       run_point, summarize)


def point(**changes) -> SweepPoint:
    values = dict(nodes=4, scenario="normal", profile="lan", seed=1, duration_ms=1500,
                  verify_us=60, sign_us=30, real_verify=True)
    values.update(changes)
    return SweepPoint(**values)


def test_statistics_helpers():
    assert mean_ci95([2.0]) == (2.0, 0.0)
    mean, half = mean_ci95([1.0, 2.0, 3.0])
    assert mean == 2.0 and math.isclose(half, 4.303 * 1.0 / math.sqrt(3), rel_tol=1e-9)
    assert math.isnan(mean_ci95([math.nan])[0])
    assert percentile([1, 2, 3, 4], 0.5) == 2 and percentile([1, 2, 3, 4], 0.95) == 4


def test_a_point_is_measured_and_deterministic():
    row = run_point(point())
    assert row["safe"] and row["live"] and row["committed_height"] > 0
    assert row["committed_txs"] > 0 and row["commit_latency_ms_p50"] > 0
    assert row["commit_latency_ms_p50"] <= row["commit_latency_ms_p95"]
    assert row["messages_per_block"] == row["messages_sent"] / row["committed_height"]
    assert math.isnan(row["view_change_recovery_ms"])  # no fault, nothing to recover from
    again = run_point(point())
    assert again["trace_sha256"] == row["trace_sha256"]
    assert again["commit_latency_ms_p50"] == row["commit_latency_ms_p50"]


def test_latency_profile_and_faults_show_in_the_metrics():
    lan = run_point(point(duration_ms=3000))
    far = run_point(point(duration_ms=3000, profile="continents"))
    # a quorum needs two continents: a commit takes at least a few 45 ms one-way hops
    assert far["commit_latency_ms_p50"] > 90 > lan["commit_latency_ms_p50"]
    crash = run_point(point(duration_ms=4000, scenario="crash-primary"))
    assert crash["safe"] and crash["live"] and crash["view_changes"] >= 1
    # the view change cannot finish before the 1 s base timeout
    assert crash["view_change_recovery_ms"] >= 1000


def test_cpu_model_charges_verification_as_virtual_time():
    cheap = run_point(point(duration_ms=1500, verify_us=10, sign_us=10, real_verify=False))
    dear = run_point(point(duration_ms=1500, verify_us=3000, sign_us=10, real_verify=False))
    # the same protocol with slower verification commits later in virtual time
    assert dear["commit_latency_ms_p50"] > cheap["commit_latency_ms_p50"]
    assert dear["committed_height"] < cheap["committed_height"]


def test_grid_summary_and_files(tmp_path):
    points = grid([4], ["normal"], ["lan", "region"], [1, 2], 1000,
                  CryptoCost(verify_us=60, sign_us=30), real_verify_max_nodes=16)
    assert len(points) == 4 and all(p.real_verify for p in points)
    rows = run_grid(points, jobs=0)
    summary = summarize(rows)
    assert [(s["profile"], s["seeds"]) for s in summary] == [("lan", 2), ("region", 2)]
    for entry in summary:
        values = [r["throughput_tx_per_s"] for r in rows if r["profile"] == entry["profile"]]
        assert math.isclose(entry["throughput_tx_per_s"], sum(values) / 2)
        assert entry["throughput_tx_per_s_ci95"] >= 0
    assert set(LATENCY_PROFILES) >= {"lan", "region", "continents"}


def test_sweep_command_writes_csv_plots_and_is_safe(tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(main, [
        "simulate", "sweep", "--nodes", "4", "--scenarios", "normal,crash-primary",
        "--profiles", "lan", "--seeds", "2", "--duration", "2500ms", "--out", str(out),
        "--jobs", "0"])
    assert result.exit_code == 0, result.output
    with open(out / "runs.csv") as handle:
        runs = list(csv.DictReader(handle))
    assert len(runs) == 4 and {r["scenario"] for r in runs} == {"normal", "crash-primary"}
    with open(out / "summary.csv") as handle:
        summary = list(csv.DictReader(handle))
    assert len(summary) == 2 and "commit_latency_ms_p50_ci95" in summary[0]
    for name in ("vs_nodes.png", "vs_faults.png"):
        data = (out / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) < 200_000


def test_sweep_rejects_unknown_names(tmp_path):
    runner = CliRunner()
    bad = runner.invoke(main, ["simulate", "sweep", "--profiles", "moon", "--out", str(tmp_path)])
    assert bad.exit_code == 1 and "unknown profiles" in bad.output
    bad = runner.invoke(main, ["simulate", "sweep", "--scenarios", "nope", "--out", str(tmp_path)])
    assert bad.exit_code == 1 and "unknown scenarios" in bad.output


def test_reproduce_command_reruns_the_same_point(tmp_path):
    from sim.sweep import reproduce_command
    chosen = point(profile="continents", scenario="crash-primary", duration_ms=2000)
    row = run_point(chosen)
    scenario_path = tmp_path / "point.json"
    scenario_path.write_text(json.dumps(chosen.resolved_scenario().to_plain()))
    command = shlex.split(reproduce_command(row, scenario_path))
    assert command[:2] == ["huzhu", "simulate"]
    result = CliRunner().invoke(main, [*command[1:], "--json"])
    assert json.loads(result.stdout)["trace_sha256"] == row["trace_sha256"]


def test_message_cost_slows_virtual_time():
    from sim.scenarios import builtin
    from sim.sweep import measure
    scenario = builtin("normal", 4, 1500)
    crypto = CryptoCost(verify_us=60, sign_us=30)
    free = measure(scenario, 4, 1, 1500, crypto)
    dear = measure(scenario, 4, 1, 1500, crypto, message_us=5000)
    assert dear["commit_latency_ms_p50"] > free["commit_latency_ms_p50"]
    assert dear["blocks_per_s"] < free["blocks_per_s"]
