"""Quorum arithmetic for n replicas tolerating f Byzantine faults."""

from __future__ import annotations


def max_faulty(replica_count: int) -> int:
    """f, the most Byzantine replicas ``replica_count`` replicas tolerate (n >= 3f + 1)."""
    assert replica_count >= 1
    return (replica_count - 1) // 3


def quorum_size(replica_count: int) -> int:
    """Votes that any two quorums share an honest replica in: 2f + 1 when n = 3f + 1."""
    return (replica_count + max_faulty(replica_count)) // 2 + 1


def weak_quorum_size(replica_count: int) -> int:
    """f + 1: enough votes that at least one is honest."""
    return max_faulty(replica_count) + 1
