"""``huzhu simulate``: the JSON report, the trace file, scenario files and exit codes."""

from __future__ import annotations

import hashlib
import json

import pytest
from click.testing import CliRunner

from client.cli import main

REQUIRED_KEYS = {"seed", "nodes", "faulty", "committed_height", "committed_txs", "view_changes",
                 "safety_violations", "trace_sha256", "virtual_ms", "wall_s", "messages_sent",
                 "bytes_sent"}


def simulate(*args: str):
    return CliRunner().invoke(main, ["simulate", *args])


def test_json_report_and_trace_file(tmp_path):
    trace = tmp_path / "run.jsonl"
    result = simulate("--nodes", "4", "--seed", "3", "--duration", "2s", "--scenario",
                      "crash-primary", "--trace", str(trace), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert REQUIRED_KEYS <= set(report)
    assert report["seed"] == 3 and report["nodes"] == 4 and report["faulty"] == 1
    assert report["virtual_ms"] == 2000
    assert report["safety_violations"] == 0 and report["committed_height"] > 0
    assert report["trace_sha256"] == hashlib.sha256(trace.read_bytes()).hexdigest()
    again = simulate("--nodes", "4", "--seed", "3", "--duration", "2s", "--scenario",
                     "crash-primary", "--json")
    assert json.loads(again.stdout)["trace_sha256"] == report["trace_sha256"]


def test_human_output():
    result = simulate("--duration", "1s")
    assert result.exit_code == 0, result.output
    assert "committed height" in result.output and "trace sha256" in result.output


def test_safety_violation_exits_2_and_prints_the_seed(tmp_path):
    scenario = tmp_path / "collude.yaml"
    scenario.write_text(
        "name: collude\n"
        "expect_violation: true\n"
        "byzantine:\n"
        "  - {node: 0, behaviours: [twins]}\n"
        "  - {node: 1, behaviours: [twins]}\n")
    result = simulate("--scenario-file", str(scenario), "--seed", "0", "--duration", "3s",
                      "--json")
    assert result.exit_code == 2, result.output
    report = json.loads(result.stdout)
    assert report["safety_violations"] >= 1
    assert "--seed 0" in result.stderr and str(scenario) in result.stderr


def test_scenario_file_sets_nodes_and_duration(tmp_path):
    scenario = tmp_path / "s.json"
    scenario.write_text(json.dumps({
        "name": "small-wan", "nodes": 5, "duration_ms": 1500, "network": "wan",
        "events": [{"at_ms": 200, "kind": "delay", "extra_ms": 50, "until_ms": 400}],
        "grace_ms": 1000}))
    result = simulate("--scenario-file", str(scenario), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["nodes"] == 5 and report["virtual_ms"] == 1500
    assert report["scenario"] == "small-wan"


@pytest.mark.parametrize("args", [
    ["--scenario", "no-such-scenario"],
    ["--scenario", "normal", "--scenario-file", "x.json"],
    ["--duration", "ten seconds"],
    ["--nodes", "zero"],
    ["--scenario-file", "/does/not/exist.json"],
    ["--duration", "0s"],
    ["--bogus-flag"],
])
def test_usage_errors_exit_1(args):
    result = simulate(*args)
    assert result.exit_code == 1, (args, result.output)


def test_too_many_faulty_nodes_is_a_usage_error(tmp_path):
    scenario = tmp_path / "s.yaml"
    scenario.write_text("byzantine:\n  - {node: 0, behaviours: [silent]}\n"
                        "  - {node: 1, behaviours: [silent]}\n")
    result = simulate("--scenario-file", str(scenario), "--nodes", "4", "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["error"]["code"] == "usage"


def test_trace_does_not_depend_on_the_process_hash_seed():
    # set and dict orders of str keys vary with PYTHONHASHSEED; the trace must not
    import os
    import subprocess
    import sys

    hashes = set()
    for hash_seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=hash_seed)
        output = subprocess.run(
            [sys.executable, "-m", "client.cli", "simulate", "--scenario", "byzantine-mix",
             "--duration", "1s", "--seed", "9", "--json"],
            env=env, capture_output=True, text=True, check=True).stdout
        hashes.add(json.loads(output)["trace_sha256"])
    assert len(hashes) == 1
