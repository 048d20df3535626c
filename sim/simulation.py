"""One simulated run: many cores, one network, faults, checkers, workload and trace.

The run is a pure function of (backend, scenario, nodes, seed, duration, options): every
random choice comes from a named stream of ``sim.rng``, every event runs in (time, sequence)
order, and nothing is iterated in an order that could vary. Wall time is measured only for the
report and never enters the trace.

Each replica is an *endpoint*: a core over its own store, ticking every ``tick_ms`` with its
clock skew added to the time it is told. A twinned replica is two endpoints (twins) with the
same key and separate stores, each reaching one half of the honest replicas. Messages go
endpoint to endpoint through ``sim.network``; a delivered message costs the receiver virtual
CPU time for the signatures it checks (``CryptoCost``), and a busy receiver queues it.
"""

from __future__ import annotations

import hashlib
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ledger.keys import KeyPair
from sim.backend import UNKNOWN_MESSAGE, Backend, CryptoCost, CryptoMeter, MessageInfo, SignatureTable
from sim.checkers import LivenessChecker, SafetyChecker, Violation, VoteChecker
from sim.faults import (BehaviourContext, BehaviourStack, ByzantineRole, FaultEvent,
                        make_behaviours)
from sim.network import DelayRule, Network, NetworkProfile
from sim.rng import RandomStreams
from sim.runtime import EventLoop, ms_to_us, us_to_ms
from sim.scenarios import Scenario
from sim.trace import DIGEST_PREFIX_CHARS, Trace
from sim.workload import Workload

CHAIN_ID = "huzhu-sim"
GENESIS_TIME_MS = 1_700_000_000_000
TWIN_CLOCK_OFFSET_MS = 7  # twins' clocks differ, so their proposals differ
VOTE_KINDS = ("pre_prepare", "prepare", "commit", "checkpoint")
MAX_INBOX_MESSAGES = 100_000  # a node this far behind drops what arrives (counted, traced)


@dataclass(frozen=True, slots=True)
class SimOptions:
    crypto: CryptoCost = field(default_factory=CryptoCost)
    trace_path: str | None = None
    stop_on_violation: bool = True
    keep_trace_lines: int = 0  # tests may inspect the last lines in memory
    # what a replay needs beyond (seed, nodes, duration): written into the trace's start line
    run_info: dict | None = None


@dataclass(slots=True)
class Endpoint:
    """One running instance of a replica (two for a twinned replica)."""

    eid: int
    replica: int
    key: KeyPair
    store: Any
    side: int | None = None  # 0/1 for twins
    audience: frozenset[int] | None = None  # honest replicas a twin talks to; None: all
    core: Any = None
    meter: CryptoMeter | None = None
    skew_ms: int = 0
    cpu_free_us: int = 0
    committed_height: int = 0
    behaviours: BehaviourStack | None = None
    behaviour_ctx: BehaviourContext | None = None
    tick_phase_us: int = 0
    view: int = 0
    inbox: deque = field(default_factory=deque)  # messages waiting for a busy CPU
    drain_scheduled: bool = False
    epoch: int = 0  # bumped at each crash so stale tick chains stop

    @property
    def running(self) -> bool:
        return self.core is not None


@dataclass(slots=True)
class SimResult:
    seed: int
    nodes: int
    scenario: str
    faulty: int
    byzantine: list[int]
    committed_height: int
    max_committed_height: int
    committed_txs: int
    view_changes: int
    safety_violations: int
    liveness_violations: int
    double_signs: int
    trace_sha256: str
    trace_lines: int
    virtual_ms: int
    wall_s: float
    messages_sent: int
    bytes_sent: int
    messages_delivered: int
    messages_dropped: int
    events_run: int
    violations: list[dict]
    heights: dict[int, int]

    @property
    def safe(self) -> bool:
        return self.safety_violations == 0 and self.double_signs == 0

    @property
    def live(self) -> bool:
        return self.liveness_violations == 0

    def to_json(self) -> dict:
        return {
            "seed": self.seed, "nodes": self.nodes, "scenario": self.scenario,
            "faulty": self.faulty, "byzantine": self.byzantine,
            "committed_height": self.committed_height,
            "max_committed_height": self.max_committed_height,
            "committed_txs": self.committed_txs, "view_changes": self.view_changes,
            "safety_violations": self.safety_violations,
            "liveness_violations": self.liveness_violations,
            "double_signs": self.double_signs, "trace_sha256": self.trace_sha256,
            "trace_lines": self.trace_lines, "virtual_ms": self.virtual_ms,
            "wall_s": round(self.wall_s, 3), "messages_sent": self.messages_sent,
            "bytes_sent": self.bytes_sent, "messages_delivered": self.messages_delivered,
            "messages_dropped": self.messages_dropped, "events_run": self.events_run,
            "safe": self.safe, "live": self.live, "violations": self.violations,
            "heights": {str(k): v for k, v in sorted(self.heights.items())},
        }


class Simulation:
    def __init__(self, backend: Backend, scenario: Scenario, nodes: int, seed: int,
                 duration_ms: int, options: SimOptions | None = None) -> None:
        scenario.validate(nodes, duration_ms)
        self.backend = backend
        self.scenario = scenario
        self.n = nodes
        self.seed = seed
        self.duration_ms = duration_ms
        self.options = options or SimOptions()
        self.loop = EventLoop()
        self.streams = RandomStreams(seed)
        self.network = Network(scenario.network, nodes, self.streams)
        self.trace = Trace(self.options.trace_path, keep_lines=self.options.keep_trace_lines)
        self.signatures = SignatureTable()
        self.byzantine = frozenset(scenario.byzantine_nodes())
        self.honest = tuple(r for r in range(nodes) if r not in self.byzantine)
        self.safety = SafetyChecker(self.honest)
        self.votes = VoteChecker(self.honest, VOTE_KINDS)
        self.liveness = LivenessChecker(self.honest)
        self.keys = [KeyPair.from_seed(self.streams.node_seed(r)) for r in range(nodes)]
        self.endpoints: list[Endpoint] = []
        self.by_replica: dict[int, list[Endpoint]] = {}
        self.tx_counts: dict[int, int] = {}  # height -> tx count (first honest commit)
        self.view_changes = 0  # the highest view any honest node reached: views abandoned
        self.messages_sent = 0
        self.bytes_sent = 0
        self.messages_delivered = 0
        self.messages_dropped = 0
        self.halted = False
        self._describe_cache: tuple[bytes, MessageInfo, str] | None = None
        self.workload = Workload(self, scenario.workload, self.streams.stream("workload"))
        self.genesis = backend.make_genesis(
            CHAIN_ID, self.keys, GENESIS_TIME_MS, backend.workload_app(scenario.workload.app),
            [client.key for client in self.workload.clients], scenario.consensus_params())
        self._build_endpoints()

    # --- setup ----------------------------------------------------------------------------

    def _twin_sides(self) -> tuple[frozenset[int], frozenset[int]]:
        if self.scenario.twin_sides is not None:
            return frozenset(self.scenario.twin_sides[0]), frozenset(self.scenario.twin_sides[1])
        half = (len(self.honest) + 1) // 2
        return frozenset(self.honest[:half]), frozenset(self.honest[half:])

    def _build_endpoints(self) -> None:
        roles: dict[int, ByzantineRole] = {role.node: role for role in self.scenario.byzantine}
        sides = self._twin_sides()
        skew_rng = self.streams.stream("clock-skew")
        phase_rng = self.streams.stream("tick-phase")
        max_skew = self.scenario.max_clock_skew_ms
        tick_us = ms_to_us(self.scenario.tick_ms)
        for replica in range(self.n):
            role = roles.get(replica)
            skew = skew_rng.randint(-max_skew, max_skew) if max_skew else 0
            phase = phase_rng.randrange(tick_us)
            twins = role is not None and "twins" in role.behaviours
            instances = [(0, sides[0]), (1, sides[1])] if twins else [(None, None)]
            for side, audience in instances:
                endpoint = Endpoint(
                    eid=len(self.endpoints), replica=replica, key=self.keys[replica],
                    store=self.backend.make_store(), side=side, audience=audience,
                    skew_ms=skew + (TWIN_CLOCK_OFFSET_MS * side if side else 0),
                    tick_phase_us=phase)
                if role is not None:
                    wrappers = make_behaviours(role.behaviours)
                    if wrappers:
                        endpoint.behaviours = BehaviourStack(role, wrappers)
                        stream = self.streams.stream(
                            f"fault/{'+'.join(role.behaviours)}/{replica}/{side}")
                        endpoint.behaviour_ctx = BehaviourContext(
                            replica, self.n, stream, self._forger(endpoint), role.rate,
                            self._equivocator(endpoint))
                self.endpoints.append(endpoint)
                self.by_replica.setdefault(replica, []).append(endpoint)

    def _forger(self, endpoint: Endpoint) -> Callable:
        # a forger signs with a key that is not its own: derived, never a validator's
        forger_key = KeyPair.from_seed(hashlib.sha256(b"forger" + endpoint.key.seed).digest())

        def forge(data: bytes, rng) -> bytes | None:
            return self.backend.forge(data, rng, forger_key, self.n, CHAIN_ID)
        return forge

    def _equivocator(self, endpoint: Endpoint) -> Callable:
        def conflicting(data: bytes, rng) -> bytes | None:
            return self.backend.conflicting_proposal(data, rng, endpoint.key, CHAIN_ID)
        return conflicting

    # --- running --------------------------------------------------------------------------

    def run(self) -> SimResult:
        wall_start = time.perf_counter()  # wall time for the report only, never traced
        self.trace.record(0, "start", seed=self.seed, nodes=self.n, scenario=self.scenario.name,
                          byzantine=sorted(self.byzantine), duration_ms=self.duration_ms,
                          backend=self.backend.name,
                          **({"run": self.options.run_info} if self.options.run_info else {}))
        for endpoint in self.endpoints:
            self._start_endpoint(endpoint, restart=False)
        self._schedule_faults()
        self.workload.start()
        last_heal_us = ms_to_us(self.scenario.last_heal_ms())
        self.loop.schedule_at(last_heal_us, self._mark_liveness_baseline)
        end_us = ms_to_us(self.duration_ms)
        self.loop.run_until(end_us, stop=lambda: self.halted)
        if not self.halted:
            running = [r for r in self.honest if self.honest_endpoint(r).running]
            for violation in self.liveness.check_end(self.loop.now_us, self._honest_heights(), running):
                self.trace.record(self.loop.now_us, "violation", violation=violation.kind,
                                  detail=violation.detail)
        heights = self._honest_heights()
        committed_height = min(heights.values()) if heights else 0
        committed_txs = sum(self.tx_counts.get(h, 0) for h in range(1, committed_height + 1))
        self.trace.record(self.loop.now_us, "end", committed_height=committed_height,
                          committed_txs=committed_txs,
                          safety_violations=self.safety.count + self.votes.count,
                          liveness_violations=self.liveness.count)
        self.trace.close()
        violations = [v.to_plain() for v in (self.safety.violations + self.votes.violations
                                               + self.liveness.violations)]
        return SimResult(
            seed=self.seed, nodes=self.n, scenario=self.scenario.name,
            faulty=len(self.scenario.faulty_nodes()), byzantine=sorted(self.byzantine),
            committed_height=committed_height,
            max_committed_height=max(heights.values()) if heights else 0,
            committed_txs=committed_txs, view_changes=self.view_changes,
            safety_violations=self.safety.count + self.votes.count,
            liveness_violations=self.liveness.count, double_signs=self.votes.count,
            trace_sha256=self.trace.sha256_hex(), trace_lines=self.trace.lines,
            virtual_ms=us_to_ms(self.loop.now_us), wall_s=time.perf_counter() - wall_start,
            messages_sent=self.messages_sent, bytes_sent=self.bytes_sent,
            messages_delivered=self.messages_delivered, messages_dropped=self.messages_dropped,
            events_run=self.loop.events_run, violations=violations, heights=heights)

    def honest_endpoint(self, replica: int) -> Endpoint:
        return self.by_replica[replica][0]

    def _honest_heights(self) -> dict[int, int]:
        return {r: self.honest_endpoint(r).committed_height for r in self.honest}

    def _mark_liveness_baseline(self) -> None:
        heights = self._honest_heights()
        self.liveness.mark_baseline(self.loop.now_us, heights)
        self.trace.record(self.loop.now_us, "baseline", heights=[heights[r] for r in self.honest])

    def node_now_ms(self, endpoint: Endpoint) -> int:
        return GENESIS_TIME_MS + us_to_ms(self.loop.now_us) + endpoint.skew_ms

    # --- endpoints: start, tick, crash ------------------------------------------------------

    def _start_endpoint(self, endpoint: Endpoint, restart: bool) -> None:
        if restart:
            endpoint.store = self.backend.reopen_store(endpoint.store)
        endpoint.meter = CryptoMeter(self.options.crypto, self.signatures)
        endpoint.core = self.backend.make_core(self.genesis, endpoint.replica, endpoint.key,
                                               endpoint.store, endpoint.meter)
        endpoint.cpu_free_us = self.loop.now_us
        out = endpoint.core.start(self.node_now_ms(endpoint))
        self._handle_output(endpoint, out)
        epoch = endpoint.epoch
        first_tick_us = self.loop.now_us + endpoint.tick_phase_us
        self.loop.schedule_at(first_tick_us, lambda: self._tick(endpoint, epoch))

    def _tick(self, endpoint: Endpoint, epoch: int) -> None:
        if endpoint.epoch != epoch or not endpoint.running:
            return
        if endpoint.cpu_free_us > self.loop.now_us:
            # a busy node's timer fires late, as a real event loop's does
            self.loop.schedule_at(endpoint.cpu_free_us, lambda: self._tick(endpoint, epoch))
            return
        out = endpoint.core.on_tick(self.node_now_ms(endpoint))
        self._handle_output(endpoint, out)
        if self.halted or not endpoint.running:
            return
        self._check_view(endpoint)
        if endpoint.behaviours is not None:
            for destination, data, note in endpoint.behaviours.on_tick(
                    endpoint.behaviour_ctx, us_to_ms(self.loop.now_us)):
                self._transmit(endpoint, destination, data, note, self.loop.now_us)
        self.loop.schedule_in(ms_to_us(self.scenario.tick_ms), lambda: self._tick(endpoint, epoch))

    def crash(self, replica: int) -> None:
        self.trace.record(self.loop.now_us, "crash", node=replica)
        for endpoint in self.by_replica[replica]:
            if endpoint.running:
                endpoint.core = None
                endpoint.epoch += 1
                endpoint.drain_scheduled = False
                while endpoint.inbox:  # what was queued in the process dies with it
                    sender, _, data, _, info, digest = endpoint.inbox.popleft()
                    self.messages_dropped += 1
                    self._trace_message("drop", sender, endpoint, data, info, digest, "down")

    def restart(self, replica: int) -> None:
        for endpoint in self.by_replica[replica]:
            if not endpoint.running:
                self.trace.record(self.loop.now_us, "restart", node=replica)
                self._start_endpoint(endpoint, restart=True)

    # --- outputs and messages -------------------------------------------------------------

    def _charge(self, endpoint: Endpoint) -> int:
        """Advance the endpoint's CPU clock by the signature work it just did."""
        cost = endpoint.meter.take_us() if endpoint.meter is not None else 0
        endpoint.cpu_free_us = max(endpoint.cpu_free_us, self.loop.now_us) + cost
        return endpoint.cpu_free_us

    def _handle_output(self, endpoint: Endpoint, out: Any) -> None:
        send_at_us = self._charge(endpoint)
        for commit in out.committed:
            self._on_commit(endpoint, commit)
            if self.halted:
                return
        for destination, data in out.send:
            if endpoint.behaviours is not None:
                sends = endpoint.behaviours.outgoing(endpoint.behaviour_ctx,
                                                     us_to_ms(self.loop.now_us), destination, data)
                if not sends:
                    self.trace.record(self.loop.now_us, "withhold", node=endpoint.replica,
                                      size=len(data))
            else:
                sends = [(destination, data, "")]
            for dest, item, note in sends:
                self._transmit(endpoint, dest, item, note, send_at_us)
            if self.halted:
                return

    def _describe(self, data: bytes) -> tuple[MessageInfo, str]:
        cached = self._describe_cache
        if cached is not None and cached[0] is data:
            return cached[1], cached[2]
        try:
            info = self.backend.describe(data)
        except Exception:  # a corrupt message must show up in the trace, not stop the run
            info = UNKNOWN_MESSAGE
        digest = hashlib.sha256(data).hexdigest()[:DIGEST_PREFIX_CHARS]
        self._describe_cache = (data, info, digest)
        return info, digest

    def _targets(self, sender: Endpoint, replica: int) -> list[Endpoint]:
        endpoints = self.by_replica[replica]
        if sender.audience is not None and len(endpoints) == 1 and replica not in sender.audience:
            return []  # a twin does not talk to the other half
        if len(endpoints) == 1:
            return endpoints
        if sender.side is not None:
            return [e for e in endpoints if e.side == sender.side]
        return [e for e in endpoints if e.audience is not None and sender.replica in e.audience]

    def _transmit(self, sender: Endpoint, destination: int | None, data: bytes, note: str,
                  send_at_us: int) -> None:
        info, digest = self._describe(data)
        if info.votes:
            for vote in info.votes:
                if vote.replica != sender.replica:
                    continue  # relayed votes (in view changes) are someone else's signature
                violation = self.votes.on_vote(self.loop.now_us, vote.replica, vote.kind,
                                               vote.view, vote.height, vote.digest)
                if violation is not None:
                    self._violation(violation)
        if destination is None:
            replicas = [r for r in range(self.n) if r != sender.replica]
        elif 0 <= destination < self.n:
            replicas = [destination] if destination != sender.replica else []
        else:
            replicas = []
        for replica in replicas:
            for target in self._targets(sender, replica):
                self._send_copy(sender, target, data, note, info, digest, send_at_us)

    def _send_copy(self, sender: Endpoint, target: Endpoint, data: bytes, note: str,
                   info: MessageInfo, digest: str, send_at_us: int) -> None:
        self.messages_sent += 1
        self.bytes_sent += len(data)
        copies, reason = self.network.transmit(send_at_us, sender.replica, target.replica,
                                               len(data), channel=(sender.eid, target.eid))
        if not copies:
            self.messages_dropped += 1
            self._trace_message("drop", sender, target, data, info, digest, reason or note)
            return
        for copy in copies:
            copy_note = copy.note or note
            self.loop.schedule_at(copy.arrive_us, lambda c=copy_note: self._deliver(
                sender, target, data, c, info, digest))

    def _trace_message(self, kind: str, sender: Endpoint, target: Endpoint, data: bytes,
                       info: MessageInfo, digest: str, note: str) -> None:
        self.trace.record_message(self.loop.now_us, kind, sender.replica, target.replica,
                                  len(data), info.type, digest, info.view, info.height, note,
                                  sender.side, target.side)

    def _deliver(self, sender: Endpoint, target: Endpoint, data: bytes, note: str,
                 info: MessageInfo, digest: str) -> None:
        """A copy arrives at ``target``: processed now, or queued while its CPU is busy."""
        if self.halted:
            return
        if not target.running:
            self.messages_dropped += 1
            self._trace_message("drop", sender, target, data, info, digest, "down")
            return
        if not self.network.connected(sender.replica, target.replica):
            self.messages_dropped += 1
            self._trace_message("drop", sender, target, data, info, digest, "partition")
            return
        if target.cpu_free_us > self.loop.now_us or target.inbox:
            # the receiver is still busy checking signatures: the message waits in its queue
            if len(target.inbox) >= MAX_INBOX_MESSAGES:
                self.messages_dropped += 1
                self._trace_message("drop", sender, target, data, info, digest, "overload")
                return
            target.inbox.append((sender, target, data, note, info, digest))
            self._schedule_drain(target)
            return
        self._process(sender, target, data, note, info, digest)

    def _schedule_drain(self, target: Endpoint) -> None:
        if target.drain_scheduled:
            return
        target.drain_scheduled = True
        epoch = target.epoch
        self.loop.schedule_at(max(target.cpu_free_us, self.loop.now_us),
                              lambda: self._drain(target, epoch))

    def _drain(self, target: Endpoint, epoch: int) -> None:
        target.drain_scheduled = False
        if target.epoch != epoch or self.halted:
            return
        while target.inbox and target.cpu_free_us <= self.loop.now_us and not self.halted:
            self._process(*target.inbox.popleft())
            if not target.running:
                return
        if target.inbox:
            self._schedule_drain(target)

    def _process(self, sender: Endpoint, target: Endpoint, data: bytes, note: str,
                 info: MessageInfo, digest: str) -> None:
        self.messages_delivered += 1
        self._trace_message("deliver", sender, target, data, info, digest, note)
        if target.behaviours is not None:
            target.behaviours.on_receive(target.behaviour_ctx, us_to_ms(self.loop.now_us),
                                         sender.replica, data)
        out = target.core.on_message(sender.replica, data)
        self._handle_output(target, out)

    # --- commits and checks ---------------------------------------------------------------

    def _on_commit(self, endpoint: Endpoint, commit: tuple) -> None:
        height, block_hash, tx_ids = commit[0], commit[1], commit[2]
        endpoint.committed_height = max(endpoint.committed_height, height)
        honest = endpoint.replica in self.honest and endpoint.side is None
        fields: dict[str, Any] = {"node": endpoint.replica, "height": height,
                                  "block": block_hash.hex()[:DIGEST_PREFIX_CHARS],
                                  "txs": len(tx_ids)}
        if endpoint.side is not None:
            fields["twin"] = endpoint.side
        state_root = self.backend.state_root(endpoint.core, endpoint.store, commit)
        if state_root is not None:
            fields["state"] = state_root.hex()[:DIGEST_PREFIX_CHARS]
        self.trace.record(self.loop.now_us, "commit", **fields)
        if not honest:
            return
        self.tx_counts.setdefault(height, len(tx_ids))
        violation = self.safety.on_commit(self.loop.now_us, endpoint.replica, height, block_hash)
        if violation is not None:
            self._violation(violation)
        if state_root is not None:
            violation = self.safety.on_state(self.loop.now_us, endpoint.replica, height, state_root)
            if violation is not None:
                self._violation(violation)
        self.workload.on_committed(tx_ids)

    def _violation(self, violation: Violation) -> None:
        self.trace.record(self.loop.now_us, "violation", violation=violation.kind,
                          detail=violation.detail)
        if self.options.stop_on_violation:
            self.halted = True

    def _check_view(self, endpoint: Endpoint) -> None:
        """Trace view changes as a node reports them (polled once per tick)."""
        view = endpoint.core.status().get("view", 0)
        if view != endpoint.view:
            endpoint.view = view
            self.trace.record(self.loop.now_us, "view", node=endpoint.replica, view=view)
            if endpoint.replica in self.honest and view > self.view_changes:
                self.view_changes = view

    # --- fault events -----------------------------------------------------------------------

    def _schedule_faults(self) -> None:
        for index, event in enumerate(self.scenario.events):
            self.loop.schedule_at(ms_to_us(event.at_ms), lambda e=event: self._apply(e))
            if event.until_ms is not None:
                self.loop.schedule_at(ms_to_us(event.until_ms), lambda e=event: self._undo(e))

    def _apply(self, event: FaultEvent) -> None:
        now = self.loop.now_us
        kind = event.kind
        if kind == "crash":
            for node in event.nodes:
                self.crash(node)
        elif kind == "restart":
            for node in event.nodes:
                self.restart(node)
        elif kind == "partition":
            groups = event.param("groups")
            self.network.partition(groups)
            self.trace.record(now, "partition", groups=groups)
        elif kind == "heal":
            self.network.heal()
            self.trace.record(now, "heal")
        elif kind == "network":
            self._saved_profile = self.network.profile
            plain = {key: value for key, value in event.params}
            self.network.set_profile(NetworkProfile.from_plain(plain, self.network.profile))
            self.trace.record(now, "network", **plain)
        elif kind == "delay":
            sources = event.param("from")
            targets = event.param("to")
            end = ms_to_us(event.until_ms) if event.until_ms is not None else ms_to_us(self.duration_ms + 1)
            self.network.add_delay(DelayRule(
                frozenset(sources) if sources is not None else None,
                frozenset(targets) if targets is not None else None,
                event.param("extra_ms", 0), end), now)
            self.trace.record(now, "delay", sources=sources, targets=targets,
                              extra_ms=event.param("extra_ms", 0))
        elif kind == "skew":
            for node in event.nodes:
                for endpoint in self.by_replica[node]:
                    endpoint.skew_ms = event.param("skew_ms", 0) + (
                        TWIN_CLOCK_OFFSET_MS * endpoint.side if endpoint.side else 0)
            self.trace.record(now, "skew", nodes=list(event.nodes), skew_ms=event.param("skew_ms", 0))
        else:  # validated before the run
            raise AssertionError(f"unknown fault kind {kind}")

    def _undo(self, event: FaultEvent) -> None:
        now = self.loop.now_us
        if event.kind == "crash":
            for node in event.nodes:
                self.restart(node)
        elif event.kind == "partition":
            self.network.heal()
            self.trace.record(now, "heal")
        elif event.kind == "network":
            self.network.set_profile(self._saved_profile)
            self.trace.record(now, "network_restored")
        elif event.kind == "delay":
            self.trace.record(now, "delay_over")  # the rule expires by itself

