"""A PBFT replica (Castro & Liskov, OSDI '99) as a pure state machine: ``ready = step(event)``.

No clock, no I/O, no randomness: time arrives as ``Tick`` events, bytes as ``Receive``, and
every step returns a ``Ready`` naming what to persist (before anything is sent), what to send
and which certified blocks are committed, in height order. One replica per validator; replica
ids index the validator list; the primary of view v is v mod n; n = 3f+1, quorum 2f+1.

Normal case. The primary cuts a block (``Propose``) and broadcasts a signed PRE-PREPARE.
A backup accepts it after checking the proposer, the watermarks, the block's structure and
transaction signatures, the header's app/results hash against its own execution of
h - pipeline_depth, the hash link to h-1 and the timestamp; then it broadcasts PREPARE. With
the pre-prepare and 2f matching prepares a replica holds a prepared certificate; it
broadcasts COMMIT for h once h and every height between its committed tip and h hold
current-view prepared certificates on one hash chain (so a committed height always has 2f+1
replicas able to prove the whole chain below it in a view change). 2f+1 commits for one
block are its ``CommitCertificate``; blocks are delivered strictly in height order.

Pipelining. A primary proposes h once it has executed h - pipeline_depth and knows block
h-1; header h carries the state after h - pipeline_depth (docs/INTERFACES.md).

Checkpoints. After executing a multiple of ``checkpoint_interval`` a replica broadcasts a
signed CHECKPOINT with its state root; 2f+1 matching make it stable, which moves the low
watermark and garbage-collects the log, the checkpoint votes and the WAL below it.

View change. A progress timer runs while there is pending work (an accepted block not yet
committed, buffered pre-prepares, or transactions the node is waiting on) and restarts on
every commit. On expiry the replica sends VIEW-CHANGE(v+1) with its stable checkpoint, its
highest commit certificate and its prepared certificates above it. The timeout doubles with
each consecutive view change (capped) and resets when a view commits. A replica joins a view
change when f+1 others are in higher views (their VIEW-CHANGEs, or signed votes of that
view: this is also how a restarted replica finds the current view), and otherwise never
moves past a view change whose timer has not expired, nor past one that has not gathered
2f+1 VIEW-CHANGEs (it re-sends its own every base timeout instead): one replica cannot
start a storm. The new primary sends NEW-VIEW with the 2f+1 VIEW-CHANGEs and the re-issued
pre-prepares (``consensus.viewchange``); every replica recomputes and checks it, and the
primary re-sends it to a replica still asking for that view. As in PBFT, a replica whose
timer sent it to a view the others never reach stays there (following the chain by
certified block sync) until f+1 replicas move past the view it left.

Retransmission. With pending work and no commit for ``retransmit_ticks``, a replica sends
its own signed messages for the uncommitted heights again (the same bytes), relays the
primary's pre-prepares it accepted (any replica may relay one: it carries the primary's
signature) and asks one peer for the next block (which also keeps a replica waiting alone in
a higher view current). A lost message costs a retransmission, not a view change.

Equivocation. Two different pre-prepares signed by the primary for one (view, height), or one
for a height committed from a block proposed in that view, prove the primary faulty: the
replica passes them on and starts the view change at once. Relayed pre-prepares make the
proof reach every honest replica, so a primary that equivocates while keeping the chain
crawling (every stall repaired by retransmission) is replaced rather than kept.

Catch-up. Evidence that the chain is ahead (a stable checkpoint, a commit certificate whose
block this replica lacks, a NEW-VIEW anchor) makes a lagging replica fetch certified blocks
from peers (BLOCK-REQUEST, answered by the peer's node from its store), verifying each
certificate and the hash chain; peers rotate on timeouts and bad answers.

Every received message is validated field by field; anything wrong is dropped and counted in
``stats`` under ``dropped.<reason>``, never raised. A broken local invariant (two different
certified blocks at one height, state diverging from a stable checkpoint) is an
``AssertionError``: the node must stop rather than continue on a forked state.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from consensus import wal
from consensus.events import (
    BROADCAST,
    MODE_NORMAL,
    MODE_VIEW_CHANGE,
    CommittedTip,
    Executed,
    Propose,
    Ready,
    Receive,
    ServeBlocks,
    SoftState,
    Tick,
    TxsVerified,
)
from consensus.messages import (
    CHECKPOINT_DOMAIN,
    NEW_VIEW_DOMAIN,
    PREPARE_DOMAIN,
    PREPREPARE_DOMAIN,
    VIEW_CHANGE_DOMAIN,
    BlockRequest,
    BlockResponse,
    Checkpoint,
    CheckpointProof,
    Commit,
    Message,
    NewView,
    NewViewEntry,
    PrePrepare,
    Prepare,
    PreparedCertificate,
    TxForward,
    ViewChange,
    checkpoint_payload,
    decode_message,
    encode_message,
    prepare_payload,
    preprepare_payload,
)
from consensus.catchup import CatchUp
from consensus.checkpoints import Checkpoints
from consensus.params import ConsensusParams
from consensus.signer import Signer
from consensus.validation import Checks, header_matches
from consensus.viewchange import NewViewPlan, chained_prefix, plan_new_view
from ledger import codec
from ledger.errors import DecodeError, RemoteError
from ledger.quorum import max_faulty, quorum_size, weak_quorum_size
from ledger.types import (
    COMMIT_DOMAIN,
    Block,
    BlockHeader,
    CommitCertificate,
    Transaction,
    commit_vote_payload,
    tx_root,
)

MAX_BLOCKS_PER_SLOT = 8  # distinct blocks remembered at one height (one per view, normally)
MAX_CACHED_BLOCKS = 256  # blocks whose transaction ids are remembered
# Messages that are merely late or repeated: counted as "ignored.<reason>", not as dropped.
_HARMLESS = frozenset({"stale", "duplicate", "old_view"})


class Slot:
    """Everything the replica knows about one height above its committed tip."""

    __slots__ = ("height", "view", "block_hash", "preprepare_signature", "blocks", "prepares",
                 "commits", "cert")

    def __init__(self, height: int) -> None:
        self.height = height
        # The pre-prepare accepted in the current view (view None: none accepted).
        self.view: int | None = None
        self.block_hash: bytes | None = None
        self.preprepare_signature: bytes | None = None
        self.blocks: dict[bytes, Block] = {}
        # Latest vote per replica: replica -> (view, block_hash, signature).
        self.prepares: dict[int, tuple[int, bytes, bytes]] = {}
        self.commits: dict[int, tuple[int, bytes, bytes]] = {}
        self.cert: PreparedCertificate | None = None  # highest-view prepared certificate held

    def add_block(self, block_hash: bytes, block: Block) -> None:
        if block_hash in self.blocks:
            return
        if len(self.blocks) >= MAX_BLOCKS_PER_SLOT:
            keep = {self.block_hash, None if self.cert is None else self.cert.block_hash}
            for known in list(self.blocks):
                if known not in keep:
                    del self.blocks[known]
                    break
        self.blocks[block_hash] = block

    def accepted_block(self) -> Block | None:
        return None if self.block_hash is None else self.blocks.get(self.block_hash)

    def clear_acceptance(self) -> None:
        self.view = None
        self.block_hash = None
        self.preprepare_signature = None


class Replica:
    def __init__(
        self,
        chain_id: str,
        replica_id: int,
        validators: Sequence[bytes],
        signer: Signer,
        params: ConsensusParams,
        genesis_hash: bytes,
        genesis_time_ms: int,
        app_hash0: bytes,
        results_hash0: bytes,
        restored: Sequence[tuple[bytes, bytes]] | None = None,
        tip: CommittedTip | None = None,
    ) -> None:
        assert 0 <= replica_id < len(validators)
        params.validate()
        self.chain_id = chain_id
        self.id = replica_id
        self.validators = tuple(validators)
        self.n = len(self.validators)
        self.f = max_faulty(self.n)
        self.quorum = quorum_size(self.n)
        self.weak_quorum = weak_quorum_size(self.n)
        self.signer = signer
        self.params = params
        self.genesis_hash = genesis_hash
        self.genesis_time_ms = genesis_time_ms
        self.app_hash0 = app_hash0
        self.results_hash0 = results_hash0
        self.checks = Checks(chain_id, self.n, signer, params, genesis_hash, app_hash0)

        # time
        self.tick = 0
        self.now_ms: int | None = None
        self.waiting_txs = 0
        # view
        self.view = 0
        self.view_changing = False
        self.consecutive_view_changes = 0
        self._timer_deadline: int | None = None
        self._stall_since_tick = 0  # when the current wait for progress began
        self._retransmit_tick = 0  # last retransmission
        # committed chain and execution
        self.committed_height = 0
        self.tip_hash = genesis_hash
        self.tip_timestamp_ms = genesis_time_ms
        self.best_commit_cert: CommitCertificate | None = None
        self.executed_height = 0
        self._executed: dict[int, tuple[bytes, bytes]] = {0: (app_hash0, results_hash0)}
        # committed heights not executed yet -> block hash (what their checkpoints sign)
        self._unexecuted: dict[int, bytes] = {}
        self.last_nonempty_height = 0
        # recent committed heights -> (block hash, view in the header): proof material when a
        # primary later shows a different block for a height already decided in its view
        self._recent_commits: dict[int, tuple[bytes, int]] = {}
        self._equivocation_proofs: list[PrePrepare] = []  # found while delivering
        # log
        self._slots: dict[int, Slot] = {}
        self._last_accepted = 0  # highest height with a pre-prepare accepted in this view
        # Heights at or below this are decided (the NEW-VIEW's anchor): nothing may be
        # proposed or accepted there in this view, even before this replica has the blocks.
        self._view_floor = 0
        self._commit_certs: dict[int, CommitCertificate] = {}  # known above committed
        self._pending: dict[int, tuple[PrePrepare, bytes]] = {}  # pre-prepares waiting
        self._inflight: dict[bytes, int] = {}  # tx id -> height of an accepted, uncommitted block
        self._batch_since_tick: int | None = None
        self.checkpoints = Checkpoints(self.quorum, genesis_hash, app_hash0)
        # view change
        self._view_changes: dict[int, ViewChange] = {}  # sender -> its highest VIEW-CHANGE
        self._new_views: dict[int, NewView] = {}  # view -> NEW-VIEW accepted or sent
        self._new_view_resent: dict[int, tuple[int, int]] = {}  # replica -> (view, tick)
        # Messages of views not entered yet, per sender, each sender bounded by its share of
        # max_future_messages: one replica's flood of far-view votes cannot crowd out the
        # next-view votes of the others (the f+1 that pull a replica into a view change).
        self._future: dict[int, list[tuple[int, int, Message]]] = {}  # sender -> (seq, view, m)
        self._future_seq = 0
        self._future_share = max(1, self.params.max_future_messages // self.n)
        self._peer_views: dict[int, int] = {}  # replica -> highest view seen in its votes
        self._view_change_sent_tick = 0
        # own signed messages: (phase, view, height) -> (block_hash, encoded message)
        self._own_votes: dict[tuple[int, int, int], tuple[bytes, bytes]] = {}
        self._wal_heights: dict[int, list[bytes]] = {}
        self._wal_views: dict[int, list[bytes]] = {}
        # catch-up
        self.catch_up = CatchUp(replica_id, self.n, self.params)
        # caches
        self._verified_txs: dict[bytes, None] = {}
        self._block_tx_ids: dict[bytes, tuple[tuple[bytes, ...], int]] = {}
        self.stats: dict[str, int] = {}
        # step outputs
        self._persist: list[tuple[bytes, bytes | None]] = []
        self._send: list[tuple[int | None, bytes]] = []
        self._commit: list[tuple[Block, CommitCertificate]] = []
        self._serve: list[ServeBlocks] = []
        self._txs: list[tuple[int, Transaction]] = []
        self._proposed: list[int] = []
        self._soft: SoftState | None = None  # as last reported in a Ready

        self._event_handlers: dict[type, Callable[[Any], None]] = {
            Tick: self._on_tick,
            Receive: self._on_receive,
            Propose: self._on_propose,
            Executed: self._on_executed,
            TxsVerified: self._on_txs_verified,
        }
        self._message_handlers: dict[type, Callable[[int, Any], None]] = {
            PrePrepare: self._on_preprepare,
            Prepare: self._on_prepare,
            Commit: self._on_commit,
            Checkpoint: self._on_checkpoint,
            ViewChange: self._on_view_change,
            NewView: self._on_new_view,
            BlockRequest: self._on_block_request,
            BlockResponse: self._on_block_response,
            TxForward: self._on_tx_forward,
        }
        self._resend_restored = False
        if tip is not None:
            self._restore_tip(tip)
        if restored:
            self._restore_wal(restored)

    # --- the one way in --------------------------------------------------------------------

    def step(self, event: Any) -> Ready:
        self._persist, self._send, self._commit, self._serve, self._txs = [], [], [], [], []
        self._proposed = []
        handler = self._event_handlers.get(type(event))
        if handler is None:
            raise TypeError(f"not a replica event: {type(event).__name__}")
        if self._resend_restored:
            self._resend_restored = False
            self._resend_own_messages()
        handler(event)
        soft = self.soft_state
        changed = soft if soft != self._soft else None
        self._soft = soft
        return Ready(tuple(self._persist), tuple(self._send), tuple(self._commit),
                     tuple(self._serve), tuple(self._txs), changed, tuple(self._proposed))

    # --- read-only views for the node --------------------------------------------------------

    @property
    def mode(self) -> str:
        return MODE_VIEW_CHANGE if self.view_changing else MODE_NORMAL

    @property
    def soft_state(self) -> SoftState:
        return SoftState(self.view, self.primary, self.mode)

    def primary_of(self, view: int) -> int:
        return view % self.n

    @property
    def primary(self) -> int:
        return self.primary_of(self.view)

    @property
    def is_primary(self) -> bool:
        return self.primary == self.id

    @property
    def stable(self) -> CheckpointProof:
        """The highest stable checkpoint (the low watermark)."""
        return self.checkpoints.stable

    @property
    def low_watermark(self) -> int:
        return self.stable.height

    @property
    def high_watermark(self) -> int:
        return self.stable.height + self.params.watermark_window

    @property
    def wants_proposal(self) -> bool:
        """True when a ``Propose`` now could produce a block (this replica is the primary of
        an active view and the next height is free to propose)."""
        return (not self.view_changing and self.is_primary and self.now_ms is not None
                and self._proposal_height() is not None)

    @property
    def inflight_tx_count(self) -> int:
        return len(self._inflight)

    def is_inflight(self, tx_id: bytes) -> bool:
        """True when the transaction is in an accepted block that is not committed yet."""
        return tx_id in self._inflight

    def status(self) -> dict:
        return {
            "replica": self.id, "view": self.view, "primary": self.primary,
            "view_changing": self.view_changing, "committed_height": self.committed_height,
            "executed_height": self.executed_height, "stable_height": self.stable.height,
            "consecutive_view_changes": self.consecutive_view_changes,
            "inflight_heights": max(0, self._last_accepted - self.committed_height),
            "syncing": self._sync_target() > self.committed_height,
        }

    # --- outputs and bookkeeping ---------------------------------------------------------------

    def _count(self, name: str, amount: int = 1) -> None:
        self.stats[name] = self.stats.get(name, 0) + amount

    def _drop(self, reason: str) -> None:
        """A message that is wrong (malformed, badly signed, out of bounds, equivocating)."""
        if reason in _HARMLESS:
            self._count("ignored." + reason)
            return
        self._count("dropped")
        self._count("dropped." + reason)

    def _broadcast(self, data: bytes) -> None:
        if self.n > 1:
            self._send.append((BROADCAST, data))

    def _send_to(self, replica: int, data: bytes) -> None:
        if replica != self.id:
            self._send.append((replica, data))

    def _wal_put(self, key: bytes, value: bytes, height: int | None = None,
                 view: int | None = None) -> None:
        self._persist.append((key, value))
        if height is not None:
            keys = self._wal_heights.setdefault(height, [])
            if key not in keys:
                keys.append(key)
        if view is not None:
            keys = self._wal_views.setdefault(view, [])
            if key not in keys:
                keys.append(key)

    def _persist_view(self) -> None:
        self._persist.append((wal.VIEW_KEY, wal.encode_view(
            self.view, self.view_changing, self.consecutive_view_changes, self._view_floor)))

    def _slot(self, height: int) -> Slot:
        slot = self._slots.get(height)
        if slot is None:
            slot = self._slots[height] = Slot(height)
        return slot

    def _executed_hashes(self, height: int) -> tuple[bytes, bytes] | None:
        """The app and results hash after ``height`` (genesis state at or below 0)."""
        if height <= 0:
            return self.app_hash0, self.results_hash0
        return self._executed.get(height)

    # --- own votes (persisted before they are sent) -----------------------------------------

    def _own_vote(self, phase: int, view: int, height: int, block_hash: bytes,
                  build: Callable[[], bytes]) -> bytes | None:
        """The encoded vote for (phase, view, height): the one already signed if any (so a
        restarted replica re-sends it rather than signing again), else a new one persisted
        now. None when a different vote for that slot was signed before."""
        key = (phase, view, height)
        known = self._own_votes.get(key)
        if known is not None:
            if known[0] != block_hash:
                self._count("refused_equivocation")
                return None
            return known[1]
        data = build()
        self._own_votes[key] = (block_hash, data)
        self._wal_put(wal.vote_key(height, view, phase), data, height=height)
        return data

    # --- events -------------------------------------------------------------------------------

    def _on_tick(self, event: Tick) -> None:
        if type(event.now_ms) is not int or type(event.waiting_txs) is not int:
            raise TypeError("Tick fields are integers")
        self.tick += 1
        self.now_ms = event.now_ms
        self.waiting_txs = max(0, event.waiting_txs)
        self._check_timers()
        self._check_sync()

    def _on_txs_verified(self, event: TxsVerified) -> None:
        cache = self._verified_txs
        for tx_id in event.tx_ids:
            cache[tx_id] = None
        overflow = len(cache) - self.params.verified_tx_cache_size
        if overflow > 0:
            for tx_id in list(cache)[:overflow]:  # oldest first (insertion order)
                del cache[tx_id]

    def _on_receive(self, event: Receive) -> None:
        sender, data = event.sender, event.data
        if type(sender) is not int or not 0 <= sender < self.n or sender == self.id:
            self._drop("bad_sender")
            return
        if not isinstance(data, bytes) or len(data) > self.params.max_message_bytes:
            self._drop("oversize")
            return
        try:
            message = decode_message(data, self.params.max_message_bytes)
        except DecodeError as exc:
            self._drop("malformed")
            self._count("malformed." + exc.code)
            return
        if message.replica != sender and type(message) is not PrePrepare:
            # A pre-prepare carries its primary's signature, so any replica may relay it;
            # every other message comes from its signer only.
            self._drop("sender_mismatch")
            return
        self._count("received." + message.TYPE)
        try:
            self._message_handlers[type(message)](sender, message)
        except RemoteError as exc:  # a peer's bad input found deep inside a check
            # (a LocalError, such as an encode bug of our own, propagates: it is not theirs)
            self._drop(exc.code)

    def _admit_view(self, view: int, sender: int, message: Message,
                    signed: Callable[[], bool]) -> bool:
        """True when a message of ``view`` is for the active view. One for a view this
        replica has not entered is checked (``signed``), buffered for replay and taken as
        evidence of where the sender is; one from an earlier view is dropped."""
        if view < self.view:
            self._drop("old_view")
            return False
        if view > self.view or self.view_changing:
            if view > self.view + self.params.max_view_lookahead:
                self._drop("far_view")
            elif len(self._future.get(sender, ())) >= self._future_share:
                self._drop("future_full")
            elif not signed():
                self._drop("bad_signature")
            else:
                self._future_seq += 1
                self._future.setdefault(sender, []).append((self._future_seq, view, message))
                if view > self._peer_views.get(sender, -1):
                    self._peer_views[sender] = view
                    self._maybe_join_view_change()
            return False
        return True

    # --- proposing (primary) ------------------------------------------------------------------

    def _proposal_height(self) -> int | None:
        # Never at or below the low watermark (decided), nor at a height this primary already
        # signed a pre-prepare for in this view: its NEW-VIEW may re-issue heights it did not
        # accept itself (at or below a stable checkpoint learned later, after a restart).
        height = max(self.committed_height, self._last_accepted, self._view_floor,
                     self.low_watermark) + 1
        while (wal.PHASE_PREPREPARE, self.view, height) in self._own_votes:
            height += 1
        if height > self.high_watermark:
            return None
        if self.executed_height < height - self.params.pipeline_depth:
            return None
        if self._parent_of(height) is None:
            return None
        return height

    def _parent_of(self, height: int) -> tuple[bytes, int] | None:
        """(hash, timestamp) of the block at height-1 that height must extend in this view."""
        if height - 1 == self.committed_height:
            return self.tip_hash, self.tip_timestamp_ms
        slot = self._slots.get(height - 1)
        if slot is not None and slot.view == self.view:
            block = slot.accepted_block()
            if block is not None:
                return slot.block_hash, block.header.timestamp_ms
        return None

    def _on_propose(self, event: Propose) -> None:
        if not self.wants_proposal:
            self._count("propose_ignored")
            return
        height = self._proposal_height()
        assert height is not None
        chosen: list[Transaction] = []
        ids: list[bytes] = []
        seen: set[bytes] = set()
        size_bytes = 0
        full = False
        known = len(event.tx_ids) == len(event.sizes) == len(event.txs)
        for position, tx in enumerate(event.txs):
            if len(chosen) >= self.params.max_block_txs:
                break
            if tx.chain_id != self.chain_id:
                continue
            if known:
                tx_id, tx_bytes = event.tx_ids[position], event.sizes[position]
            else:
                tx_id, tx_bytes = tx.tx_id, len(tx.encode())
            if tx_id in seen or tx_id in self._inflight:
                continue
            if size_bytes + tx_bytes > self.params.max_block_bytes:
                full = True
                break
            seen.add(tx_id)
            chosen.append(tx)
            ids.append(tx_id)
            size_bytes += tx_bytes
        full = full or len(chosen) >= self.params.max_block_txs
        needed = (height <= self.last_nonempty_height + self.params.pipeline_depth
                  or self._idle_block_due(height))
        if not chosen and not needed:
            self._batch_since_tick = None
            return
        if chosen and not full and not needed:
            if self._batch_since_tick is None:
                self._batch_since_tick = self.tick
            if self.tick - self._batch_since_tick < self.params.batch_delay_ticks:
                return
        self._batch_since_tick = None
        self._propose(height, chosen, ids, size_bytes)

    def _idle_block_due(self, height: int) -> bool:
        """True when an empty block should keep block time moving on an idle chain: nothing
        is in flight and the committed tip is at least ``empty_block_interval_ms`` old."""
        return height == self.committed_height + 1 and self._idle_block_overdue()

    def _propose(self, height: int, txs: list[Transaction], ids: list[bytes],
                 size_bytes: int) -> None:
        parent = self._parent_of(height)
        hashes = self._executed_hashes(height - self.params.pipeline_depth)
        assert parent is not None and hashes is not None and self.now_ms is not None
        parent_hash, parent_timestamp_ms = parent
        header = BlockHeader(
            chain_id=self.chain_id, height=height, view=self.view, prev_hash=parent_hash,
            timestamp_ms=max(self.now_ms, parent_timestamp_ms + 1), proposer=self.id,
            tx_root=tx_root(ids), tx_count=len(txs), app_hash=hashes[0], results_hash=hashes[1])
        block = Block(header, tuple(txs))
        block_hash = block.block_hash
        self._block_tx_ids[block_hash] = (tuple(ids), size_bytes)
        signature = b""

        def build() -> bytes:
            nonlocal signature
            signature = self.signer.sign(PREPREPARE_DOMAIN,
                                         preprepare_payload(self.view, height, block_hash))
            return encode_message(PrePrepare(self.view, height, self.id, block, signature))

        data = self._own_vote(wal.PHASE_PREPREPARE, self.view, height, block_hash, build)
        assert data is not None, "a primary never proposes twice at one height in one view"
        self._count("proposed")
        self._proposed.append(height)
        self._broadcast(data)
        slot = self._slot(height)
        slot.add_block(block_hash, block)
        self._accept(slot, self.view, block, block_hash, signature)
        self._after_accept(height)

    # --- normal case: pre-prepare, prepare, commit --------------------------------------------

    def _in_window(self, height: int) -> bool:
        return self.low_watermark < height <= self.high_watermark

    def _on_preprepare(self, sender: int, message: PrePrepare) -> None:
        view, height = message.view, message.height
        origin = message.replica  # the primary that signed it; ``sender`` may be relaying
        if origin != self.primary_of(view):
            self._drop("not_primary")
            return
        if sender != origin:
            self._count("relayed_preprepares")
        if not self._admit_view(view, origin, message, lambda: self.checks.signed(
                origin, PREPREPARE_DOMAIN, message.signing_payload(), message.signature)):
            return
        if height <= self.committed_height:
            self._check_decided_equivocation(message)
            return
        if height <= self._view_floor:
            self._drop("below_view_floor")  # decided before this view began
            return
        if not self._in_window(height):
            self._drop("out_of_window")
            return
        if not header_matches(message, self.chain_id):
            self._drop("bad_header")
            return
        if message.block.header.tx_count > self.params.max_block_txs:
            self._drop("block_too_large")
            return
        block_hash = message.block.block_hash
        slot = self._slots.get(height)
        known = (slot.block_hash if slot is not None and slot.view == view else None)
        pending = self._pending.get(height)
        if known is None and pending is not None and pending[0].view == view:
            known = pending[1]
        if known is not None and known == block_hash:
            self._drop("duplicate")
            return
        if not self.checks.signed(origin, PREPREPARE_DOMAIN, message.signing_payload(block_hash),
                            message.signature):
            self._drop("bad_signature")
            return
        if known is not None:
            self._on_primary_equivocation(message, self._preprepare_for(height, known))
            return
        message.block.validate_structure()  # InvalidBlock -> dropped by _on_receive
        if self._tx_ids_of(message.block, block_hash)[1] > self.params.max_block_bytes:
            self._drop("block_too_large")
            return
        self._try_accept(message, block_hash)

    def _check_decided_equivocation(self, message: PrePrepare) -> None:
        """A pre-prepare of the active view for a committed height. The committed block's
        header names the view it was proposed in; if that is this view, its primary
        pre-prepared it (a commit needs honest prepares, and those follow its pre-prepare),
        so a validly signed pre-prepare of a different block there is an equivocation."""
        decided = self._recent_commits.get(message.height)
        if (decided is None or decided[1] != message.view or self.view_changing
                or message.view != self.view or not header_matches(message, self.chain_id)):
            self._drop("stale")
            return
        block_hash = message.block.block_hash
        if block_hash == decided[0] or not self.checks.signed(
                message.replica, PREPREPARE_DOMAIN, message.signing_payload(block_hash),
                message.signature):
            self._drop("stale")
            return
        self._on_primary_equivocation(message, None)

    def _on_primary_equivocation(self, message: PrePrepare, other: PrePrepare | None) -> None:
        """The primary of the active view signed two different pre-prepares for one height:
        proof that it is faulty. Pass them on, so every honest replica holds the proof, and
        leave the view now instead of waiting for the timer (a primary that equivocates but
        keeps the chain crawling would otherwise never be replaced)."""
        self._drop("equivocation")
        self._count("primary_equivocations")
        if other is not None:
            self._broadcast(encode_message(other))
        self._broadcast(encode_message(message))
        if not self.view_changing:
            self._start_view_change(self.view + 1)

    def _preprepare_for(self, height: int, block_hash: bytes) -> PrePrepare | None:
        """The primary's pre-prepare of the active view this replica holds for ``height``
        (accepted or waiting), rebuilt from the block and the primary's signature."""
        pending = self._pending.get(height)
        if pending is not None and pending[0].view == self.view and pending[1] == block_hash:
            return pending[0]
        slot = self._slots.get(height)
        if slot is None or slot.view != self.view or slot.block_hash != block_hash:
            return None
        block = slot.accepted_block()
        if block is None or slot.preprepare_signature is None or block.header.view != self.view:
            return None  # accepted from a NEW-VIEW: its own re-send covers it
        return PrePrepare(self.view, height, self.primary, block, slot.preprepare_signature)

    def _relay_accepted_preprepares(self) -> None:
        """Send the primary's pre-prepares this backup accepted for uncommitted heights of
        the active view to the peers not known to have them: one the primary's message did
        not reach can then prepare, and a peer that accepted a different block at that height
        learns that the primary equivocated. Heights accepted from a NEW-VIEW are left to its
        own re-send."""
        if self.is_primary:
            return
        for height in sorted(self._slots):
            slot = self._slots[height]
            if height <= self.committed_height or slot.block_hash is None:
                continue
            message = self._preprepare_for(height, slot.block_hash)
            if message is None:
                continue
            # Only to replicas with no matching vote of this view seen here: such a vote means
            # the sender has this block (blocks can be large; relaying to everyone would be
            # O(n^2)). A replica that voted for another block gets it: that is the proof.
            voted = {replica for votes in (slot.prepares, slot.commits)
                     for replica, (view, voted_hash, _) in votes.items()
                     if view == self.view and voted_hash == slot.block_hash}
            data = None
            for replica in range(self.n):
                if replica in voted or replica in (self.id, self.primary):
                    continue
                data = data if data is not None else encode_message(message)
                self._count("relayed_preprepares_sent")
                self._send_to(replica, data)

    def _try_accept(self, message: PrePrepare, block_hash: bytes) -> None:
        """The checks that need local state; buffers the pre-prepare until it is available."""
        height, block = message.height, message.block
        header = block.header
        hashes = self._executed_hashes(height - self.params.pipeline_depth)
        parent = self._parent_of(height)
        if hashes is None or parent is None:
            if height in self._pending or len(self._pending) < self.params.max_pending_preprepares:
                self._pending[height] = (message, block_hash)
                self._count("preprepare_buffered")
            else:
                self._drop("pending_full")
            return
        if header.prev_hash != parent[0]:
            self._drop("bad_prev_hash")
            return
        if header.timestamp_ms <= parent[1]:
            self._drop("bad_timestamp")
            return
        if self.now_ms is None or abs(header.timestamp_ms - self.now_ms) > self.params.max_clock_skew_ms:
            self._drop("clock_skew")
            return
        if (header.app_hash, header.results_hash) != hashes:
            self._drop("bad_app_hash")
            return
        for tx, tx_id in zip(block.txs, self._tx_ids_of(block, block_hash)[0]):
            if tx_id in self._verified_txs:
                continue
            if not self.signer.verify_transaction(tx):
                self._drop("bad_tx_signature")
                return
            self._verified_txs[tx_id] = None
        slot = self._slot(height)
        slot.add_block(block_hash, block)
        self._accept(slot, message.view, block, block_hash, message.signature)
        if not self.is_primary:
            self._send_prepare(slot)
        self._after_accept(height)

    def _accept(self, slot: Slot, view: int, block: Block, block_hash: bytes,
                signature: bytes) -> None:
        slot.view = view
        slot.block_hash = block_hash
        slot.preprepare_signature = signature
        self._last_accepted = max(self._last_accepted, slot.height)
        for tx_id in self._tx_ids_of(block, block_hash)[0]:
            self._inflight[tx_id] = slot.height
        if block.txs:
            self.last_nonempty_height = max(self.last_nonempty_height, slot.height)

    def _tx_ids_of(self, block: Block, block_hash: bytes) -> tuple[tuple[bytes, ...], int]:
        """The block's transaction ids and their total encoded size, computed once."""
        known = self._block_tx_ids.get(block_hash)
        if known is None:
            known = (tuple(tx.tx_id for tx in block.txs),
                     sum(len(tx.encode()) for tx in block.txs))
            self._block_tx_ids[block_hash] = known
            if len(self._block_tx_ids) > MAX_CACHED_BLOCKS:
                del self._block_tx_ids[next(iter(self._block_tx_ids))]
        return known

    def _after_accept(self, height: int) -> None:
        self._check_prepared(height)
        self._retry_pending()
        self._advance_commit_votes()

    def _retry_pending(self) -> None:
        if not self._pending:
            return
        for height in sorted(self._pending):
            if height not in self._pending:
                continue
            if height <= self.committed_height or not self._in_window(height):
                del self._pending[height]
                continue
            hashes = self._executed_hashes(height - self.params.pipeline_depth)
            if hashes is None or self._parent_of(height) is None:
                continue
            message, block_hash = self._pending.pop(height)
            self._try_accept(message, block_hash)

    def _send_prepare(self, slot: Slot) -> None:
        view, height, block_hash = self.view, slot.height, slot.block_hash
        assert block_hash is not None

        def build() -> bytes:
            signature = self.signer.sign(PREPARE_DOMAIN, prepare_payload(view, height, block_hash))
            slot.prepares[self.id] = (view, block_hash, signature)
            return encode_message(Prepare(view, height, self.id, block_hash, signature))

        data = self._own_vote(wal.PHASE_PREPARE, view, height, block_hash, build)
        if data is not None:
            self._broadcast(data)

    def _on_prepare(self, sender: int, message: Prepare) -> None:
        view, height = message.view, message.height
        if not self._admit_view(view, sender, message, lambda: self.checks.signed(
                sender, PREPARE_DOMAIN, message.signing_payload(), message.signature)):
            return
        if sender == self.primary_of(view):
            self._drop("prepare_from_primary")
            return
        if height <= self.committed_height:
            self._drop("stale")
            return
        if height <= self._view_floor:
            self._drop("below_view_floor")
            return
        if not self._in_window(height):
            self._drop("out_of_window")
            return
        slot = self._slot(height)
        if self._known_vote(slot.prepares.get(sender), view, message.block_hash):
            return
        if not self.checks.signed(sender, PREPARE_DOMAIN, message.signing_payload(), message.signature):
            self._drop("bad_signature")
            return
        slot.prepares[sender] = (view, message.block_hash, message.signature)
        self._check_prepared(height)
        self._advance_commit_votes()

    def _known_vote(self, known: tuple[int, bytes, bytes] | None, view: int,
                    block_hash: bytes) -> bool:
        """True (and counted) when the sender already voted in this or a later view."""
        if known is None or known[0] < view:
            return False
        if known[0] > view:
            self._drop("old_view")
        elif known[1] == block_hash:
            self._drop("duplicate")
        else:
            self._drop("equivocation")
        return True

    def _check_prepared(self, height: int) -> None:
        """Form a prepared certificate once the pre-prepare and 2f prepares match."""
        slot = self._slots.get(height)
        if slot is None or slot.view != self.view or slot.block_hash is None:
            return
        if slot.cert is not None and slot.cert.view == self.view:
            return
        primary = self.primary_of(self.view)
        matching = sorted((replica, vote[2]) for replica, vote in slot.prepares.items()
                          if vote[0] == self.view and vote[1] == slot.block_hash
                          and replica != primary)
        needed = self.quorum - 1
        if len(matching) < needed:
            return
        assert slot.preprepare_signature is not None
        cert = PreparedCertificate(self.view, height, slot.block_hash, slot.preprepare_signature,
                                   tuple(matching[:needed]))
        slot.cert = cert
        block = slot.blocks[slot.block_hash]
        # Persisted before the commit vote it enables: a view change must be able to prove it.
        self._wal_put(wal.cert_key(height),
                      codec.encode({"block": block.to_plain(), "cert": cert.to_plain()}),
                      height=height)
        self._count("prepared")

    def _advance_commit_votes(self) -> None:
        """Send COMMIT for each height whose whole chain down to the committed tip holds
        current-view prepared certificates (see the module docstring for why)."""
        if not self.view_changing:
            height = self.committed_height + 1
            parent = self.tip_hash
            while True:
                slot = self._slots.get(height)
                if (slot is None or slot.view != self.view or slot.cert is None
                        or slot.cert.view != self.view or slot.cert.block_hash != slot.block_hash):
                    break
                block = slot.blocks.get(slot.block_hash)
                if block is None or block.header.prev_hash != parent:
                    break
                self._send_commit(slot)
                parent = slot.block_hash
                height += 1
        self._try_deliver()

    def _send_commit(self, slot: Slot) -> None:
        view, height, block_hash = self.view, slot.height, slot.block_hash
        assert block_hash is not None
        if (wal.PHASE_COMMIT, view, height) in self._own_votes:
            return

        def build() -> bytes:
            signature = self.signer.sign(COMMIT_DOMAIN, commit_vote_payload(view, height, block_hash))
            slot.commits[self.id] = (view, block_hash, signature)
            return encode_message(Commit(view, height, self.id, block_hash, signature))

        data = self._own_vote(wal.PHASE_COMMIT, view, height, block_hash, build)
        if data is not None:
            self._broadcast(data)
            self._note_commit_quorum(slot)

    def _on_commit(self, sender: int, message: Commit) -> None:
        view, height = message.view, message.height
        # Commits of earlier views still count: 2f+1 of them certify a block in any view.
        if view > self.view or (view == self.view and self.view_changing):
            self._admit_view(view, sender, message, lambda: self.checks.signed(
                sender, COMMIT_DOMAIN, message.signing_payload(), message.signature))
            return
        if height <= self.committed_height:
            self._drop("stale")
            return
        if not self._in_window(height):
            self._drop("out_of_window")
            return
        slot = self._slot(height)
        if self._known_vote(slot.commits.get(sender), view, message.block_hash):
            return
        if not self.checks.signed(sender, COMMIT_DOMAIN, message.signing_payload(), message.signature):
            self._drop("bad_signature")
            return
        slot.commits[sender] = (view, message.block_hash, message.signature)
        self._note_commit_quorum(slot)
        self._try_deliver()

    def _commit_quorum(self, slot: Slot) -> CommitCertificate | None:
        tally: dict[tuple[int, bytes], list[tuple[int, bytes]]] = {}
        for replica in sorted(slot.commits):
            view, block_hash, signature = slot.commits[replica]
            tally.setdefault((view, block_hash), []).append((replica, signature))
        for (view, block_hash), signatures in tally.items():
            if len(signatures) >= self.quorum:
                return CommitCertificate(slot.height, view, block_hash,
                                         tuple(signatures[:self.quorum]))
        return None

    def _note_commit_quorum(self, slot: Slot) -> None:
        if slot.height <= self.catch_up.certified_height:
            return
        cert = self._commit_quorum(slot)
        if cert is not None:
            self._learn_commit_certificate(cert)

    def _learn_commit_certificate(self, cert: CommitCertificate) -> None:
        """A (verified) certificate for a height above the committed tip: deliver with it
        once the block is known, fetch the block otherwise."""
        if cert.height <= self.committed_height:
            return
        self._commit_certs.setdefault(cert.height, cert)
        self.catch_up.note_certified(cert.height)
        if self.best_commit_cert is None or cert.height > self.best_commit_cert.height:
            self.best_commit_cert = cert

    # --- delivery and execution ---------------------------------------------------------------

    def _try_deliver(self) -> None:
        while True:
            height = self.committed_height + 1
            entry: tuple[Block, CommitCertificate] | None = None
            slot = self._slots.get(height)
            if slot is not None:
                cert = self._commit_quorum(slot)
                if cert is not None:
                    block = slot.blocks.get(cert.block_hash)
                    if block is not None:
                        entry = (block, cert)
            known = self._commit_certs.get(height)
            if entry is None and known is not None and slot is not None:
                block = slot.blocks.get(known.block_hash)
                if block is not None:
                    entry = (block, known)
            if entry is None:
                entry = self.catch_up.buffer.get(height)
            if entry is None:
                break
            self._deliver(*entry)
        proofs, self._equivocation_proofs = self._equivocation_proofs, []
        if proofs and not self.view_changing:
            self._on_primary_equivocation(proofs[0], None)

    def _deliver(self, block: Block, cert: CommitCertificate) -> None:
        height = cert.height
        assert block.height == height == self.committed_height + 1
        assert block.header.prev_hash == self.tip_hash, (
            f"certified block {height} does not extend the committed chain")
        self.committed_height = height
        self.tip_hash = cert.block_hash
        self.tip_timestamp_ms = block.header.timestamp_ms
        if self.best_commit_cert is None or height >= self.best_commit_cert.height:
            self.best_commit_cert = cert
        self.catch_up.note_certified(height)
        if block.txs:
            self.last_nonempty_height = max(self.last_nonempty_height, height)
        for tx_id in self._tx_ids_of(block, cert.block_hash)[0]:
            if self._inflight.get(tx_id, height) <= height:
                self._inflight.pop(tx_id, None)
        self._block_tx_ids.pop(cert.block_hash, None)
        self._recent_commits[height] = (cert.block_hash, block.header.view)
        self._unexecuted[height] = cert.block_hash
        self._recent_commits.pop(height - self.params.watermark_window, None)
        self.catch_up.buffer.pop(height, None)
        self._commit_certs.pop(height, None)
        self._pending.pop(height, None)
        self._commit.append((block, cert))
        self._count("committed")
        # Progress: restart the timer; a view that commits ends a run of view changes.
        self._timer_deadline = None
        self.catch_up.gap_since_tick = None
        if not self.view_changing and cert.view == self.view:
            self.consecutive_view_changes = 0
        slot = self._slots.get(height)
        if slot is not None and slot.block_hash is not None and slot.block_hash != cert.block_hash:
            self._note_losing_preprepare(slot, block)
            slot.clear_acceptance()  # the block this replica accepted lost; forget it

    def _note_losing_preprepare(self, slot: Slot, committed: Block) -> None:
        """This replica accepted block B at a height where block A, proposed in the active
        view by its primary, was certified: the primary signed both (honest replicas prepare
        A only after its pre-prepare, a NEW-VIEW re-issues A only with its certificate).
        The proof is B's pre-prepare, which the replicas that committed A do not have: it is
        passed on once delivery is done (see ``_on_primary_equivocation``)."""
        header = committed.header
        if (self.view_changing or header.view != self.view
                or header.proposer != self.primary or slot.view != self.view):
            return
        proof = self._preprepare_for(slot.height, slot.block_hash)
        if proof is not None:
            self._equivocation_proofs.append(proof)

    def _on_executed(self, event: Executed) -> None:
        height = event.height
        assert height == self.executed_height + 1 and height <= self.committed_height, (
            f"executed {height} out of order (executed {self.executed_height}, "
            f"committed {self.committed_height})")
        self.executed_height = height
        block_hash = self._unexecuted.pop(height)
        self._executed[height] = (event.app_hash, event.results_hash)
        self._executed.pop(height - self.params.pipeline_depth - 1, None)
        if height % self.params.checkpoint_interval == 0:
            self._send_checkpoint(height, block_hash, event.app_hash)
        self._retry_pending()
        self._advance_commit_votes()

    # --- checkpoints ----------------------------------------------------------------------

    def _send_checkpoint(self, height: int, block_hash: bytes, state_root: bytes) -> None:
        checkpoint = (block_hash, state_root)
        if height == self.stable.height:
            assert checkpoint == (self.stable.block_hash, self.stable.state_root), (
                f"state after {height} diverges from the stable checkpoint")
        self.checkpoints.own[height] = checkpoint
        if height <= self.stable.height:
            return
        signature = self.signer.sign(CHECKPOINT_DOMAIN,
                                     checkpoint_payload(height, *checkpoint))
        self._broadcast(encode_message(Checkpoint(height, block_hash, state_root, self.id,
                                                  signature)))
        self._record_checkpoint(self.id, height, checkpoint, signature)

    def _on_checkpoint(self, sender: int, message: Checkpoint) -> None:
        height = message.height
        if height == 0 or height % self.params.checkpoint_interval:
            self._drop("bad_checkpoint_height")
            return
        checkpoint = (message.block_hash, message.state_root)
        refusal = self.checkpoints.vote_refusal(sender, height, checkpoint, self.high_watermark)
        if refusal is not None:
            self._drop(refusal)
            return
        if not self.checks.signed(sender, CHECKPOINT_DOMAIN, message.signing_payload(),
                                  message.signature):
            self._drop("bad_signature")
            return
        self._record_checkpoint(sender, height, checkpoint, message.signature)

    def _record_checkpoint(self, replica: int, height: int, checkpoint: tuple[bytes, bytes],
                           signature: bytes) -> None:
        proof = self.checkpoints.record(replica, height, checkpoint, signature,
                                        self.high_watermark)
        if proof is not None:
            self._set_stable(proof)

    def _set_stable(self, proof: CheckpointProof) -> None:
        height = proof.height
        if not self.checkpoints.make_stable(proof):
            return
        self._count("stable_checkpoints")
        self._persist.append((wal.STABLE_KEY, codec.encode(proof.to_plain())))
        # Garbage collection at the new low watermark: one call per part that owns state.
        self._forget_below(height)
        if height > self.committed_height:
            self._count("behind_stable_checkpoint")
        # Last: far votes now inside the window may make a later checkpoint stable.
        for replica, far_height, checkpoint, signature in self.checkpoints.take_far_in_window(
                self.high_watermark):
            if far_height > self.stable.height:
                self._record_checkpoint(replica, far_height, checkpoint, signature)

    def _forget_below(self, height: int) -> None:
        """Forget the log, the WAL records and the own votes at or below a new stable
        checkpoint ``height`` (the checkpoint parts forget their own in ``make_stable``).
        Safe: 2f+1 replicas signed the state at ``height``, so no view change needs a
        certificate at or below it (``view_change_anchor``) and a lagging replica fetches
        those blocks with their commit certificates."""
        for old in [h for h in self._slots if h <= height]:
            del self._slots[old]
        for old in [h for h in self._pending if h <= height]:
            del self._pending[old]
        for old in [h for h in self._commit_certs if h <= height]:
            del self._commit_certs[old]
        for old in sorted(h for h in self._wal_heights if h <= height):
            for key in self._wal_heights.pop(old):
                self._persist.append((key, None))
        for old in sorted(v for v in self._wal_views if v < self.view):
            for key in self._wal_views.pop(old):
                self._persist.append((key, None))
        for key in [k for k in self._own_votes if k[2] <= height]:
            del self._own_votes[key]
        for view in [v for v in self._new_views if v < self.view]:
            del self._new_views[view]

    # --- view change --------------------------------------------------------------------------

    def _has_pending_work(self) -> bool:
        return (self.waiting_txs > 0 or self._last_accepted > self.committed_height
                or bool(self._pending) or self._idle_block_overdue())

    def _idle_block_overdue(self) -> bool:
        """With idle blocks on, a block is expected every ``empty_block_interval_ms``: once
        the committed tip is older than that, an empty chain is pending work too, so a dead
        primary of an idle chain meets the view-change timer like a busy one."""
        interval_ms = self.params.empty_block_interval_ms
        return (interval_ms > 0 and self.now_ms is not None
                and self.now_ms - self.tip_timestamp_ms >= interval_ms)

    def _check_timers(self) -> None:
        if self.view_changing:
            if self._timer_deadline is None:
                self._timer_deadline = self.tick + self.params.view_change_timeout(
                    self.consecutive_view_changes)
            if self.tick >= self._timer_deadline:
                if self._gave_up_count(self.view) >= self.quorum:
                    # 2f+1 replicas moved but the new primary did not deliver: next view.
                    self._start_view_change(self.view + 1)
                    return
                # Too few replicas moved: do not escalate alone; keep waiting.
                self._timer_deadline = self.tick + self.params.view_change_timeout(
                    self.consecutive_view_changes)
            if self.tick - self._view_change_sent_tick >= self.params.view_change_timeout_ticks:
                # Re-send our VIEW-CHANGE every base timeout: on a lossy network the new
                # primary, or the replicas that should join, may not have it.
                own = self._view_changes.get(self.id)
                if own is not None and own.new_view == self.view:
                    self._view_change_sent_tick = self.tick
                    self._count("view_changes_resent")
                    self._broadcast(encode_message(own))
            if (self.params.retransmit_ticks > 0
                    and self.tick - self._retransmit_tick >= self.params.retransmit_ticks):
                # While waiting for others to join, keep the chain current from certified
                # blocks: the replicas that stayed may be committing without this one.
                self._retransmit_tick = self.tick
                self._probe_next_block()
            return
        if not self._has_pending_work():
            self._timer_deadline = None
        elif self._timer_deadline is None:
            self._timer_deadline = self.tick + self.params.view_change_timeout(
                self.consecutive_view_changes)
            self._stall_since_tick = self.tick
        elif self.tick >= self._timer_deadline:
            self._count("view_change_timeouts")
            self._start_view_change(self.view + 1)
        else:
            self._maybe_retransmit()

    def _maybe_retransmit(self) -> None:
        """No commit for ``retransmit_ticks`` with work pending: send this replica's own
        messages for the uncommitted heights again (the same signed bytes) and ask a peer for
        the next block, in case the peers committed it and only their votes were lost. Peers
        drop what they already have as duplicates; a faulty primary still meets the view-change
        timer, which retransmission does not reset."""
        interval = self.params.retransmit_ticks
        if interval <= 0 or self.tick - max(self._stall_since_tick,
                                            self._retransmit_tick) < interval:
            return
        self._retransmit_tick = self.tick
        self._count("retransmits")
        self._resend_own_messages()
        self._relay_accepted_preprepares()
        self._probe_next_block()

    def _probe_next_block(self) -> None:
        """Ask one peer for the block after the committed tip unless a fetch is under way; an
        empty answer just rotates to the next peer."""
        if self.catch_up.requests or self.n <= 1:
            return
        self._count("sync_probes")
        self._request_blocks(self.committed_height + 1,
                             min(self.params.catch_up_max_blocks, self.params.pipeline_depth + 1))

    def _request_blocks(self, start: int, count: int) -> None:
        """Ask the current sync peer for ``count`` certified blocks from ``start``, remember
        the request until its deadline, and move on to the next peer."""
        peer = self.catch_up.add_request(start, count, self.tick)
        self._send_to(peer, encode_message(BlockRequest(self.id, start, count)))

    def _gave_up_count(self, view: int) -> int:
        """Replicas known to have left every view below ``view``: a VIEW-CHANGE for a later
        view also says its sender gave up on this one (PBFT's 2f+1 that start the timer)."""
        return sum(1 for vc in self._view_changes.values() if vc.new_view >= view)

    def _start_view_change(self, new_view: int) -> None:
        assert new_view > self.view
        self.view = new_view
        self.view_changing = True
        self.consecutive_view_changes = min(self.consecutive_view_changes + 1, 40)
        self._timer_deadline = self.tick + self.params.view_change_timeout(
            self.consecutive_view_changes)
        self._count("view_changes_started")
        self._forget_view_state()
        self._persist_view()
        own = self._own_view_change(new_view)
        self._wal_put(wal.view_change_key(new_view), encode_message(own), view=new_view)
        self._view_changes[self.id] = own
        self._broadcast(encode_message(own))
        self._view_change_sent_tick = self.tick
        self._maybe_send_new_view()

    def _forget_view_state(self) -> None:
        """Acceptances are per view; certificates, votes and blocks stay."""
        for slot in self._slots.values():
            slot.clear_acceptance()
        self._pending.clear()
        self._inflight.clear()
        self._batch_since_tick = None
        self._last_accepted = self.committed_height

    def _own_view_change(self, new_view: int) -> ViewChange:
        anchor = self.best_commit_cert
        # Every certificate above what this message itself proves decided (PBFT sends all
        # above the stable checkpoint; the commit certificate may prove more).
        anchor_height = max(self.stable.height, 0 if anchor is None else anchor.height)
        prepared: list[PreparedCertificate] = []
        blocks: list[Block] = []
        for height in sorted(self._slots):
            slot = self._slots[height]
            if height <= anchor_height or slot.cert is None:
                continue
            if height > anchor_height + self.params.watermark_window:
                break
            block = slot.blocks.get(slot.cert.block_hash)
            assert block is not None, "a prepared certificate is always kept with its block"
            prepared.append(slot.cert)
            blocks.append(block)
        unsigned = ViewChange(new_view, self.id, self.stable, anchor, tuple(prepared), b"", ())
        signature = self.signer.sign(VIEW_CHANGE_DOMAIN, unsigned.signing_payload())
        return ViewChange(new_view, self.id, self.stable, anchor, tuple(prepared), signature,
                          tuple(blocks))

    def _on_view_change(self, sender: int, message: ViewChange) -> None:
        view = message.new_view
        if view < self.view or (view == self.view and not self.view_changing):
            self._drop("stale")
            nv = self._new_views.get(view)
            last = self._new_view_resent.get(sender)
            if (view == self.view and nv is not None and nv.replica == self.id
                    and (last is None or last[0] != view
                         or self.tick - last[1] >= self.params.view_change_timeout_ticks)):
                # The sender missed our NEW-VIEW: send it again (at most once per timeout).
                self._new_view_resent[sender] = (view, self.tick)
                self._send_to(sender, encode_message(nv))
            return
        if view > self.view + self.params.max_view_lookahead:
            self._drop("far_view")
            return
        known = self._view_changes.get(sender)
        if known is not None and known.new_view >= view:
            self._drop("duplicate" if known.new_view == view else "stale")
            return
        reason = self.checks.view_change(message, with_blocks=True)
        if reason is not None:
            self._drop(reason)
            return
        self._view_changes[sender] = message
        # What it proves is worth knowing at once: a lagging replica starts fetching blocks
        # during the view change instead of after it.
        if message.checkpoint.height > self.stable.height:
            self._set_stable(message.checkpoint)
        if message.committed is not None:
            self._learn_commit_certificate(message.committed)
        self._maybe_join_view_change()
        self._maybe_send_new_view()

    def _maybe_join_view_change(self) -> None:
        """Join when f+1 other replicas ask for views above ours (PBFT's liveness rule)."""
        # A replica's view is the highest of its VIEW-CHANGE and its signed votes seen.
        views = sorted((view for view in (
            max(self._view_changes[replica].new_view if replica in self._view_changes else -1,
                self._peer_views.get(replica, -1))
            for replica in range(self.n) if replica != self.id) if view > self.view),
            reverse=True)
        if len(views) >= self.weak_quorum:
            self._count("view_change_joined")
            self._start_view_change(views[self.weak_quorum - 1])

    def _maybe_send_new_view(self) -> None:
        view = self.view
        if not self.view_changing or self.primary_of(view) != self.id or view in self._new_views:
            return
        own = self._view_changes.get(self.id)
        if own is None or own.new_view != view:
            return
        chosen = [own] + [self._view_changes[r] for r in sorted(self._view_changes)
                          if r != self.id and self._view_changes[r].new_view == view]
        if len(chosen) < self.quorum:
            return
        chosen = sorted(chosen[:self.quorum], key=lambda vc: vc.replica)
        plan = plan_new_view(chosen, self.genesis_hash)
        blocks_by_hash: dict[bytes, Block] = {}
        for vc in chosen:
            for cert, block in zip(vc.prepared, vc.blocks):
                blocks_by_hash.setdefault(cert.block_hash, block)
        count = chained_prefix(plan, blocks_by_hash)
        entries = []
        for cert in plan.candidates[:count]:
            signature = self.signer.sign(PREPREPARE_DOMAIN,
                                         preprepare_payload(view, cert.height, cert.block_hash))
            entries.append(NewViewEntry(cert.height, cert.block_hash, signature))
        # Blocks of every candidate, so backups can check where the chain breaks.
        blocks = []
        for cert in plan.candidates:
            block = blocks_by_hash.get(cert.block_hash)
            if block is None:
                break
            blocks.append(block)
        stripped = tuple(vc.without_blocks() for vc in chosen)
        unsigned = NewView(view, self.id, stripped, tuple(entries), b"", ())
        signature = self.signer.sign(NEW_VIEW_DOMAIN, unsigned.signing_payload())
        new_view = NewView(view, self.id, stripped, tuple(entries), signature, tuple(blocks))
        data = encode_message(new_view)
        self._wal_put(wal.new_view_key(view), data, view=view)
        for entry in entries:
            self._own_votes[(wal.PHASE_PREPREPARE, view, entry.height)] = (entry.block_hash, data)
        self._count("new_views_sent")
        self._broadcast(data)
        self._enter_new_view(new_view, plan, count)

    def _on_new_view(self, sender: int, message: NewView) -> None:
        view = message.new_view
        if view < self.view or (view == self.view and not self.view_changing
                                and view in self._new_views):
            self._drop("stale")
            return
        if view > self.view + self.params.max_view_lookahead:
            self._drop("far_view")
            return
        if sender != self.primary_of(view):
            self._drop("not_primary")
            return
        if not self.checks.signed(sender, NEW_VIEW_DOMAIN, message.signing_payload(), message.signature):
            self._drop("bad_signature")
            return
        vcs = message.view_changes
        ids = [vc.replica for vc in vcs]
        if len(vcs) < self.quorum or ids != sorted(set(ids)):
            self._drop("bad_new_view")
            return
        for vc in vcs:
            if vc.new_view != view:
                self._drop("bad_new_view")
                return
            reason = self.checks.view_change(vc, with_blocks=False)
            if reason is not None:
                self._drop("bad_new_view")
                return
        plan = plan_new_view(vcs, self.genesis_hash)
        if len(message.blocks) > len(plan.candidates):
            self._drop("bad_new_view")
            return
        blocks_by_hash: dict[bytes, Block] = {}
        for cert, block in zip(plan.candidates, message.blocks):
            if block.height != cert.height or block.block_hash != cert.block_hash:
                self._drop("bad_new_view")
                return
            block.validate_structure()
            blocks_by_hash[cert.block_hash] = block
        count = chained_prefix(plan, blocks_by_hash)
        if count < len(plan.candidates) and len(message.blocks) <= count:
            # The primary stopped the O set without showing the block that breaks the chain.
            self._drop("bad_new_view")
            return
        expected = [(cert.height, cert.block_hash) for cert in plan.candidates[:count]]
        if [(entry.height, entry.block_hash) for entry in message.preprepares] != expected:
            self._drop("bad_new_view")
            return
        for entry in message.preprepares:
            if not self.checks.signed(sender, PREPREPARE_DOMAIN,
                                preprepare_payload(view, entry.height, entry.block_hash),
                                entry.signature):
                self._drop("bad_signature")
                return
        self._count("new_views_accepted")
        # Kept like the primary's own: a restarted backup re-accepts its O set from it.
        self._wal_put(wal.new_view_key(view), encode_message(message), view=view)
        self._enter_new_view(message, plan, count)

    def _enter_new_view(self, message: NewView, plan: NewViewPlan, count: int) -> None:
        view = message.new_view
        if view != self.view:
            self.view = view
            self._forget_view_state()
        self.view_changing = False
        self._timer_deadline = None
        self._view_floor = plan.anchor_height
        self._persist_view()
        self._new_views[view] = message
        for replica in [r for r, vc in self._view_changes.items() if vc.new_view <= view]:
            del self._view_changes[replica]
        # What V proves: a stable checkpoint and the anchor's commit certificate.
        for vc in message.view_changes:
            if vc.checkpoint.height > self.stable.height:
                self._set_stable(vc.checkpoint)
        anchor = plan.anchor_certificate
        if anchor is not None:
            self._learn_commit_certificate(anchor)
        blocks = {block.block_hash: block for block in message.blocks}
        for entry in message.preprepares[:count]:
            height = entry.height
            block = blocks[entry.block_hash]
            if height <= self.committed_height or not self._in_window(height):
                continue
            slot = self._slot(height)
            slot.add_block(entry.block_hash, block)
            self._accept(slot, view, block, entry.block_hash, entry.signature)
            if not self.is_primary:
                self._send_prepare(slot)
        for entry in message.preprepares[:count]:
            self._check_prepared(entry.height)
        self._replay_future(view)
        self._advance_commit_votes()

    def _replay_future(self, view: int) -> None:
        ready: list[tuple[int, int, Message]] = []
        for sender in sorted(self._future):
            buffered = self._future[sender]
            ready.extend((seq, sender, message) for seq, item_view, message in buffered
                         if item_view == view)
            later = [item for item in buffered if item[1] > view]
            if later:
                self._future[sender] = later
            else:
                del self._future[sender]
        ready.sort(key=lambda item: item[0])  # in arrival order
        for _, sender, message in ready:
            try:
                self._message_handlers[type(message)](sender, message)
            except RemoteError as exc:
                self._drop(exc.code)

    # --- catch-up ---------------------------------------------------------------------------

    def _sync_target(self) -> int:
        return max(self.catch_up.certified_height, self.stable.height)

    def _check_sync(self) -> None:
        """Expire block requests and send new ones while the chain is known to be ahead."""
        catch_up = self.catch_up
        expired = catch_up.expire(self.tick)
        if expired:
            self._count("sync_timeouts", expired)
        target = self._sync_target()
        if target <= self.committed_height:
            catch_up.gap_since_tick = None
            return
        if catch_up.gap_since_tick is None:
            catch_up.gap_since_tick = self.tick
        far = target > self.committed_height + self.params.pipeline_depth + 1
        if not far and self.tick - catch_up.gap_since_tick < self.params.catch_up_delay_ticks:
            return  # a commit a message away is not worth a fetch yet
        start: int | None = self.committed_height + 1
        while len(catch_up.requests) < self.params.catch_up_max_outstanding_requests:
            # the lowest height neither buffered nor asked for, and the run of missing
            # heights after it: a request that timed out below one still outstanding leaves
            # a gap that must be asked for again first
            start = catch_up.first_missing(start, target)
            if start is None:
                break
            count = 1
            while (count < self.params.catch_up_max_blocks and start + count <= target
                   and catch_up.first_missing(start + count, start + count) == start + count):
                count += 1
            self._request_blocks(start, count)
            self._count("sync_requests")
            start += count

    def _on_block_request(self, sender: int, message: BlockRequest) -> None:
        if not self.catch_up.may_serve(sender, self.tick):
            self._drop("block_request_budget")
            return
        count = min(message.max_blocks, self.params.catch_up_max_blocks)
        self._serve.append(ServeBlocks(sender, message.from_height, count))

    def _on_block_response(self, sender: int, message: BlockResponse) -> None:
        catch_up = self.catch_up
        start = message.entries[0][0].height if message.entries else None
        request = catch_up.take_request(sender, start)
        if request is None:
            self._drop("unrequested_blocks")
            return
        if start is None:
            self._count("sync_empty_responses")
            return
        _, count, _ = request
        parent = self.tip_hash if start == self.committed_height + 1 else None
        reason = self.checks.block_response(message.entries, start, count, parent)
        if reason is not None:
            self._drop(reason)
            if sender == catch_up.peer:
                catch_up.rotate_peer()
            return
        for block, cert in message.entries:
            if block.height > self.committed_height:
                catch_up.buffer[block.height] = (block, cert)
            if self.best_commit_cert is None or cert.height > self.best_commit_cert.height:
                self.best_commit_cert = cert
            catch_up.note_certified(cert.height)
        self._count("synced_blocks", len(message.entries))
        self._try_deliver()
        self._retry_pending()
        self._advance_commit_votes()
        self._check_sync()

    # --- forwarded transactions ---------------------------------------------------------------

    def _on_tx_forward(self, sender: int, message: TxForward) -> None:
        if len(message.txs) > self.params.max_forward_txs:
            self._drop("too_many_txs")
            return
        for tx in message.txs:
            self._txs.append((sender, tx))

    # --- restart ------------------------------------------------------------------------------

    def _restore_tip(self, tip: CommittedTip) -> None:
        self.committed_height = tip.height
        self.tip_hash = tip.block_hash
        self.tip_timestamp_ms = tip.timestamp_ms
        self.best_commit_cert = tip.certificate
        self.catch_up.certified_height = tip.height
        self.executed_height = tip.height
        for height, app_hash, results_hash in tip.executed:
            self._executed[height] = (app_hash, results_hash)
        assert tip.height == 0 or tip.height in self._executed, "the tip's execution is needed"
        self.last_nonempty_height = tip.last_nonempty_height
        self._last_accepted = tip.height

    def _restore_wal(self, records: Sequence[tuple[bytes, bytes]]) -> None:
        """Rebuild from this replica's own WAL (trusted: a corrupt record is a local fault)."""
        certs: list[tuple[PreparedCertificate, Block]] = []
        votes: list[tuple[int, int, int, Message]] = []
        for key, value in records:
            if key == wal.VIEW_KEY:
                (self.view, self.view_changing, self.consecutive_view_changes,
                 self._view_floor) = wal.decode_view(value)
            elif key == wal.STABLE_KEY:
                self.checkpoints.stable = CheckpointProof.from_plain(codec.decode(value))
            elif key.startswith(wal.VOTE_PREFIX):
                height, view, phase = wal.parse_vote_key(key)
                votes.append((height, view, phase, decode_message(value)))
                self._wal_heights.setdefault(height, []).append(key)
            elif key.startswith(wal.CERT_PREFIX):
                height = wal.parse_u64_suffix(key, wal.CERT_PREFIX)
                plain = codec.decode(value)
                certs.append((PreparedCertificate.from_plain(plain["cert"]),
                              Block.from_plain(plain["block"])))
                self._wal_heights.setdefault(height, []).append(key)
            elif key.startswith(wal.VIEW_CHANGE_PREFIX):
                view = wal.parse_u64_suffix(key, wal.VIEW_CHANGE_PREFIX)
                message = decode_message(value)
                assert isinstance(message, ViewChange)
                self._wal_views.setdefault(view, []).append(key)
                if self.id not in self._view_changes or view > self._view_changes[self.id].new_view:
                    self._view_changes[self.id] = message
            elif key.startswith(wal.NEW_VIEW_PREFIX):
                view = wal.parse_u64_suffix(key, wal.NEW_VIEW_PREFIX)
                message = decode_message(value)
                assert isinstance(message, NewView)
                self._wal_views.setdefault(view, []).append(key)
                self._new_views[view] = message
                if message.replica == self.id:
                    for entry in message.preprepares:
                        self._own_votes[(wal.PHASE_PREPREPARE, view, entry.height)] = (
                            entry.block_hash, value)
            else:
                raise AssertionError(f"unknown WAL record {key!r}")
        own = self._view_changes.get(self.id)
        if own is not None and own.new_view != self.view:
            del self._view_changes[self.id]
        for cert, block in certs:
            if cert.height > self.committed_height and self._in_window(cert.height):
                slot = self._slot(cert.height)
                slot.add_block(cert.block_hash, block)
                if slot.cert is None or cert.view > slot.cert.view:
                    slot.cert = cert
        for height, view, phase, message in votes:
            if isinstance(message, PrePrepare):
                block_hash = message.block.block_hash
            else:
                block_hash = message.block_hash  # type: ignore[union-attr]
            self._own_votes[(phase, view, height)] = (block_hash, encode_message(message))
            if height <= self.committed_height or not self._in_window(height):
                continue
            slot = self._slot(height)
            if isinstance(message, PrePrepare):
                slot.add_block(block_hash, message.block)
                if view == self.view and not self.view_changing:
                    self._accept(slot, view, message.block, block_hash, message.signature)
            elif isinstance(message, Prepare):
                slot.prepares[self.id] = (view, block_hash, message.signature)
            elif isinstance(message, Commit):
                slot.commits[self.id] = (view, block_hash, message.signature)
        nv = self._new_views.get(self.view)
        if nv is not None and not self.view_changing:
            blocks = {block.block_hash: block for block in nv.blocks}
            for entry in nv.preprepares:
                if entry.height > self.committed_height and self._in_window(entry.height):
                    slot = self._slot(entry.height)
                    block = blocks[entry.block_hash]
                    slot.add_block(entry.block_hash, block)
                    self._accept(slot, self.view, block, entry.block_hash, entry.signature)
        self._count("restored_records", len(records))
        self._resend_restored = True

    def _resend_own_messages(self) -> None:
        """After a restart, send again what this replica signed in its current view before
        the crash (the very same bytes): peers may never have received it."""
        if self.view_changing:
            own = self._view_changes.get(self.id)
            if own is not None and own.new_view == self.view:
                self._broadcast(encode_message(own))
            return
        sent: set[bytes] = set()  # a NEW-VIEW stands for all its pre-prepares
        for phase, view, height in sorted(self._own_votes):
            if view != self.view or height <= self.committed_height:
                continue
            data = self._own_votes[(phase, view, height)][1]
            if data not in sent:
                sent.add(data)
                self._broadcast(data)
        nv = self._new_views.get(self.view)
        if nv is not None and nv.replica == self.id and not sent:
            self._broadcast(encode_message(nv))
