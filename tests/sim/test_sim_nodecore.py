"""The simulator driving real NodeCores (PBFT replica, plan application, mempool, MemoryStore).

Every built-in scenario runs over several seeds (a short form here; a longer sweep is marked
slow) with no safety violation and progress after the faults heal. The same seed gives the
same trace twice; f+1 colluding twinned replicas must break safety on some seed, proving the
checker is not vacuous; a replica that crashes and restarts from its store rejoins without
ever signing two different votes for one (view, height, phase).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict

import pytest

from sim.backend import CryptoCost
from sim.checkers import VoteChecker
from sim.faults import ByzantineRole
from sim.nodes import NodeBackend
from sim.protocol import VOTE_KINDS
from sim.scenarios import BUILTIN, Scenario, builtin, colluding_equivocators, scenario_from_plain
from sim.simulation import SimOptions, Simulation
from sim.trace import read_trace

SHORT_MS = 4_000


def run(scenario: Scenario, seed: int, nodes: int = 4, duration_ms: int = SHORT_MS,
        **options):
    return Simulation(NodeBackend(), scenario, nodes, seed, duration_ms,
                      SimOptions(**options)).run()


def assert_safe_and_live(result, label) -> None:
    assert result.safety_violations == 0, (label, result.violations)
    assert result.double_signs == 0, (label, result.violations)
    assert result.liveness_violations == 0, (label, result.violations)
    assert result.committed_height > 0, label


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_builtin_scenarios_are_safe_and_live(name):
    for seed in (1, 2):
        result = run(builtin(name, 4, SHORT_MS), seed)
        assert_safe_and_live(result, (name, seed))
        if name != "normal":
            assert result.messages_dropped > 0 or result.faulty > 0 or result.view_changes > 0


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("nodes", [4, 7])
@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_builtin_scenarios_over_many_seeds(name, nodes, seed):
    duration_ms = 10_000
    result = run(builtin(name, nodes, duration_ms), seed, nodes, duration_ms)
    assert_safe_and_live(result, (name, nodes, seed))


def test_retransmission_recovers_lost_messages_without_view_changes():
    """On the lossy WAN a lost vote used to stall its height until the view-change timer;
    re-sending it (and relaying the pre-prepare) keeps the view and commits more."""
    from dataclasses import replace
    duration_ms = 10_000
    lossy = builtin("lossy-network", 4, duration_ms)
    totals = {}
    for label, scenario in (("on", lossy),
                            ("off", replace(lossy, consensus=(("retransmit_ticks", 0),)))):
        view_changes = txs = 0
        for seed in (1, 2):
            result = run(scenario, seed, 4, duration_ms)
            assert_safe_and_live(result, (label, seed))
            view_changes += result.view_changes
            txs += result.committed_txs
        totals[label] = (view_changes, txs)
    assert totals["on"][0] < totals["off"][0], totals
    assert totals["on"][1] > totals["off"][1], totals


def test_an_equivocating_primary_that_keeps_the_chain_crawling_is_replaced():
    """byzantine-mix's faulty primary equivocates, forges and replays; retransmission alone
    would repair each stall just under the timer and keep it primary. The relayed
    pre-prepares prove the equivocation and every honest replica leaves its view."""
    duration_ms = 6_000
    result = run(builtin("byzantine-mix", 4, duration_ms), 1, 4, duration_ms)
    assert_safe_and_live(result, "byzantine-mix")
    assert result.view_changes >= 1
    assert result.committed_height > 300  # about 50 blocks per virtual second once replaced


@pytest.mark.parametrize("seed", [1, 2, 3, 33, 34])
def test_an_equivocating_primary_whose_chain_commits_is_replaced_at_n4(seed):
    """At n=4 the equivocating primary's first block commits (two backups got it); the third
    backup, which accepted the other block, holds the proof and spreads it. These seeds
    reported no view change at all before it did."""
    duration_ms = 3_000
    result = run(builtin("equivocating-primary", 4, duration_ms), seed, 4, duration_ms)
    assert_safe_and_live(result, ("equivocating-primary", seed))
    assert result.view_changes >= 1


def test_the_plan_workload_commits_transactions():
    result = run(builtin("normal", 4, 3_000), 5, duration_ms=3_000)
    assert result.committed_txs > 20
    assert result.max_committed_height - result.committed_height <= 2


def test_same_seed_same_trace_and_a_different_seed_differs(tmp_path):
    scenario = builtin("lossy-network", 4, SHORT_MS)
    first = run(scenario, 11, trace_path=str(tmp_path / "a.jsonl"))
    second = run(scenario, 11, trace_path=str(tmp_path / "b.jsonl"))
    other = run(scenario, 12)
    assert first.trace_sha256 == second.trace_sha256
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    assert hashlib.sha256((tmp_path / "a.jsonl").read_bytes()).hexdigest() == first.trace_sha256
    assert other.trace_sha256 != first.trace_sha256


def test_fast_crypto_follows_the_same_protocol_path():
    # the signature table accepts exactly what real verification accepts, so with forgers
    # around the two modes make the same decisions and produce the same trace
    scenario = builtin("byzantine-mix", 4, 3_000)
    real = run(scenario, 3, duration_ms=3_000, crypto=CryptoCost(60, 30, real_verify=True))
    fast = run(scenario, 3, duration_ms=3_000, crypto=CryptoCost(60, 30, real_verify=False))
    assert real.trace_sha256 == fast.trace_sha256
    assert_safe_and_live(fast, "fast")


def test_safety_checker_is_not_vacuous_with_f_plus_one_colluding_twins():
    scenario = colluding_equivocators(4, 4_000)
    violations = []
    for seed in range(6):
        result = run(scenario, seed, duration_ms=4_000)
        if result.safety_violations:
            violations.append((seed, result.violations[0]["kind"]))
    assert violations, "f+1 colluding equivocators never broke safety: the checker is vacuous"
    assert {kind for _, kind in violations} <= {"conflicting_commit", "conflicting_state"}


def test_double_sign_checker_is_not_vacuous():
    # a twinned replica signs different proposals and votes for the same slots towards each
    # half; counted (wrongly, on purpose) as honest, the vote checker must flag it
    scenario = Scenario("twins", byzantine=(ByzantineRole(0, ("twins",)),))
    sim = Simulation(NodeBackend(), scenario, 4, 1, 3_000, SimOptions(stop_on_violation=False))
    sim.votes = VoteChecker(range(4), VOTE_KINDS)
    sim.run()
    assert sim.votes.count > 0
    assert sim.votes.violations[0].kind == "double_sign"
    assert "replica 0" in sim.votes.violations[0].detail


CRASH_CYCLES = scenario_from_plain({
    "name": "crash-cycles",
    "grace_ms": 2_000,
    "events": [
        {"at_ms": 700, "kind": "crash", "node": 2, "until_ms": 1500},
        {"at_ms": 2100, "kind": "crash", "node": 2, "until_ms": 2600},
        {"at_ms": 3000, "kind": "crash", "node": 2, "until_ms": 3600},
    ],
})


@pytest.mark.parametrize("scenario, replica", [(CRASH_CYCLES, 2),
                                               (builtin("crash-primary", 4, 6_000), 0)],
                         ids=["backup-crash-cycles", "crash-primary"])
def test_restarted_replica_rejoins_without_double_votes(tmp_path, scenario, replica):
    path = tmp_path / "trace.jsonl"
    sim = Simulation(NodeBackend(), scenario, 4, 7, 6_000, SimOptions(trace_path=str(path)))
    result = sim.run()
    assert_safe_and_live(result, scenario.name)
    lines = read_trace(path)
    restarts = [l["t_us"] for l in lines if l["kind"] == "restart" and l["node"] == replica]
    assert restarts
    # it commits again after its last restart, and catches up with the others
    after = [l for l in lines if l["kind"] == "commit" and l["node"] == replica
             and l["t_us"] > restarts[-1]]
    assert after
    assert result.heights[replica] >= result.committed_height
    # from the trace: every (view, height, type) vote the replica sent has one digest only;
    # a re-sent vote is byte-identical (Ed25519 is deterministic), a different vote is not
    digests = defaultdict(set)
    for line in lines:
        if (line["kind"] in ("deliver", "drop") and line["from"] == replica
                and line["type"] in ("preprepare", "prepare", "commit")):
            digests[(line["type"], line["view"], line["height"])].add(line["digest"])
    assert digests
    assert all(len(seen) == 1 for seen in digests.values()), {
        slot: seen for slot, seen in digests.items() if len(seen) > 1}
    # and the checker, which looks at every vote as it is sent, saw them too
    assert sim.votes.votes_seen > 0 and sim.votes.count == 0
