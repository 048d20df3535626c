"""The simulated network: latency per region pair, jitter, bandwidth, loss, duplication,
reordering, replays, extra delays and partitions that heal.

The network only decides *when* (if ever) each copy of a message arrives; the simulation
schedules and traces the deliveries. Every draw comes from the sending replica's own stream
(``network/<replica>``), so a change in one node's traffic never shifts another node's draws.
Links are FIFO unless a message is picked for reordering: a copy never overtakes an earlier
copy on the same link otherwise, as on a TCP connection. Each sender has one uplink of
``bandwidth_bytes_per_ms``; a broadcast queues its copies on it, so big consortia pay for
their O(n^2) traffic in virtual time.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from sim.rng import RandomStreams
from sim.runtime import US_PER_MS

MAX_LATENCY_MS = 60_000
MAX_DELAY_RULES = 1024


@dataclass(frozen=True, slots=True)
class NetworkProfile:
    """Link behaviour. Probabilities are per copy of a message; times in virtual ms."""

    regions: tuple[str, ...] = ("dc",)
    # one-way latency between regions, a symmetric matrix indexed like ``regions``
    latency_ms: tuple[tuple[int, ...], ...] = ((2,),)
    jitter_ms: int = 1
    bandwidth_bytes_per_ms: int = 12_500  # 100 Mbit/s uplink per node
    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    reorder_ms: int = 20  # a reordered copy is held back up to this long
    replay: float = 0.0  # chance a copy is captured and delivered again later
    replay_delay_ms: tuple[int, int] = (200, 2_000)

    def validate(self) -> None:
        count = len(self.regions)
        if count == 0:
            raise ValueError("a network needs at least one region")
        if len(self.latency_ms) != count or any(len(row) != count for row in self.latency_ms):
            raise ValueError("latency_ms must be a square matrix over the regions")
        for i in range(count):
            for j in range(count):
                value = self.latency_ms[i][j]
                if type(value) is not int or not 0 <= value <= MAX_LATENCY_MS:
                    raise ValueError(f"latency_ms[{i}][{j}] must be an integer in [0, {MAX_LATENCY_MS}]")
                if value != self.latency_ms[j][i]:
                    raise ValueError("latency_ms must be symmetric")
        for name in ("loss", "duplicate", "reorder", "replay"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1]")
        if self.loss >= 1.0:
            raise ValueError("loss must be below 1 or nothing is ever delivered")
        for name in ("jitter_ms", "reorder_ms"):
            value = getattr(self, name)
            if type(value) is not int or not 0 <= value <= MAX_LATENCY_MS:
                raise ValueError(f"{name} must be an integer in [0, {MAX_LATENCY_MS}]")
        if type(self.bandwidth_bytes_per_ms) is not int or self.bandwidth_bytes_per_ms <= 0:
            raise ValueError("bandwidth_bytes_per_ms must be a positive integer")
        low, high = self.replay_delay_ms
        if not 0 <= low <= high <= MAX_LATENCY_MS:
            raise ValueError("replay_delay_ms must be [low, high] with 0 <= low <= high")

    def to_plain(self) -> dict[str, Any]:
        return {
            "regions": list(self.regions),
            "latency_ms": [list(row) for row in self.latency_ms],
            "jitter_ms": self.jitter_ms,
            "bandwidth_bytes_per_ms": self.bandwidth_bytes_per_ms,
            "loss": self.loss,
            "duplicate": self.duplicate,
            "reorder": self.reorder,
            "reorder_ms": self.reorder_ms,
            "replay": self.replay,
            "replay_delay_ms": list(self.replay_delay_ms),
        }

    @classmethod
    def from_plain(cls, value: Any, base: "NetworkProfile | None" = None) -> "NetworkProfile":
        """A profile from a mapping; missing fields come from ``base`` (or the defaults)."""
        if isinstance(value, str):
            return named_profile(value)
        if not isinstance(value, dict):
            raise ValueError("a network profile is a name or a mapping")
        profile = base if base is not None else NetworkProfile()
        if "profile" in value:
            profile = named_profile(value["profile"])
        known = set(NetworkProfile.__dataclass_fields__)
        changes: dict[str, Any] = {}
        for key in sorted(value):
            if key == "profile":
                continue
            if key not in known:
                raise ValueError(f"unknown network field {key!r}")
            item = value[key]
            if key == "regions":
                item = tuple(str(region) for region in item)
            elif key == "latency_ms":
                item = tuple(tuple(row) for row in item)
            elif key == "replay_delay_ms":
                item = tuple(item)
                if len(item) != 2:
                    raise ValueError("replay_delay_ms is [low, high]")
            changes[key] = item
        if "regions" in changes and "latency_ms" not in changes:
            count = len(changes["regions"])
            changes["latency_ms"] = tuple(tuple(profile.latency_ms[0][0] for _ in range(count))
                                          for _ in range(count))
        profile = replace(profile, **changes)
        profile.validate()
        return profile


# Five mainland data-centre regions of a consortium; one-way latencies in ms, roughly half the
# public round-trip times between the cities.
_WAN_REGIONS = ("hangzhou", "shanghai", "beijing", "shenzhen", "chengdu")
_WAN_LATENCY_MS = (
    (1, 4, 14, 16, 20),
    (4, 1, 13, 17, 21),
    (14, 13, 1, 22, 19),
    (16, 17, 22, 1, 16),
    (20, 21, 19, 16, 1),
)

PROFILES: dict[str, NetworkProfile] = {
    "lan": NetworkProfile(),
    "wan": NetworkProfile(regions=_WAN_REGIONS, latency_ms=_WAN_LATENCY_MS, jitter_ms=4,
                          bandwidth_bytes_per_ms=6_250),
    "lossy": NetworkProfile(regions=_WAN_REGIONS, latency_ms=_WAN_LATENCY_MS, jitter_ms=8,
                            bandwidth_bytes_per_ms=6_250, loss=0.05, duplicate=0.02,
                            reorder=0.05, reorder_ms=30),
}


def named_profile(name: str) -> NetworkProfile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown network profile {name!r}; known: {sorted(PROFILES)}") from None


@dataclass(frozen=True, slots=True)
class Copy:
    """One copy of a message the network will deliver at ``arrive_us``."""

    arrive_us: int
    note: str  # "" for the original, "duplicate", "reordered" or "replay"


@dataclass(slots=True)
class DelayRule:
    """Extra latency for messages from ``sources`` to ``targets`` (None = any) until ``end_us``."""

    sources: frozenset[int] | None
    targets: frozenset[int] | None
    extra_ms: int
    end_us: int

    def applies(self, source: int, target: int, now_us: int) -> bool:
        return (now_us < self.end_us
                and (self.sources is None or source in self.sources)
                and (self.targets is None or target in self.targets))


@dataclass(slots=True)
class _Link:
    last_arrive_us: int = 0


class Network:
    """Link state and the delivery-time decisions for one run.

    ``source``/``target`` here are replica ids; ``channel`` distinguishes the endpoints that
    share one replica id (a twin of an equivocating node) so each has its own FIFO link.
    """

    def __init__(self, profile: NetworkProfile, replica_count: int, streams: RandomStreams) -> None:
        profile.validate()
        self.profile = profile
        self.replica_count = replica_count
        self._streams = streams
        self._uplink_free_us: dict[int, int] = {}
        self._links: dict[tuple[Any, Any], _Link] = {}
        self._groups: dict[int, int] | None = None  # replica -> partition group
        self.delay_rules: list[DelayRule] = []

    # --- topology ---------------------------------------------------------------------

    def region_of(self, replica: int) -> int:
        return replica % len(self.profile.regions)

    def latency_ms(self, source: int, target: int) -> int:
        return self.profile.latency_ms[self.region_of(source)][self.region_of(target)]

    def partition(self, groups: Sequence[Sequence[int]]) -> None:
        """Cut the network into ``groups``; replicas not listed form one more group together."""
        mapping: dict[int, int] = {}
        for index, group in enumerate(groups):
            for replica in group:
                if replica in mapping:
                    raise ValueError(f"replica {replica} is in two partition groups")
                mapping[replica] = index
        rest = len(groups)
        for replica in range(self.replica_count):
            mapping.setdefault(replica, rest)
        self._groups = mapping

    def heal(self) -> None:
        self._groups = None

    @property
    def partitioned(self) -> bool:
        return self._groups is not None

    def connected(self, source: int, target: int) -> bool:
        if self._groups is None:
            return True
        return self._groups.get(source) == self._groups.get(target)

    def add_delay(self, rule: DelayRule, now_us: int) -> None:
        self.delay_rules = [r for r in self.delay_rules if r.end_us > now_us]
        if len(self.delay_rules) >= MAX_DELAY_RULES:
            raise ValueError("too many delay rules at once")
        self.delay_rules.append(rule)

    def set_profile(self, profile: NetworkProfile) -> None:
        profile.validate()
        if len(profile.regions) != len(self.profile.regions):
            # region assignment is by replica id modulo the region count; keep it stable
            raise ValueError("a profile change must keep the number of regions")
        self.profile = profile

    # --- delivery decisions -----------------------------------------------------------

    def rng(self, source: int) -> random.Random:
        return self._streams.stream(f"network/{source}")

    def transmit(self, now_us: int, source: int, target: int, size_bytes: int,
                 channel: tuple[Any, Any] | None = None) -> tuple[list[Copy], str]:
        """Copies of one message from ``source`` to ``target``, or ``([], reason)`` if lost."""
        profile = self.profile
        rng = self.rng(source)
        # queue on the sender's uplink: serialization time at its bandwidth
        start_us = max(now_us, self._uplink_free_us.get(source, 0))
        serialize_us = -(-size_bytes * US_PER_MS // profile.bandwidth_bytes_per_ms)
        sent_us = start_us + serialize_us
        self._uplink_free_us[source] = sent_us
        if not self.connected(source, target):
            return [], "partition"
        if profile.loss and rng.random() < profile.loss:
            return [], "loss"
        latency_us = self.latency_ms(source, target) * US_PER_MS
        if profile.jitter_ms:
            latency_us += rng.randrange(profile.jitter_ms * US_PER_MS + 1)
        for rule in self.delay_rules:
            if rule.applies(source, target, now_us):
                latency_us += rule.extra_ms * US_PER_MS
        arrive_us = sent_us + latency_us
        link = self._links.setdefault(channel if channel is not None else (source, target), _Link())
        copies: list[Copy]
        if profile.reorder and rng.random() < profile.reorder:
            # held back without the FIFO clamp, so later messages on the link can overtake it
            arrive_us += rng.randrange(profile.reorder_ms * US_PER_MS + 1)
            copies = [Copy(arrive_us, "reordered")]
        else:
            arrive_us = max(arrive_us, link.last_arrive_us)
            link.last_arrive_us = arrive_us
            copies = [Copy(arrive_us, "")]
        if profile.duplicate and rng.random() < profile.duplicate:
            extra_us = rng.randrange((profile.reorder_ms + profile.jitter_ms) * US_PER_MS + 1)
            copies.append(Copy(arrive_us + extra_us, "duplicate"))
        if profile.replay and rng.random() < profile.replay:
            low, high = profile.replay_delay_ms
            copies.append(Copy(arrive_us + rng.randint(low, high) * US_PER_MS, "replay"))
        return copies, ""


