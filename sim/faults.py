"""Fault injection: timed fault events and Byzantine behaviours.

Two kinds of faults:

- ``FaultEvent``: something that happens to the system at a virtual time -- a crash, a
  restart from the node's own store, a partition, its heal, a network profile change for a
  window (loss, duplication, reordering, replays), extra delays on some links, a clock skew.
- ``Behaviour``: what a Byzantine replica does to its own traffic, as a wrapper around an
  honest NodeCore's output -- withhold it (silent), corrupt it, forge signatures on it,
  replay old messages, or equivocate: as primary, send each proposal to one half of the
  replicas and a conflicting, properly signed proposal for the same height to the other half.
- ``twins``: the strongest equivocator is not a wrapper. The simulation runs two twins of the
  replica (same key, separate stores, slightly different clocks), each talking to one half of
  the honest replicas and voting there as if the other half did not exist (the Twins
  technique, Bano et al. 2020). With f+1 twinned replicas, safety must break.

Every behaviour draws from its own stream (``fault/<behaviour>/<replica>``), so switching one
on never changes the network's or the workload's draws.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

BYZANTINE_BEHAVIOURS = ("silent", "equivocate", "twins", "forge", "corrupt", "replay")
EVENT_KINDS = ("crash", "restart", "partition", "heal", "network", "delay", "skew")

REPLAY_BUFFER_MESSAGES = 512  # old messages a replaying node keeps to send again
REPLAY_MAX_PER_TICK = 4


@dataclass(frozen=True, slots=True)
class FaultEvent:
    """A timed fault. ``params`` holds kind-specific fields as sorted (name, value) pairs."""

    at_ms: int
    kind: str
    nodes: tuple[int, ...] = ()
    until_ms: int | None = None  # when the fault heals (restart, heal, profile restored)
    params: tuple[tuple[str, Any], ...] = ()

    def param(self, name: str, default: Any = None) -> Any:
        for key, value in self.params:
            if key == name:
                return value
        return default

    def to_plain(self) -> dict:
        plain: dict[str, Any] = {"at_ms": self.at_ms, "kind": self.kind}
        if self.nodes:
            plain["nodes"] = list(self.nodes)
        if self.until_ms is not None:
            plain["until_ms"] = self.until_ms
        for key, value in self.params:
            plain[key] = value
        return plain


@dataclass(frozen=True, slots=True)
class ByzantineRole:
    """Replica ``node`` behaves as ``behaviours`` from ``from_ms`` until ``until_ms`` (None: to
    the end). ``twins`` lasts the whole run (the twins exist from the start)."""

    node: int
    behaviours: tuple[str, ...]
    from_ms: int = 0
    until_ms: int | None = None
    rate: float = 0.3  # share of messages forged/corrupted; replay chance per tick

    def active(self, now_ms: int) -> bool:
        return now_ms >= self.from_ms and (self.until_ms is None or now_ms < self.until_ms)

    def to_plain(self) -> dict:
        plain: dict[str, Any] = {"node": self.node, "behaviours": list(self.behaviours),
                                 "from_ms": self.from_ms, "rate": self.rate}
        if self.until_ms is not None:
            plain["until_ms"] = self.until_ms
        return plain


# --- behaviours as output wrappers ----------------------------------------------------------

Send = tuple[int | None, bytes, str]  # (destination or None for broadcast, data, trace note)


@dataclass(slots=True)
class BehaviourContext:
    """What a behaviour may use: its replica id, the replica count, its stream, and the
    protocol adapter (to parse and re-sign consensus messages)."""

    replica: int
    replica_count: int
    rng: random.Random
    forge_message: Callable[[bytes, random.Random], bytes | None]
    rate: float
    # a conflicting, validly signed variant of one of the replica's own proposals, or None
    conflicting_proposal: Callable[[bytes, random.Random], bytes | None] | None = None


class Behaviour:
    name = "honest"

    def outgoing(self, ctx: BehaviourContext, destination: int | None, data: bytes) -> list[Send]:
        return [(destination, data, "")]

    def on_receive(self, ctx: BehaviourContext, sender: int, data: bytes) -> None:
        return None

    def on_tick(self, ctx: BehaviourContext) -> list[Send]:
        return []


class Silent(Behaviour):
    """Receives and computes as usual, sends nothing."""

    name = "silent"

    def outgoing(self, ctx: BehaviourContext, destination: int | None, data: bytes) -> list[Send]:
        return []


class Corrupt(Behaviour):
    """Flips bytes in a share of its messages: malformed, non-canonical or badly signed."""

    name = "corrupt"

    def outgoing(self, ctx: BehaviourContext, destination: int | None, data: bytes) -> list[Send]:
        if not data or ctx.rng.random() >= ctx.rate:
            return [(destination, data, "")]
        mutated = bytearray(data)
        for _ in range(1 + ctx.rng.randrange(3)):
            index = ctx.rng.randrange(len(mutated))
            mutated[index] ^= 1 << ctx.rng.randrange(8)
        return [(destination, bytes(mutated), "corrupted")]


class Forge(Behaviour):
    """Sends well-formed messages with forged signatures (another replica's identity or a
    signature that does not verify), next to or instead of its own."""

    name = "forge"

    def outgoing(self, ctx: BehaviourContext, destination: int | None, data: bytes) -> list[Send]:
        if ctx.rng.random() >= ctx.rate:
            return [(destination, data, "")]
        forged = ctx.forge_message(data, ctx.rng)
        if forged is None:
            return [(destination, data, "")]
        if ctx.rng.random() < 0.5:
            return [(destination, forged, "forged")]
        return [(destination, data, ""), (destination, forged, "forged")]


class Equivocate(Behaviour):
    """As primary, sends each proposal to the lower half of the other replicas and a
    conflicting proposal for the same (view, height) -- same parent, different block, signed
    with the replica's own key -- to the upper half."""

    name = "equivocate"

    def outgoing(self, ctx: BehaviourContext, destination: int | None, data: bytes) -> list[Send]:
        if ctx.conflicting_proposal is None:
            return [(destination, data, "")]
        other = ctx.conflicting_proposal(data, ctx.rng)
        if other is None:
            return [(destination, data, "")]
        others = [r for r in range(ctx.replica_count) if r != ctx.replica]
        first_half = frozenset(others[: (len(others) + 1) // 2])
        targets = others if destination is None else [destination]
        return [(target, data, "") if target in first_half else (target, other, "equivocated")
                for target in targets]


class Replay(Behaviour):
    """Keeps old messages (its own and those it received) and sends them again later, to
    anyone, from old views and heights."""

    name = "replay"

    def __init__(self) -> None:
        self._buffer: deque[bytes] = deque(maxlen=REPLAY_BUFFER_MESSAGES)

    def outgoing(self, ctx: BehaviourContext, destination: int | None, data: bytes) -> list[Send]:
        self._buffer.append(data)
        return [(destination, data, "")]

    def on_receive(self, ctx: BehaviourContext, sender: int, data: bytes) -> None:
        self._buffer.append(data)

    def on_tick(self, ctx: BehaviourContext) -> list[Send]:
        if not self._buffer or ctx.rng.random() >= ctx.rate:
            return []
        sends: list[Send] = []
        for _ in range(1 + ctx.rng.randrange(REPLAY_MAX_PER_TICK)):
            data = self._buffer[ctx.rng.randrange(len(self._buffer))]
            target = ctx.rng.randrange(ctx.replica_count)
            if target != ctx.replica:
                sends.append((target, data, "replayed"))
        return sends


_WRAPPERS: dict[str, type[Behaviour]] = {
    "silent": Silent,
    "equivocate": Equivocate,
    "corrupt": Corrupt,
    "forge": Forge,
    "replay": Replay,
}


def make_behaviours(names: tuple[str, ...]) -> list[Behaviour]:
    """Output wrappers for ``names`` in a fixed order (``twins`` is not a wrapper)."""
    return [_WRAPPERS[name]() for name in BYZANTINE_BEHAVIOURS if name in names and name in _WRAPPERS]


@dataclass(slots=True)
class BehaviourStack:
    """The wrappers of one Byzantine replica, applied in order to each outgoing message."""

    role: ByzantineRole
    behaviours: list[Behaviour] = field(default_factory=list)

    def outgoing(self, ctx: BehaviourContext, now_ms: int, destination: int | None,
                 data: bytes) -> list[Send]:
        sends: list[Send] = [(destination, data, "")]
        if not self.role.active(now_ms):
            return sends
        for behaviour in self.behaviours:
            next_sends: list[Send] = []
            for dest, item, note in sends:
                for new_dest, new_item, new_note in behaviour.outgoing(ctx, dest, item):
                    next_sends.append((new_dest, new_item, new_note or note))
            sends = next_sends
        return sends

    def on_receive(self, ctx: BehaviourContext, now_ms: int, sender: int, data: bytes) -> None:
        if self.role.active(now_ms):
            for behaviour in self.behaviours:
                behaviour.on_receive(ctx, sender, data)

    def on_tick(self, ctx: BehaviourContext, now_ms: int) -> list[Send]:
        if not self.role.active(now_ms):
            return []
        sends: list[Send] = []
        for behaviour in self.behaviours:
            sends.extend(behaviour.on_tick(ctx))
        return sends
