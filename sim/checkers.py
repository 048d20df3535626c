"""Safety and liveness checkers, run by the simulation after every delivered event.

- ``SafetyChecker``: no two honest nodes commit different blocks at one height, no honest
  node's store holds a different state root than another's after the same height, and no
  node commits a height twice with different blocks.
- ``VoteChecker``: no honest replica ever signs two different payloads for one
  (kind, view, height) -- the property crash recovery must keep (votes persisted before sent).
- ``LivenessChecker``: after the last fault heals plus a grace period, every honest node that
  is up has committed something new.

A checker never raises on a violation; it records a ``Violation`` for the run to report, so a
failing run still yields its trace and its seed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

MAX_VIOLATIONS_KEPT = 100  # the count keeps growing; only the first few are kept in full


@dataclass(frozen=True, slots=True)
class Violation:
    t_us: int
    kind: str  # conflicting_commit | conflicting_state | node_fork | double_sign | no_progress
    detail: str

    def to_plain(self) -> dict:
        return {"t_us": self.t_us, "kind": self.kind, "detail": self.detail}


@dataclass(slots=True)
class _Recorder:
    violations: list[Violation] = field(default_factory=list)
    count: int = 0

    def add(self, violation: Violation) -> Violation:
        self.count += 1
        if len(self.violations) < MAX_VIOLATIONS_KEPT:
            self.violations.append(violation)
        return violation


class SafetyChecker:
    """Agreement on committed blocks and state roots among honest replicas."""

    def __init__(self, honest: Iterable[int]) -> None:
        self.honest = frozenset(honest)
        self._block_at: dict[int, tuple[int, bytes]] = {}   # height -> (first replica, hash)
        self._state_at: dict[int, tuple[int, bytes]] = {}   # height -> (first replica, root)
        self._own: dict[int, dict[int, bytes]] = {}         # replica -> height -> hash
        self.recorder = _Recorder()

    @property
    def count(self) -> int:
        return self.recorder.count

    @property
    def violations(self) -> list[Violation]:
        return self.recorder.violations

    def on_commit(self, t_us: int, replica: int, height: int, block_hash: bytes) -> Violation | None:
        if replica not in self.honest:
            return None
        own = self._own.setdefault(replica, {})
        previous = own.get(height)
        if previous is not None and previous != block_hash:
            return self.recorder.add(Violation(
                t_us, "node_fork",
                f"replica {replica} committed height {height} twice: "
                f"{previous.hex()[:16]} then {block_hash.hex()[:16]}"))
        own[height] = block_hash
        return self._agree(self._block_at, t_us, replica, height, block_hash,
                           "conflicting_commit", f"block at height {height}")

    def on_state(self, t_us: int, replica: int, height: int, state_root: bytes) -> Violation | None:
        """The state root a replica holds after executing ``height``."""
        if replica not in self.honest:
            return None
        return self._agree(self._state_at, t_us, replica, height, state_root,
                           "conflicting_state", f"state after height {height}")

    def _agree(self, first_seen: dict[int, tuple[int, bytes]], t_us: int, replica: int,
               height: int, value: bytes, kind: str, what: str) -> Violation | None:
        """Record the first honest value at ``height``; any other value is a violation."""
        first = first_seen.get(height)
        if first is None:
            first_seen[height] = (replica, value)
            return None
        if first[1] != value:
            return self.recorder.add(Violation(
                t_us, kind, f"{what}: replica {first[0]} has {first[1].hex()[:16]}, "
                            f"replica {replica} has {value.hex()[:16]}"))
        return None

    def highest_agreed(self) -> int:
        return max(self._block_at, default=0)


class VoteChecker:
    """Detects an honest replica signing two different payloads for one vote slot."""

    def __init__(self, honest: Iterable[int], kinds: Iterable[str]) -> None:
        self.honest = frozenset(honest)
        self.kinds = frozenset(kinds)
        self._seen: dict[tuple[int, str, int, int], bytes] = {}
        self.recorder = _Recorder()
        self.votes_seen = 0

    @property
    def count(self) -> int:
        return self.recorder.count

    @property
    def violations(self) -> list[Violation]:
        return self.recorder.violations

    def on_vote(self, t_us: int, replica: int, kind: str, view: int, height: int,
                digest: bytes) -> Violation | None:
        if replica not in self.honest or kind not in self.kinds:
            return None
        self.votes_seen += 1
        slot = (replica, kind, view, height)
        previous = self._seen.get(slot)
        if previous is None:
            self._seen[slot] = digest
            return None
        if previous != digest:
            return self.recorder.add(Violation(
                t_us, "double_sign",
                f"replica {replica} signed two {kind} votes for view {view} height {height}: "
                f"{previous.hex()[:16]} and {digest.hex()[:16]}"))
        return None

    def slots(self) -> int:
        return len(self._seen)


class LivenessChecker:
    """Every honest, running node commits something after ``from_us`` (the last heal + grace)."""

    def __init__(self, honest: Iterable[int]) -> None:
        self.honest = tuple(sorted(honest))
        self._baseline: dict[int, int] | None = None
        self.baseline_us: int | None = None
        self.recorder = _Recorder()

    @property
    def count(self) -> int:
        return self.recorder.count

    @property
    def violations(self) -> list[Violation]:
        return self.recorder.violations

    def mark_baseline(self, t_us: int, heights: dict[int, int]) -> None:
        """Record every honest node's committed height when the last fault has healed."""
        self.baseline_us = t_us
        self._baseline = {replica: heights.get(replica, 0) for replica in self.honest}

    def check_end(self, t_us: int, heights: dict[int, int], running: Iterable[int]) -> list[Violation]:
        if self._baseline is None:
            return [self.recorder.add(Violation(t_us, "no_progress",
                                                "the run ended before its faults healed"))]
        found = []
        running_set = frozenset(running)
        for replica in self.honest:
            if replica not in running_set:
                continue
            before = self._baseline[replica]
            after = heights.get(replica, 0)
            if after <= before:
                found.append(self.recorder.add(Violation(
                    t_us, "no_progress",
                    f"replica {replica} stayed at height {after} after the faults healed "
                    f"(baseline at t={self.baseline_us}us)")))
        return found
