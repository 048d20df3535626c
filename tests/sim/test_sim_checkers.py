"""The checkers fire on exactly the situations they exist for."""

from __future__ import annotations

from sim.checkers import LivenessChecker, SafetyChecker, VoteChecker

A = b"\xaa" * 32
B = b"\xbb" * 32


def test_agreeing_commits_are_safe():
    checker = SafetyChecker([0, 1, 2])
    for replica in (0, 1, 2):
        assert checker.on_commit(10, replica, 1, A) is None
        assert checker.on_state(10, replica, 1, B) is None
    assert checker.count == 0
    assert checker.highest_agreed() == 1


def test_two_honest_nodes_committing_different_blocks_is_a_violation():
    checker = SafetyChecker([0, 1, 2])
    checker.on_commit(10, 0, 5, A)
    violation = checker.on_commit(11, 2, 5, B)
    assert violation is not None and violation.kind == "conflicting_commit"
    assert checker.count == 1


def test_different_state_roots_after_one_height_is_a_violation():
    checker = SafetyChecker([0, 1])
    checker.on_state(10, 0, 3, A)
    violation = checker.on_state(10, 1, 3, B)
    assert violation is not None and violation.kind == "conflicting_state"


def test_a_node_recommitting_a_height_differently_is_a_fork():
    checker = SafetyChecker([0, 1])
    checker.on_commit(10, 0, 1, A)
    assert checker.on_commit(11, 0, 1, A) is None  # the same block again is harmless
    violation = checker.on_commit(12, 0, 1, B)
    assert violation is not None and violation.kind == "node_fork"


def test_byzantine_commits_are_ignored():
    checker = SafetyChecker([1, 2])
    checker.on_commit(10, 0, 1, A)  # replica 0 is Byzantine
    assert checker.on_commit(10, 1, 1, B) is None
    assert checker.count == 0


def test_vote_checker_flags_two_digests_for_one_slot():
    checker = VoteChecker([0, 1], ["prepare", "commit"])
    assert checker.on_vote(1, 0, "prepare", 0, 1, A) is None
    assert checker.on_vote(2, 0, "prepare", 0, 1, A) is None  # retransmission
    assert checker.on_vote(3, 0, "commit", 0, 1, B) is None   # another phase
    assert checker.on_vote(3, 0, "prepare", 1, 1, B) is None  # another view
    assert checker.on_vote(3, 5, "prepare", 0, 1, B) is None  # not an honest replica
    violation = checker.on_vote(4, 0, "prepare", 0, 1, B)
    assert violation is not None and violation.kind == "double_sign"
    assert checker.count == 1


def test_liveness_requires_progress_of_every_running_honest_node():
    checker = LivenessChecker([0, 1, 2])
    checker.mark_baseline(100, {0: 5, 1: 5, 2: 3})
    assert checker.check_end(200, {0: 9, 1: 8, 2: 4}, running=[0, 1, 2]) == []
    found = checker.check_end(200, {0: 9, 1: 5, 2: 3}, running=[0, 1])
    assert [v.kind for v in found] == ["no_progress"]  # 1 stalled; 2 is down, so not judged
    assert "replica 1" in found[0].detail


def test_liveness_without_a_baseline_fails():
    checker = LivenessChecker([0])
    assert checker.check_end(10, {0: 1}, running=[0])[0].kind == "no_progress"
