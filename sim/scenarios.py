"""Scenarios: the built-in ones and the JSON/YAML scenario file format.

A scenario fixes the network profile, the workload, the Byzantine roles and the timed fault
events of a run; the node count and duration come from the scenario or the command line.
Built-in scenarios are functions of (nodes, duration_ms) so they scale: faults start at a
fifth of the run and heal by half of it, leaving the rest for recovery. The file format is
documented in docs/simulation.md.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from ledger.quorum import max_faulty
from sim.faults import BYZANTINE_BEHAVIOURS, EVENT_KINDS, ByzantineRole, FaultEvent
from sim.network import NetworkProfile, named_profile

DEFAULT_NODES = 4
DEFAULT_DURATION_MS = 10_000
DEFAULT_TICK_MS = 20
# The simulated consortium's view-change timeout: shorter than a production default so that a
# run of a few virtual seconds sees faults detected and healed.
DEFAULT_VIEW_CHANGE_TIMEOUT_MS = 1_000
DEFAULT_MAX_VIEW_CHANGE_TIMEOUT_MS = 16_000
DEFAULT_GRACE_MS = 3_000
DEFAULT_MAX_CLOCK_SKEW_MS = 20
MAX_NODES = 1024
MAX_DURATION_MS = 24 * 3600 * 1000
MAX_EVENTS = 10_000
MAX_CLIENTS = 10_000


class ScenarioError(ValueError):
    """A scenario that cannot be run (bad file, unknown fault, too many faulty nodes)."""


@dataclass(frozen=True, slots=True)
class WorkloadSpec:
    """Closed-loop clients: each has one transaction outstanding, waits ``think_ms`` (mean of
    an exponential draw) after its commit, and resubmits to another node after ``timeout_ms``."""

    clients: int = 8
    think_ms: int = 100
    timeout_ms: int = 4_000
    start_ms: int = 0
    stop_ms: int | None = None
    app: str = "auto"  # "kv", "plan" or "auto" (plan when the contracts are installed)

    def to_plain(self) -> dict:
        plain = {"clients": self.clients, "think_ms": self.think_ms,
                 "timeout_ms": self.timeout_ms, "start_ms": self.start_ms, "app": self.app}
        if self.stop_ms is not None:
            plain["stop_ms"] = self.stop_ms
        return plain


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    description: str = ""
    nodes: int | None = None
    duration_ms: int | None = None
    network: NetworkProfile = field(default_factory=NetworkProfile)
    tick_ms: int = DEFAULT_TICK_MS
    max_clock_skew_ms: int = DEFAULT_MAX_CLOCK_SKEW_MS  # each node's initial skew is drawn in ±
    grace_ms: int = DEFAULT_GRACE_MS
    workload: WorkloadSpec = field(default_factory=WorkloadSpec)
    byzantine: tuple[ByzantineRole, ...] = ()
    events: tuple[FaultEvent, ...] = ()
    # the two audiences of twinned replicas; None: honest replicas split in two by id
    twin_sides: tuple[tuple[int, ...], tuple[int, ...]] | None = None
    # a scenario built to break safety (more than f colluders); the checker must fire
    expect_violation: bool = False
    # overrides of the genesis consensus section (consensus.params.ConsensusParams fields)
    consensus: tuple[tuple[str, int], ...] = ()

    def consensus_params(self) -> dict[str, int]:
        """The genesis consensus section of the run: ticks of ``tick_ms``, the simulation's
        timeouts, then the scenario's own overrides."""
        params = {
            "tick_ms": self.tick_ms,
            "view_change_timeout_ticks": max(1, DEFAULT_VIEW_CHANGE_TIMEOUT_MS // self.tick_ms),
            "max_view_change_timeout_ticks": max(1, DEFAULT_MAX_VIEW_CHANGE_TIMEOUT_MS // self.tick_ms),
            # a quarter of the view-change timeout: a lost vote is sent again well before it
            "retransmit_ticks": max(1, DEFAULT_VIEW_CHANGE_TIMEOUT_MS // 4 // self.tick_ms),
        }
        params.update(dict(self.consensus))
        return params

    def faulty_nodes(self) -> tuple[int, ...]:
        """Replicas that are Byzantine or crash at some point, ascending."""
        nodes = {role.node for role in self.byzantine}
        for event in self.events:
            if event.kind == "crash":
                nodes.update(event.nodes)
        return tuple(sorted(nodes))

    def byzantine_nodes(self) -> tuple[int, ...]:
        return tuple(sorted({role.node for role in self.byzantine}))

    def last_heal_ms(self) -> int:
        """When the last fault is over: the latest restart, heal or end of a fault window."""
        last = 0
        for event in self.events:
            if event.kind in ("restart", "heal"):
                last = max(last, event.at_ms)
            elif event.kind == "skew":
                continue  # a skew is a standing condition, not a fault that heals
            elif event.until_ms is not None:
                last = max(last, event.until_ms)
            elif event.kind in ("partition", "network", "delay", "crash"):
                last = max(last, event.at_ms)  # never healed: recovery is measured from here
        for role in self.byzantine:
            if role.until_ms is not None:
                last = max(last, role.until_ms)
        return last

    def validate(self, nodes: int, duration_ms: int) -> None:
        if not 1 <= nodes <= MAX_NODES:
            raise ScenarioError(f"nodes must be in [1, {MAX_NODES}]")
        if not 0 < duration_ms <= MAX_DURATION_MS:
            raise ScenarioError(f"duration must be in (0, {MAX_DURATION_MS}] ms")
        if not 1 <= self.tick_ms <= 10_000:
            raise ScenarioError("tick_ms must be in [1, 10000]")
        if len(self.events) > MAX_EVENTS:
            raise ScenarioError(f"at most {MAX_EVENTS} events")
        if not 0 < self.workload.clients <= MAX_CLIENTS:
            raise ScenarioError(f"workload clients must be in [1, {MAX_CLIENTS}]")
        for role in self.byzantine:
            if not 0 <= role.node < nodes:
                raise ScenarioError(f"byzantine node {role.node} is not in 0..{nodes - 1}")
            for name in role.behaviours:
                if name not in BYZANTINE_BEHAVIOURS:
                    raise ScenarioError(f"unknown behaviour {name!r}; known: {list(BYZANTINE_BEHAVIOURS)}")
        if len(self.byzantine_nodes()) != len(self.byzantine):
            raise ScenarioError("a node has two byzantine roles; list its behaviours in one")
        for event in self.events:
            if event.kind not in EVENT_KINDS:
                raise ScenarioError(f"unknown event kind {event.kind!r}; known: {list(EVENT_KINDS)}")
            for node in event.nodes:
                if not 0 <= node < nodes:
                    raise ScenarioError(f"event node {node} is not in 0..{nodes - 1}")
            if event.at_ms < 0 or (event.until_ms is not None and event.until_ms < event.at_ms):
                raise ScenarioError(f"event times out of order: {event.to_plain()}")
        faulty = len(self.faulty_nodes())
        if faulty > max_faulty(nodes) and not self.expect_violation:
            raise ScenarioError(
                f"{faulty} faulty nodes exceed f={max_faulty(nodes)} for n={nodes}; "
                "set expect_violation to run it anyway")
        if self.last_heal_ms() + self.grace_ms > duration_ms:
            raise ScenarioError(
                f"duration {duration_ms} ms leaves no grace period ({self.grace_ms} ms) after "
                f"the last heal at {self.last_heal_ms()} ms")

    def to_plain(self) -> dict:
        plain: dict[str, Any] = {
            "name": self.name, "description": self.description, "tick_ms": self.tick_ms,
            "max_clock_skew_ms": self.max_clock_skew_ms, "grace_ms": self.grace_ms,
            "network": self.network.to_plain(), "workload": self.workload.to_plain(),
            "byzantine": [role.to_plain() for role in self.byzantine],
            "events": [event.to_plain() for event in self.events],
        }
        if self.nodes is not None:
            plain["nodes"] = self.nodes
        if self.duration_ms is not None:
            plain["duration_ms"] = self.duration_ms
        if self.twin_sides is not None:
            plain["twin_sides"] = [list(side) for side in self.twin_sides]
        if self.expect_violation:
            plain["expect_violation"] = True
        if self.consensus:
            plain["consensus"] = dict(self.consensus)
        return plain


# --- built-in scenarios ------------------------------------------------------------------------

def _normal(nodes: int, duration_ms: int) -> Scenario:
    return Scenario("normal", "no faults on a LAN; the baseline", network=named_profile("lan"))


def _crash_primary(nodes: int, duration_ms: int) -> Scenario:
    return Scenario(
        "crash-primary",
        "the view-0 primary crashes at 20% of the run and restarts from its store at 50%",
        network=named_profile("lan"),
        events=(FaultEvent(duration_ms // 5, "crash", (0,)),
                FaultEvent(duration_ms // 2, "restart", (0,))))


def _equivocating_primary(nodes: int, duration_ms: int) -> Scenario:
    return Scenario(
        "equivocating-primary",
        "the view-0 primary sends different signed proposals for each height to two halves",
        network=named_profile("lan"),
        byzantine=(ByzantineRole(0, ("equivocate",)),))


def _partition_heal(nodes: int, duration_ms: int) -> Scenario:
    half = nodes // 2
    return Scenario(
        "partition-heal",
        "the consortium splits into two halves (no quorum on either side) at 20% and heals at 50%",
        network=named_profile("wan"),
        events=(FaultEvent(duration_ms // 5, "partition", until_ms=duration_ms // 2,
                           params=(("groups", [list(range(half)), list(range(half, nodes))]),)),))


def _lossy_network(nodes: int, duration_ms: int) -> Scenario:
    lossy = named_profile("lossy")
    return Scenario(
        "lossy-network",
        "a WAN that loses 5%, duplicates 2%, reorders 5% and replays 1% of messages, "
        "with one link delayed by 300 ms for a while",
        network=replace(lossy, replay=0.01),
        events=(FaultEvent(duration_ms // 5, "delay", until_ms=duration_ms // 2,
                           params=(("extra_ms", 300), ("from", [0]), ("to", [1 % nodes]))),))


_MIX = ("equivocate", "silent", "forge", "replay", "corrupt")


def _byzantine_mix(nodes: int, duration_ms: int) -> Scenario:
    f = max_faulty(nodes)
    roles = []
    if f == 1:
        # one faulty node carries several behaviours at once
        roles.append(ByzantineRole(0, ("equivocate", "forge", "replay")))
    for index in range(f if f > 1 else 0):
        # spread the faulty nodes over the id space so several future primaries are faulty
        node = (index * nodes) // f
        roles.append(ByzantineRole(node, (_MIX[index % len(_MIX)],)))
    return Scenario(
        "byzantine-mix",
        "f Byzantine nodes mixing equivocation, silence, forged signatures, replays and "
        "corrupt messages, plus clock skew on one honest node",
        network=named_profile("lan"),
        byzantine=tuple(roles),
        events=(FaultEvent(0, "skew", (nodes - 1,), params=(("skew_ms", 150),)),))


BUILTIN: dict[str, Callable[[int, int], Scenario]] = {
    "normal": _normal,
    "crash-primary": _crash_primary,
    "equivocating-primary": _equivocating_primary,
    "partition-heal": _partition_heal,
    "lossy-network": _lossy_network,
    "byzantine-mix": _byzantine_mix,
}


def colluding_equivocators(nodes: int, duration_ms: int) -> Scenario:
    """f + 1 twinned replicas: more than PBFT tolerates, so safety *should* break; used to
    show the safety checker is not vacuous."""
    f = max_faulty(nodes)
    return Scenario(
        "colluding-equivocators",
        f"{f + 1} colluding equivocators (f={f}): beyond the fault bound",
        network=named_profile("lan"),
        byzantine=tuple(ByzantineRole(node, ("twins",)) for node in range(f + 1)),
        expect_violation=True)


def builtin(name: str, nodes: int, duration_ms: int) -> Scenario:
    try:
        factory = BUILTIN[name]
    except KeyError:
        raise ScenarioError(f"unknown scenario {name!r}; built-in: {sorted(BUILTIN)}") from None
    scenario = factory(nodes, duration_ms)
    # built-ins heal by half of the run; the other half is the grace period if it is shorter
    return replace(scenario, grace_ms=min(scenario.grace_ms, duration_ms - duration_ms // 2))


# --- scenario files ----------------------------------------------------------------------------

_TOP_FIELDS = {"name", "description", "nodes", "duration_ms", "network", "tick_ms",
               "max_clock_skew_ms", "grace_ms", "workload", "byzantine", "events", "twin_sides",
               "expect_violation", "base", "consensus"}
_EVENT_FIELDS = {"at_ms", "kind", "nodes", "node", "until_ms"}
_EVENT_PARAMS = {
    "crash": set(), "restart": set(), "heal": set(),
    "partition": {"groups"},
    "network": set(NetworkProfile.__dataclass_fields__),
    "delay": {"extra_ms", "from", "to"},
    "skew": {"skew_ms"},
}


def _int(value: Any, what: str, low: int = 0, high: int = MAX_DURATION_MS) -> int:
    if type(value) is not int or not low <= value <= high:
        raise ScenarioError(f"{what} must be an integer in [{low}, {high}]")
    return value


def _node_list(value: Any, what: str) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list):
        raise ScenarioError(f"{what} must be a node id or a list of them")
    return tuple(_int(item, what, 0, MAX_NODES - 1) for item in value)


def _parse_event(plain: Any) -> FaultEvent:
    if not isinstance(plain, dict):
        raise ScenarioError("each event is a mapping")
    kind = plain.get("kind")
    if kind not in _EVENT_PARAMS:
        raise ScenarioError(f"unknown event kind {kind!r}; known: {sorted(_EVENT_PARAMS)}")
    allowed = _EVENT_FIELDS | _EVENT_PARAMS[kind]
    unknown = sorted(set(plain) - allowed)
    if unknown:
        raise ScenarioError(f"{kind} event has unknown fields {unknown}")
    nodes: tuple[int, ...] = ()
    if "node" in plain:
        nodes += _node_list(plain["node"], "node")
    if "nodes" in plain:
        nodes += _node_list(plain["nodes"], "nodes")
    if kind in ("crash", "restart", "skew") and not nodes:
        raise ScenarioError(f"a {kind} event needs nodes")
    until = plain.get("until_ms")
    params = []
    for key in sorted(set(plain) - _EVENT_FIELDS):
        value = plain[key]
        if key == "groups":
            if not isinstance(value, list) or not value:
                raise ScenarioError("partition groups is a list of lists of node ids")
            value = [list(_node_list(group, "partition group")) for group in value]
        elif key in ("from", "to"):
            value = list(_node_list(value, key))
        elif key in ("extra_ms",):
            value = _int(value, key)
        elif key == "skew_ms":
            value = _int(value, key, -MAX_DURATION_MS, MAX_DURATION_MS)
        params.append((key, value))
    if kind == "partition" and "groups" not in plain:
        raise ScenarioError("a partition event needs groups")
    if kind == "network":
        try:
            NetworkProfile.from_plain({k: v for k, v in params})
        except (ValueError, TypeError) as exc:
            raise ScenarioError(f"network event: {exc}") from None
    return FaultEvent(_int(plain.get("at_ms"), "at_ms"), kind, nodes,
                      None if until is None else _int(until, "until_ms"), tuple(params))


def _parse_role(plain: Any) -> ByzantineRole:
    if not isinstance(plain, dict):
        raise ScenarioError("each byzantine entry is a mapping")
    unknown = sorted(set(plain) - {"node", "behaviours", "behaviour", "from_ms", "until_ms", "rate"})
    if unknown:
        raise ScenarioError(f"byzantine entry has unknown fields {unknown}")
    names = plain.get("behaviours", plain.get("behaviour"))
    if isinstance(names, str):
        names = [names]
    if not isinstance(names, list) or not names:
        raise ScenarioError("a byzantine entry needs behaviours")
    for name in names:
        if name not in BYZANTINE_BEHAVIOURS:
            raise ScenarioError(f"unknown behaviour {name!r}; known: {list(BYZANTINE_BEHAVIOURS)}")
    rate = plain.get("rate", 0.3)
    if not isinstance(rate, (int, float)) or isinstance(rate, bool) or not 0 <= rate <= 1:
        raise ScenarioError("rate must be in [0, 1]")
    until = plain.get("until_ms")
    return ByzantineRole(_int(plain.get("node"), "node", 0, MAX_NODES - 1), tuple(names),
                         _int(plain.get("from_ms", 0), "from_ms"),
                         None if until is None else _int(until, "until_ms"), float(rate))


def scenario_from_plain(plain: Any, nodes: int = DEFAULT_NODES,
                        duration_ms: int = DEFAULT_DURATION_MS) -> Scenario:
    if not isinstance(plain, dict):
        raise ScenarioError("a scenario file holds one mapping")
    unknown = sorted(set(plain) - _TOP_FIELDS)
    if unknown:
        raise ScenarioError(f"unknown scenario fields {unknown}")
    base = Scenario(str(plain.get("name", "custom")))
    if "base" in plain:
        base = builtin(str(plain["base"]), int(plain.get("nodes", nodes)),
                       int(plain.get("duration_ms", duration_ms)))
    changes: dict[str, Any] = {}
    if "name" in plain:
        changes["name"] = str(plain["name"])
    if "description" in plain:
        changes["description"] = str(plain["description"])
    if "nodes" in plain:
        changes["nodes"] = _int(plain["nodes"], "nodes", 1, MAX_NODES)
    if "duration_ms" in plain:
        changes["duration_ms"] = _int(plain["duration_ms"], "duration_ms", 1)
    for key in ("tick_ms", "max_clock_skew_ms", "grace_ms"):
        if key in plain:
            changes[key] = _int(plain[key], key)
    if "network" in plain:
        try:
            changes["network"] = NetworkProfile.from_plain(plain["network"], base.network)
        except (ValueError, TypeError) as exc:
            raise ScenarioError(f"network: {exc}") from None
    if "workload" in plain:
        workload = plain["workload"]
        if not isinstance(workload, dict):
            raise ScenarioError("workload is a mapping")
        fields_known = set(WorkloadSpec.__dataclass_fields__)
        unknown = sorted(set(workload) - fields_known)
        if unknown:
            raise ScenarioError(f"workload has unknown fields {unknown}")
        values = {}
        for key in sorted(workload):
            if key == "app":
                if workload[key] not in ("kv", "plan", "auto"):
                    raise ScenarioError("workload app is kv, plan or auto")
                values[key] = workload[key]
            elif key == "stop_ms" and workload[key] is None:
                values[key] = None
            else:
                values[key] = _int(workload[key], f"workload {key}", 0, MAX_DURATION_MS)
        changes["workload"] = replace(base.workload, **values)
    if "byzantine" in plain:
        if not isinstance(plain["byzantine"], list):
            raise ScenarioError("byzantine is a list")
        changes["byzantine"] = base.byzantine + tuple(_parse_role(r) for r in plain["byzantine"])
    if "events" in plain:
        if not isinstance(plain["events"], list):
            raise ScenarioError("events is a list")
        changes["events"] = base.events + tuple(_parse_event(e) for e in plain["events"])
    if "twin_sides" in plain:
        sides = plain["twin_sides"]
        if not isinstance(sides, list) or len(sides) != 2:
            raise ScenarioError("twin_sides is two lists of node ids")
        changes["twin_sides"] = (_node_list(sides[0], "twin_sides"), _node_list(sides[1], "twin_sides"))
    if "expect_violation" in plain:
        changes["expect_violation"] = bool(plain["expect_violation"])
    if "consensus" in plain:
        section = plain["consensus"]
        if not isinstance(section, dict):
            raise ScenarioError("consensus is a mapping of consensus parameters")
        changes["consensus"] = base.consensus + tuple(
            (str(key), _int(section[key], f"consensus {key}", 0, 2**40)) for key in sorted(section))
    return replace(base, **changes)


def load_scenario_file(path: str | Path, nodes: int = DEFAULT_NODES,
                       duration_ms: int = DEFAULT_DURATION_MS) -> Scenario:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ScenarioError(f"cannot read scenario file {path}: {exc}") from None
    try:
        if path.suffix in (".yaml", ".yml"):
            plain = yaml.safe_load(text)
        else:
            plain = json.loads(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise ScenarioError(f"scenario file {path} does not parse: {exc}") from None
    return scenario_from_plain(plain, nodes, duration_ms)
