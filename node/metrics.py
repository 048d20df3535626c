"""Prometheus metrics of one node: a registry per node, fed by the runtime's hooks.

``NodeMetrics`` owns a ``prometheus_client.CollectorRegistry`` (never the process-global one,
so several runtimes in one process, as in the tests, keep their numbers apart). Two kinds of
numbers live in it:

- instruments the runtime updates as things happen, through the hook methods: frames in and
  out by message type (count and bytes), submitted transactions by outcome, committed blocks
  and transactions, view changes, and three latency histograms: executing a block (the
  application's ``execute_block`` through ``commit``), committing a block (from the first
  pre-prepare for its height seen here to its commit here) and committing a transaction (from
  its admission by this node's API to its commit);
- numbers read when Prometheus scrapes (``NodeCollector``): height, view, primary, mempool,
  peer connections, the replica's counters (dropped messages by reason, ...) and the plan's
  counters (members, claims by state, settlement totals). Reading them at scrape time keeps
  the hot path free of bookkeeping and the numbers exactly those of ``/status``.

Every label value comes from a bounded set (message types, reason codes, peer ids), never
from what a peer or client sent, so a hostile peer cannot blow up the series count.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import msgpack
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from consensus.messages import MESSAGE_TYPES
from ledger.application import QueryError
from node.logging import get_logger

log = get_logger("huzhu.metrics")

# No `<counter>_created` series: they double the output and nobody here reads them. The
# setting is process-wide, which suits a node process.
disable_created_metrics()

PREFIX = "huzhu"
# Frames whose type could not be read are counted under one of these two labels.
UNREADABLE_TYPE = "unreadable"
UNKNOWN_TYPE = "unknown"
MESSAGE_TYPE_LABELS = (*sorted(MESSAGE_TYPES), UNKNOWN_TYPE, UNREADABLE_TYPE)
MAX_TOP_LEVEL_FIELDS = 16  # a consensus message is a flat map of a handful of fields

# Latency tracking is bounded: the oldest entries go first.
MAX_TRACKED_HEIGHTS = 1_024
MAX_TRACKED_TXS = 100_000
# Claims by state: each scrape re-reads at most this many open claims (round robin).
MAX_CLAIM_READS_PER_SCRAPE = 2_000

EXECUTION_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                       2.5, 5.0)
COMMIT_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

CLAIM_STATES = ("submitted", "notice", "rejected", "jury", "approved", "paid", "closed")
FINAL_CLAIM_STATES = ("paid", "closed")  # a claim in these never changes again


def frame_summary(data: bytes) -> tuple[str, int | None]:
    """(message type, height or None) of a consensus frame, without decoding it whole.

    Frames are canonical msgpack maps; the big fields (a pre-prepare's block) are skipped,
    not built. Anything unreadable is labelled ``unreadable``, an unheard-of type ``unknown``.
    """
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=False)
    unpacker.feed(data)
    kind: Any = None
    height: Any = None
    try:
        count = unpacker.read_map_header()
        if count > MAX_TOP_LEVEL_FIELDS:
            return UNREADABLE_TYPE, None
        for _ in range(count):
            key = unpacker.unpack()
            if key == "type":
                kind = unpacker.unpack()
            elif key == "height":
                height = unpacker.unpack()
            else:
                unpacker.skip()
    except Exception:  # any malformed frame: the replica will drop and count it too
        return UNREADABLE_TYPE, None
    if not isinstance(kind, str):
        return UNREADABLE_TYPE, None
    if kind not in MESSAGE_TYPES:
        return UNKNOWN_TYPE, None
    return kind, height if type(height) is int else None


class TimedApplication:
    """An ``Application`` that times each block from ``execute_block`` through ``commit``.

    Everything else is passed through untouched, so NodeCore cannot tell the difference.
    """

    def __init__(self, app: Any, histogram: Histogram, clock_s: Callable[[], float]) -> None:
        self._app = app
        self._histogram = histogram
        self._clock_s = clock_s
        self._started_s: float | None = None

    def execute_block(self, header: Any, txs: Any) -> Any:
        self._started_s = self._clock_s()
        return self._app.execute_block(header, txs)

    def commit(self) -> bytes:
        root = self._app.commit()
        if self._started_s is not None:  # commit() also runs alone at start-up
            self._histogram.observe(self._clock_s() - self._started_s)
            self._started_s = None
        return root

    def __getattr__(self, name: str) -> Any:
        return getattr(self._app, name)


class ClaimStates:
    """How many claims are in each state, kept up to date without reading every claim.

    Claim ids run 1..claims_total. A claim that reached a final state never changes again,
    so only the open ones are re-read, at most ``MAX_CLAIM_READS_PER_SCRAPE`` per scrape in
    round-robin order (with more open claims than that the counts lag by a few scrapes).
    """

    def __init__(self) -> None:
        self.known_total = 0
        self.final: dict[str, int] = {state: 0 for state in FINAL_CLAIM_STATES}
        self.open: dict[int, str] = {}  # claim id -> last state read

    def refresh(self, claims_total: int, read_state: Callable[[int], str | None]) -> None:
        for claim_id in range(self.known_total + 1, claims_total + 1):
            self.open[claim_id] = "submitted"
        self.known_total = max(self.known_total, claims_total)
        budget = MAX_CLAIM_READS_PER_SCRAPE
        for claim_id in list(self.open)[:budget]:
            state = read_state(claim_id)
            if state is None:
                continue
            if state in self.final:
                self.final[state] += 1
                del self.open[claim_id]
            else:
                # Re-insert at the end: the next scrape reads the ones not read this time.
                del self.open[claim_id]
                self.open[claim_id] = state

    def counts(self) -> dict[str, int]:
        counts = {state: 0 for state in CLAIM_STATES}
        for state in self.open.values():
            counts[state] = counts.get(state, 0) + 1
        for state, count in self.final.items():
            counts[state] += count
        return counts


def _metric_name(name: str) -> str:
    return f"{PREFIX}_{name}"


def _safe_label(text: str) -> str:
    """A label value from one of our own counter names (reason codes are snake_case)."""
    return "".join(ch if ch.isalnum() or ch in "_.-" else "_" for ch in text)[:64]


class NodeCollector(Collector):
    """What is read at scrape time: the node's status, replica counters, the plan's totals."""

    def __init__(self, status: Callable[[], dict],
                 query: Callable[[str], Any] | None) -> None:
        self.status = status
        self.query = query
        self.claims = ClaimStates()

    def describe(self) -> list[Metric]:
        return []  # the families depend on the application; nothing to check up front

    def collect(self) -> Iterator[Metric]:
        status = self.status()
        peers = status.get("peers", [])
        yield from self._node(status)
        yield from self._peers(peers)
        # Non-binary frames never reach the replica: the transport drops them.
        not_binary = sum(int(peer.get("frames_rejected", 0)) for peer in peers)
        yield from self._replica(status.get("core", {}).get("stats", {}), not_binary)
        if self.query is not None:
            try:
                yield from self._plan()
            except QueryError as exc:  # no plan state yet; the node itself is fine
                log.debug("plan_metrics_unavailable", reason=exc.code)

    @staticmethod
    def _gauge(name: str, help_text: str, value: Any) -> GaugeMetricFamily:
        return GaugeMetricFamily(_metric_name(name), help_text, value=int(value or 0))

    @staticmethod
    def _counter(name: str, help_text: str, value: Any) -> CounterMetricFamily:
        return CounterMetricFamily(_metric_name(name), help_text, value=int(value or 0))

    def _node(self, status: dict) -> Iterator[Metric]:
        core = status.get("core", {})
        yield self._gauge("height", "Last committed block height.", status.get("height"))
        yield self._gauge("executed_height", "Last block executed by the application.",
                          core.get("executed_height"))
        yield self._gauge("view", "Current consensus view.", status.get("view"))
        yield self._gauge("primary", "Replica id of the current view's primary.",
                          status.get("primary"))
        yield self._gauge("view_changing", "1 while a view change is in progress.",
                          core.get("view_changing"))
        yield self._gauge("stable_checkpoint", "Height of the last stable checkpoint.",
                          core.get("stable_checkpoint"))
        yield self._gauge("ready", "1 when the node is caught up and connected to a quorum.",
                          status.get("ready"))
        yield self._gauge("validators", "Validators in genesis.", status.get("validators"))
        yield self._gauge("mempool_txs", "Transactions waiting in the mempool.",
                          status.get("mempool_txs"))
        yield self._gauge("mempool_bytes", "Bytes of transactions waiting in the mempool.",
                          core.get("mempool_bytes"))

    def _peers(self, peers: list[dict]) -> Iterator[Metric]:
        yield self._gauge("peers_connected", "Peers with a live connection.",
                          sum(1 for peer in peers if peer.get("connected")))
        families = [
            ("peer_connected", GaugeMetricFamily, "1 while the peer's connection is up.",
             lambda peer: int(bool(peer.get("connected")))),
            ("peer_send_queue_frames", GaugeMetricFamily, "Frames waiting to go to the peer.",
             lambda peer: peer.get("queued", 0)),
            ("peer_connects", CounterMetricFamily, "Connections made with the peer.",
             lambda peer: peer.get("connects", 0)),
            ("peer_refusals", CounterMetricFamily,
             "Connections refused for the peer's id (wrong key or chain).",
             lambda peer: peer.get("refusals", 0)),
            ("peer_frames_dropped", CounterMetricFamily,
             "Frames dropped from the peer's full send queue (oldest first).",
             lambda peer: peer.get("frames_dropped", 0)),
        ]
        for name, family_type, help_text, value in families:
            family = family_type(_metric_name(name), help_text, labels=["peer"])
            for peer in peers:
                family.add_metric([str(peer.get("id"))], int(value(peer)))
            yield family

    def _replica(self, stats: dict, not_binary: int) -> Iterator[Metric]:
        dropped = CounterMetricFamily(
            _metric_name("messages_dropped"),
            "Invalid peer messages dropped, by reason (malformed, bad signature, ...).",
            labels=["reason"])
        ignored = CounterMetricFamily(
            _metric_name("messages_ignored"),
            "Harmless peer messages ignored (stale, duplicate), by reason.", labels=["reason"])
        refused = CounterMetricFamily(
            _metric_name("forwarded_txs_refused"),
            "Transactions forwarded by peers that this node refused, by reason.",
            labels=["reason"])
        events = CounterMetricFamily(
            _metric_name("consensus_events"),
            "The replica's and NodeCore's own counters (proposed, prepared, synced, ...).",
            labels=["event"])
        dropped.add_metric(["not_binary"], not_binary)
        for name in sorted(stats):
            value = stats[name]
            if type(value) is not int:
                continue
            if name.startswith("consensus.dropped."):
                dropped.add_metric([_safe_label(name.removeprefix("consensus.dropped."))], value)
            elif name.startswith("consensus.ignored."):
                ignored.add_metric([_safe_label(name.removeprefix("consensus.ignored."))], value)
            elif name.startswith("forwarded_refused."):
                refused.add_metric([_safe_label(name.removeprefix("forwarded_refused."))], value)
            elif name == "consensus.dropped" or name.startswith(("consensus.received.",
                                                                 "consensus.malformed.")):
                continue  # the totals and per-type receipts are other metrics already
            else:
                events.add_metric([_safe_label(name.removeprefix("consensus."))], value)
        yield from (dropped, ignored, refused, events)

    def _plan(self) -> Iterator[Metric]:
        assert self.query is not None
        totals, _ = self.query("plan/totals")

        def read_state(claim_id: int) -> str | None:
            try:
                view, _ = self.query(f"claim/{claim_id}")
            except QueryError:
                return None
            state = view.get("status") if isinstance(view, dict) else None
            return state if state in CLAIM_STATES else None

        self.claims.refresh(int(totals.get("claims_total", 0)), read_state)
        yield self._gauge("plan_members_active", "Members in the plan now.",
                          totals.get("active_members"))
        yield self._counter("plan_members_enrolled", "Members ever enrolled.",
                            totals.get("enrolled_total"))
        yield self._counter("plan_members_removed_arrears", "Members removed for arrears.",
                            totals.get("removed_arrears"))
        yield self._counter("plan_claims_submitted", "Claims ever submitted.",
                            totals.get("claims_total"))
        claims = GaugeMetricFamily(_metric_name("plan_claims"), "Claims by state.",
                                   labels=["state"])
        for state, count in self.claims.counts().items():
            claims.add_metric([state], count)
        yield claims
        yield self._counter("plan_settlements", "Settlements published.",
                            max(0, int(totals.get("next_period", 1)) - 1))
        money = [
            ("plan_deposits_fen", "Deposits recorded by the treasurer (fen)."),
            ("plan_shares_charged_fen", "Shares charged to members by settlements (fen)."),
            ("plan_fees_fen", "Management fees taken by settlements (fen)."),
            ("plan_payouts_fen", "Claim payouts settled (fen)."),
            ("plan_paid_net_fen", "Paid to claimants after arrears deductions (fen)."),
            ("plan_arrears_recovered_fen", "Claimants' unpaid shares deducted from payouts."),
        ]
        for name, help_text in money:
            yield self._counter(name, help_text, totals.get(name.removeprefix("plan_")))
        yield self._gauge("plan_carry_fen", "Remainder carried into the next settlement (fen).",
                          totals.get("carry_fen"))
        yield self._gauge("plan_pending_payouts_fen",
                          "Final claims waiting for the next settlement (fen).",
                          totals.get("pending_payouts_fen"))
        yield self._gauge("plan_share_index_fen", "Sum of every published share (fen).",
                          totals.get("cum_index_fen"))
        yield self._gauge("plan_conservation_ok",
                          "1 while debits + carry = payouts + fees holds.",
                          bool(totals.get("conservation_holds")))


class NodeMetrics:
    """The metrics of one node and the hooks the runtime calls."""

    def __init__(self, status: Callable[[], dict], query: Callable[[str], Any] | None = None,
                 clock_s: Callable[[], float] = time.monotonic) -> None:
        self.clock_s = clock_s
        self.registry = CollectorRegistry(auto_describe=False)
        self.collector = NodeCollector(status, query)
        self.registry.register(self.collector)
        registry = self.registry
        self.messages = Counter(_metric_name("messages"), "Peer frames by direction and type.",
                                ["direction", "type"], registry=registry)
        self.message_bytes = Counter(_metric_name("message_bytes"),
                                     "Bytes of peer frames by direction and type.",
                                     ["direction", "type"], registry=registry)
        # Every (direction, type) series exists from the start (a scrape shows zeros, not
        # gaps) and is looked up in a plain dict on the per-frame path.
        self._frame_series = {
            (direction, kind): (self.messages.labels(direction, kind),
                                self.message_bytes.labels(direction, kind))
            for direction in ("in", "out") for kind in MESSAGE_TYPE_LABELS}
        self.txs_submitted = Counter(_metric_name("txs_submitted"),
                                     "Transactions submitted to this node's API, by outcome.",
                                     ["outcome"], registry=registry)
        self.committed_blocks = Counter(_metric_name("committed_blocks"),
                                        "Blocks committed since the node started.",
                                        registry=registry)
        self.committed_txs = Counter(_metric_name("committed_txs"),
                                     "Transactions committed since the node started.",
                                     registry=registry)
        self.view_changes = Counter(_metric_name("view_changes"),
                                    "Views this node moved forward by since it started.",
                                    registry=registry)
        self.block_execution = Histogram(
            _metric_name("block_execution_seconds"),
            "Time to execute a committed block and compute its state root.",
            buckets=EXECUTION_BUCKETS_S, registry=registry)
        self.block_commit = Histogram(
            _metric_name("block_commit_seconds"),
            "From the first pre-prepare for a height seen here to its commit here.",
            buckets=COMMIT_BUCKETS_S, registry=registry)
        self.tx_commit = Histogram(
            _metric_name("tx_commit_seconds"),
            "From admission by this node's API to commit, for transactions sent here.",
            buckets=COMMIT_BUCKETS_S, registry=registry)
        self._proposed_at: dict[int, float] = {}  # height -> first pre-prepare seen
        self._submitted_at: dict[bytes, float] = {}  # tx id -> admission
        self._view: int | None = None

    # --- hooks (called by the runtime) -----------------------------------------------------

    def instrument(self, app: Any) -> TimedApplication:
        """Wrap the application so that block execution is timed."""
        return TimedApplication(app, self.block_execution, self.clock_s)

    def frame_in(self, data: bytes) -> None:
        self._frame("in", data, 1)

    def frame_out(self, data: bytes, copies: int) -> None:
        """A frame handed to the transport for ``copies`` peers (a broadcast: all of them)."""
        if copies > 0:
            self._frame("out", data, copies)

    def _frame(self, direction: str, data: bytes, copies: int) -> None:
        kind, height = frame_summary(data)
        count, size = self._frame_series[direction, kind]
        count.inc(copies)
        size.inc(len(data) * copies)
        if kind == "preprepare" and height is not None and height not in self._proposed_at:
            self._proposed_at[height] = self.clock_s()
            if len(self._proposed_at) > MAX_TRACKED_HEIGHTS:
                del self._proposed_at[min(self._proposed_at)]

    def tx_submitted(self, category: str, tx_id: bytes | None) -> None:
        self.txs_submitted.labels(category).inc()
        if category == "accepted" and tx_id is not None:
            self._submitted_at[tx_id] = self.clock_s()
            if len(self._submitted_at) > MAX_TRACKED_TXS:
                del self._submitted_at[next(iter(self._submitted_at))]

    def block_committed(self, height: int, tx_ids: Sequence[bytes]) -> None:
        now_s = self.clock_s()
        self.committed_blocks.inc()
        self.committed_txs.inc(len(tx_ids))
        proposed_s = self._proposed_at.pop(height, None)
        if proposed_s is not None:
            self.block_commit.observe(now_s - proposed_s)
        for stale in [known for known in self._proposed_at if known < height]:
            del self._proposed_at[stale]  # committed by catch-up, or proposed and replaced
        for tx_id in tx_ids:
            submitted_s = self._submitted_at.pop(tx_id, None)
            if submitted_s is not None:
                self.tx_commit.observe(now_s - submitted_s)

    def observe_view(self, view: int) -> None:
        """The node's current view; each step forward counts as a view change."""
        if self._view is not None and view > self._view:
            self.view_changes.inc(view - self._view)
        self._view = view if self._view is None else max(self._view, view)

    # --- scraping ------------------------------------------------------------------------

    def exposition(self) -> bytes:
        """The registry in Prometheus' text format."""
        return generate_latest(self.registry)
