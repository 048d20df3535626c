"""Reproduction: a trace carries its whole run; ``huzhu simulate replay`` re-runs and checks it;
a failing run prints one command that replays it; the report says which CPU mode ran."""

from __future__ import annotations

import json
import shlex

from click.testing import CliRunner

from client.cli import main
from sim.calibrate import measure_ed25519
from sim.replay import ReplayError, read_spec, replay
from sim.scenarios import builtin


def run(*args: str):
    return CliRunner().invoke(main, ["simulate", *args])


def test_replay_matches_a_recorded_trace(tmp_path):
    trace = tmp_path / "run.jsonl"
    first = run("--nodes", "4", "--seed", "5", "--duration", "1500ms", "--scenario",
                "crash-primary", "--trace", str(trace), "--json")
    assert first.exit_code == 0, first.output
    report = json.loads(first.stdout)
    spec = read_spec(trace)
    assert (spec.seed, spec.nodes, spec.duration_ms) == (5, 4, 1500)
    assert spec.scenario == builtin("crash-primary", 4, 1500)
    again = run("replay", str(trace), "--json")
    assert again.exit_code == 0, again.output
    outcome = json.loads(again.stdout)
    assert outcome["matches"] is True
    assert outcome["actual_sha256"] == report["trace_sha256"] == outcome["expected_sha256"]
    assert outcome["result"]["committed_height"] == report["committed_height"]


def test_replay_reports_the_first_differing_line(tmp_path):
    trace = tmp_path / "run.jsonl"
    assert run("--duration", "1s", "--seed", "2", "--trace", str(trace)).exit_code == 0
    lines = trace.read_bytes().splitlines(keepends=True)
    # change one delivered message's size: the replay must notice exactly that line
    index = next(i for i, line in enumerate(lines) if b'"kind":"deliver"' in line)
    lines[index] = lines[index].replace(b'"size":', b'"size":9')
    trace.write_bytes(b"".join(lines))
    outcome = replay(trace)
    assert not outcome.matches
    assert outcome.first_difference_line == index + 1
    assert '"size":9' in outcome.expected_line and '"size":9' not in outcome.actual_line
    result = run("replay", str(trace))
    assert result.exit_code == 4
    assert f"MISMATCH at line {index + 1}" in result.output


def test_replay_refuses_a_file_that_is_not_a_trace(tmp_path):
    bogus = tmp_path / "bogus.jsonl"
    bogus.write_text('{"kind":"deliver"}\n')
    try:
        read_spec(bogus)
    except ReplayError as exc:
        assert "start line" in str(exc)
    else:
        raise AssertionError("a file without a start line was accepted")
    result = run("replay", str(bogus))
    assert result.exit_code == 1
    assert run("replay", str(tmp_path / "missing.jsonl")).exit_code == 1


def _collusion_file(tmp_path):
    scenario = tmp_path / "collude.yaml"
    scenario.write_text("name: collude\nexpect_violation: true\nbyzantine:\n"
                        "  - {node: 0, behaviours: [twins]}\n  - {node: 1, behaviours: [twins]}\n")
    return scenario


def test_a_failing_run_prints_a_replay_command_that_reproduces_it(tmp_path):
    scenario = _collusion_file(tmp_path)
    trace = tmp_path / "fail.jsonl"
    result = run("--scenario-file", str(scenario), "--seed", "0", "--duration", "3s",
                 "--trace", str(trace), "--json")
    assert result.exit_code == 2, result.output
    assert f"huzhu simulate replay {trace}" in result.stderr
    scenario.unlink()  # the trace alone must be enough
    again = run("replay", str(trace), "--json")
    assert again.exit_code == 0, again.output
    outcome = json.loads(again.stdout)
    assert outcome["matches"] and outcome["result"]["safety_violations"] >= 1


def test_a_failing_run_without_a_trace_prints_every_flag(tmp_path):
    scenario = _collusion_file(tmp_path)
    result = run("--scenario-file", str(scenario), "--seed", "0", "--duration", "3s",
                 "--verify-cost-ms", "0.2", "--crypto", "fast", "--json")
    assert result.exit_code == 2
    first = json.loads(result.stdout)
    line = next(x for x in result.stderr.splitlines() if "reproduce with" in x)
    command = shlex.split(line.split("`")[1])
    assert command[:2] == ["huzhu", "simulate"]
    assert "--verify-cost-ms" in command and command[command.index("--verify-cost-ms") + 1] == "0.2"
    rerun = run(*command[2:], "--json")
    assert rerun.exit_code == 2
    assert json.loads(rerun.stdout)["trace_sha256"] == first["trace_sha256"]


def test_report_names_the_cpu_mode_and_memory():
    real = json.loads(run("--duration", "500ms", "--json").stdout)
    assert real["crypto"] == "real" and "real Ed25519" in real["cpu_model"]
    assert real["max_rss_mib"] > 0 and real["cpu_calibrated"] is False
    fast = json.loads(run("--duration", "500ms", "--crypto", "fast", "--json").stdout)
    assert fast["crypto"] == "fast" and "virtual CPU time only" in fast["cpu_model"]
    # fast mode accepts exactly the signatures real verification would: the same run
    assert fast["committed_height"] == real["committed_height"]
    assert fast["trace_sha256"] != real["trace_sha256"]  # the start line records the mode


def test_calibration_measures_plausible_ed25519_costs(tmp_path):
    measured = measure_ed25519(operations=50, rounds=1)
    assert 1 <= measured.verify_us < 100_000 and 1 <= measured.sign_us < 100_000
    trace = tmp_path / "cal.jsonl"
    result = run("--duration", "500ms", "--calibrate-crypto", "--trace", str(trace), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["cpu_calibrated"] is True
    spec = read_spec(trace)
    assert spec.crypto.verify_us == report["verify_cost_us"]
    assert run("replay", str(trace)).exit_code == 0  # replays with the costs measured then
