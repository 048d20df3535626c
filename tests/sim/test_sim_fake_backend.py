"""The simulator's machinery driven with a tiny fake consensus (tests/sim/sim_fake.py).

These check the simulator itself -- determinism, tracing, crash/restart from the store, twins
routing, byzantine wrappers, the CPU model -- independently of the real PBFT replica.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from sim.backend import CryptoCost
from sim.faults import ByzantineRole, FaultEvent
from sim.scenarios import Scenario, builtin, scenario_from_plain
from sim.simulation import SimOptions, Simulation
from sim.trace import read_trace
from sim_fake import FakeBackend


def run(scenario: Scenario, seed: int = 1, nodes: int = 4, duration_ms: int = 6_000,
        **options):
    # the fake leader proposes every tick; a slower tick keeps these runs short
    return Simulation(FakeBackend(), replace(scenario, tick_ms=50), nodes, seed, duration_ms,
                      SimOptions(**options)).run()


def test_same_seed_gives_the_same_trace_and_another_seed_does_not():
    scenario = builtin("lossy-network", 4, 6_000)
    first, second, other = run(scenario, 5), run(scenario, 5), run(scenario, 6)
    assert first.trace_sha256 == second.trace_sha256
    assert first.to_json() | {"wall_s": 0} == second.to_json() | {"wall_s": 0}
    assert other.trace_sha256 != first.trace_sha256


def test_trace_file_matches_its_hash_and_holds_messages_and_commits(tmp_path):
    import hashlib
    path = tmp_path / "trace.jsonl"
    result = run(builtin("normal", 4, 3_000), trace_path=str(path))
    assert hashlib.sha256(path.read_bytes()).hexdigest() == result.trace_sha256
    lines = read_trace(path)
    assert len(lines) == result.trace_lines
    kinds = {line["kind"] for line in lines}
    assert {"start", "deliver", "commit", "submit", "end"} <= kinds
    times = [line["t_us"] for line in lines]
    assert times == sorted(times)
    deliver = next(line for line in lines if line["kind"] == "deliver")
    assert {"from", "to", "size", "type", "digest"} <= set(deliver)
    assert "wall" not in path.read_text()


def test_normal_run_commits_and_is_safe_and_live():
    result = run(builtin("normal", 4, 6_000))
    assert result.safe and result.live
    assert result.committed_height > 50
    assert result.committed_txs > 0
    assert result.messages_sent == result.messages_delivered + result.messages_dropped


def test_crashed_leader_stalls_the_fake_until_it_restarts_from_its_store():
    sim = Simulation(FakeBackend(), builtin("crash-primary", 4, 10_000), 4, 1, 10_000,
                     SimOptions(keep_trace_lines=100_000))
    result = sim.run()
    assert result.safe and result.live
    lines = sim.trace.kept
    crash_at = next(l["t_us"] for l in lines if l["kind"] == "crash")
    restart_at = next(l["t_us"] for l in lines if l["kind"] == "restart")
    leader_commits = [l for l in lines if l["kind"] == "commit" and l["node"] == 0]
    before = [l["height"] for l in leader_commits if l["t_us"] < crash_at]
    after = [l["height"] for l in leader_commits if l["t_us"] >= restart_at]
    assert before and after and after[0] == before[-1] + 1  # resumed from the store


def test_crashed_node_loses_its_messages_and_keeps_its_height():
    scenario = scenario_from_plain({"events": [
        {"at_ms": 1000, "kind": "crash", "node": 2, "until_ms": 3000}]})
    sim = Simulation(FakeBackend(), scenario, 4, 3, 8_000, SimOptions(keep_trace_lines=100_000))
    result = sim.run()
    lines = sim.trace.kept
    crash_at = next(l["t_us"] for l in lines if l["kind"] == "crash")
    restart_at = next(l["t_us"] for l in lines if l["kind"] == "restart")
    down = [l for l in lines if l["kind"] == "drop" and l.get("note") == "down"]
    assert down and all(crash_at <= l["t_us"] < restart_at and l["to"] == 2 for l in down)
    commits_2 = [l["height"] for l in lines if l["kind"] == "commit" and l["node"] == 2]
    # heights continue where the store left them, without repeating or skipping
    assert commits_2 == list(range(1, len(commits_2) + 1))
    assert not any(crash_at <= l["t_us"] < restart_at for l in lines
                   if l["kind"] == "commit" and l["node"] == 2)
    assert result.safe and result.live


def test_partition_drops_cross_traffic_and_heal_restores_progress():
    sim = Simulation(FakeBackend(), builtin("partition-heal", 4, 10_000), 4, 2, 10_000,
                     SimOptions(keep_trace_lines=100_000))
    result = sim.run()
    lines = sim.trace.kept
    drops = [l for l in lines if l["kind"] == "drop" and l.get("note") == "partition"]
    assert drops and all({l["from"] < 2, l["to"] < 2} == {True, False} for l in drops)
    assert result.live and result.safe


TWINS = Scenario("twins", byzantine=(ByzantineRole(0, ("twins",)),))


@pytest.mark.parametrize("scenario", [TWINS, builtin("equivocating-primary", 4, 6_000)],
                         ids=["twins", "equivocate"])
def test_equivocation_forks_the_fake_and_the_checker_sees_it(scenario):
    # the fake has no votes, so an equivocating leader splits the honest nodes: the checker
    # must notice, stop the run, and count it
    result = run(scenario)
    assert result.safety_violations >= 1
    assert not result.safe
    assert result.violations[0]["kind"] in ("conflicting_commit", "conflicting_state")


def test_equivocating_wrapper_sends_the_conflicting_proposal_to_the_upper_half():
    sim = Simulation(FakeBackend(), builtin("equivocating-primary", 4, 6_000), 4, 1, 6_000,
                     SimOptions(keep_trace_lines=100_000, stop_on_violation=False))
    sim.run()
    proposals = [l for l in sim.trace.kept if l["kind"] == "deliver" and l["type"] == "propose"]
    by_target = {}
    for line in proposals:
        by_target.setdefault(line["to"], set()).add(line.get("note", ""))
    assert by_target == {1: {""}, 2: {""}, 3: {"equivocated"}}


def test_twins_talk_to_their_own_half_only():
    scenario = replace(TWINS, twin_sides=((1, 2), (3,)))
    sim = Simulation(FakeBackend(), scenario, 4, 1, 6_000,
                     SimOptions(keep_trace_lines=100_000, stop_on_violation=False))
    sim.run()
    for line in sim.trace.kept:
        if line["kind"] == "deliver" and "from_twin" in line:
            assert line["to"] in ((1, 2) if line["from_twin"] == 0 else (3,))


def test_silent_node_sends_nothing():
    scenario = Scenario("silent", byzantine=(ByzantineRole(2, ("silent",)),))
    sim = Simulation(FakeBackend(), scenario, 4, 1, 4_000, SimOptions(keep_trace_lines=100_000))
    result = sim.run()
    assert not any(l["kind"] in ("deliver", "drop") and l["from"] == 2 for l in sim.trace.kept)
    assert result.safe and result.live
    assert result.heights.keys() == {0, 1, 3}


def test_forged_and_corrupt_messages_are_rejected_by_the_receivers():
    backend = FakeBackend()
    scenario = Scenario("forge", byzantine=(ByzantineRole(0, ("forge", "corrupt"), rate=0.5),))
    sim = Simulation(backend, scenario, 4, 1, 4_000, SimOptions(keep_trace_lines=100_000))
    sim.run()
    notes = {l.get("note") for l in sim.trace.kept if l["kind"] == "deliver"}
    assert {"forged", "corrupted"} <= notes
    assert sum(core.bad_messages for core in backend.cores) > 0


def test_replayer_resends_old_messages():
    scenario = Scenario("replay", byzantine=(ByzantineRole(1, ("replay",), rate=1.0),))
    sim = Simulation(FakeBackend(), scenario, 4, 1, 4_000, SimOptions(keep_trace_lines=100_000))
    result = sim.run()
    replayed = [l for l in sim.trace.kept if l.get("note") == "replayed"]
    assert replayed and all(l["from"] == 1 for l in replayed)
    assert result.safe


def test_clock_skew_shifts_the_time_a_node_sees():
    scenario = Scenario("skew", max_clock_skew_ms=0,
                        events=(FaultEvent(0, "skew", (0,), params=(("skew_ms", 5_000),)),))
    sim = Simulation(FakeBackend(), scenario, 4, 1, 4_000)
    sim.run()
    leader, follower = sim.by_replica[0][0], sim.by_replica[1][0]
    assert sim.node_now_ms(leader) - sim.node_now_ms(follower) == 5_000


def test_virtual_cpu_cost_slows_the_run_in_virtual_time():
    scenario = builtin("normal", 4, 3_000)
    free = run(scenario, duration_ms=3_000)
    costly = run(scenario, duration_ms=3_000,
                 crypto=CryptoCost(verify_us=150_000, sign_us=150_000))
    # a signature costs 150 ms of virtual CPU, so a leader ticking every 50 ms falls behind
    assert costly.committed_height < free.committed_height // 2
    assert costly.safe


def test_fast_verification_accepts_run_signatures_and_rejects_forgeries():
    backend = FakeBackend()
    scenario = Scenario("forge", byzantine=(ByzantineRole(0, ("forge",), rate=0.5),))
    sim = Simulation(backend, scenario, 4, 1, 3_000,
                     SimOptions(crypto=CryptoCost(real_verify=False)))
    result = sim.run()
    assert result.committed_height > 10
    assert sum(core.bad_messages for core in backend.cores) > 0


@pytest.mark.parametrize("name", ["normal", "crash-primary", "partition-heal", "lossy-network"])
def test_fake_scenarios_over_seeds(name):
    for seed in range(4):
        result = run(builtin(name, 4, 6_000), seed=seed, duration_ms=6_000)
        assert result.safe and result.live, (name, seed, result.violations)
