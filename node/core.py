"""NodeCore: one node's replica, application, mempool and store, driven by events.

The same object runs in the aiohttp runtime and in the simulator; neither has a code path of
its own here. Every entry point (``start``, ``on_tick``, ``on_message``, ``submit_tx``)
steps the replica, then, before returning:
  1. writes the replica's WAL records (synced) -- its own votes are durable before they can
     be sent;
  2. executes each committed block with the application and stores block, certificate,
     receipts, state writes and per-height metadata in one synced batch, then tells the
     replica (``Executed``);
  3. answers peers' block requests from the store and admits transactions peers forwarded;
  4. offers the mempool to the replica when it is the primary and wants a block;
and returns an ``Output`` with the bytes to send and the blocks committed. A runtime only
has to deliver ``out.send``.

Transactions enter through ``submit_tx`` (decode, size, dedup, signature once, the
application's ``check_tx``, mempool bounds) and are forwarded to the primary at once; a node
that keeps waiting on a ready one re-forwards it periodically and after each change of
primary. The mempool orders each sender's transactions by nonce from its committed next nonce
and offers the replica only those that can execute (node.mempool), so one submitted ahead of
its predecessor waits for it instead of failing. Committed transactions leave the mempool,
the senders involved get their new next nonce, and their waiting transactions are re-checked
against the new state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from consensus.events import (
    BROADCAST,
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
from consensus.messages import BlockResponse, TxForward, encode_message
from consensus.replica import Replica
from consensus.signer import Ed25519Signer, Signer
from ledger import codec
from ledger.application import Application
from ledger.errors import HuzhuError
from ledger.keys import KeyPair
from ledger.merkle import EMPTY_ROOT
from ledger.types import MAX_TX_BYTES, Block, CommitCertificate, Transaction, results_hash
from node.apps import make_application
from node.genesis import Genesis
from node.mempool import DEFAULT_MAX_NONCE_AHEAD, DEFAULT_MAX_TXS_PER_SENDER, Mempool
from node.storage.base import Store, StoreError

GENESIS_APP_HASH_META = "genesis_app_hash"
EXECUTED_META_PREFIX = "exec/"  # + zero-padded height -> [app_hash, results_hash]
RESPONSE_OVERHEAD_BYTES = 4096  # room left for the envelope of a block response


def executed_meta_name(height: int) -> str:
    return f"{EXECUTED_META_PREFIX}{height:020d}"


@dataclass(frozen=True, slots=True)
class NodeParams:
    mempool_max_txs: int = 10_000
    mempool_max_bytes: int = 64 * 1024 * 1024
    # A transaction still waiting after this many ticks is sent to every replica again;
    # None: half the consensus view-change timeout, so peers learn of it before they
    # would have to time out on it.
    reforward_ticks: int | None = None
    max_reforward_txs_per_tick: int = 256
    # One sender's share of the mempool (at the bound: sender_quota, 429), and how far past
    # its committed next nonce a transaction may be held (beyond: nonce_too_high, 422).
    mempool_max_txs_per_sender: int = DEFAULT_MAX_TXS_PER_SENDER
    mempool_max_nonce_ahead: int = DEFAULT_MAX_NONCE_AHEAD


class CommittedBlock(NamedTuple):
    height: int
    block_hash: bytes
    tx_ids: tuple[bytes, ...]
    app_hash: bytes  # the state root after executing this block


@dataclass(frozen=True, slots=True)
class Output:
    send: tuple[tuple[int | None, bytes], ...] = ()  # (destination, data); None: broadcast
    committed: tuple[CommittedBlock, ...] = ()


# category: how a client should read the outcome (the API maps it to an HTTP status)
ACCEPTED, MALFORMED, BAD_SIGNATURE, DUPLICATE, REJECTED, FULL = (
    "accepted", "malformed", "bad_signature", "duplicate", "rejected", "full")
# the category of each refusal by the mempool or the store, before the application's checks
POOL_REFUSALS = {"duplicate": DUPLICATE, "nonce_taken": DUPLICATE,
                 "already_committed": DUPLICATE, "nonce_too_high": REJECTED,
                 "sender_quota": FULL, "mempool_full": FULL}


@dataclass(frozen=True, slots=True)
class SubmitResult:
    ok: bool
    code: str  # "ok" or a reason code
    category: str
    tx_id: bytes | None = None
    message: str = ""


class NodeCore:
    def __init__(self, genesis: Genesis, replica_id: int, key: KeyPair, store: Store,
                 app: Application | None = None, params: NodeParams = NodeParams(),
                 signer: Signer | None = None) -> None:
        validators = genesis.validator_keys
        if not 0 <= replica_id < len(validators):
            raise ValueError(f"replica {replica_id} is not a validator")
        if validators[replica_id] != key.public_key:
            raise ValueError(f"the key is not validator {replica_id}'s key in genesis")
        self.genesis = genesis
        self.id = replica_id
        self.key = key
        self.store = store
        self.params = params
        self.consensus_params = genesis.consensus
        self.signer = signer if signer is not None else Ed25519Signer(genesis.chain_id, key, validators)
        self.app = app if app is not None else make_application(genesis, store,
                                                                verify_signatures=False)
        self.mempool = Mempool(params.mempool_max_txs, params.mempool_max_bytes,
                               params.mempool_max_txs_per_sender, params.mempool_max_nonce_ahead)
        self.replica: Replica | None = None
        self.app_hash = b""
        self.last_block_hash = genesis.genesis_hash
        self.committed_height = 0  # executed and stored (one batch each)
        self.now_ms = 0
        self.ticks = 0
        self.stats: dict[str, int] = {}
        self._last_primary = -1
        self.soft_state: SoftState | None = None  # the replica's view, primary and mode
        self._proposed_count = 0  # blocks this node proposed (from Ready.proposed)
        self._idle_offer: tuple[int, ...] | None = None
        self._send: list[tuple[int | None, bytes]] = []
        self._committed: list[CommittedBlock] = []

    # --- entry points ------------------------------------------------------------------------

    def start(self, now_ms: int) -> Output:
        """Restore from the store and the WAL, then take the first tick."""
        assert self.replica is None, "start() is called once"
        self.now_ms = now_ms
        genesis_app_hash = self._init_genesis_state()
        tip = self._committed_tip(genesis_app_hash)
        self.app_hash = genesis_app_hash if tip.height == 0 else tip.executed[-1][1]
        current = self.app.commit()
        assert current == self.app_hash, "the application state does not match the store"
        self.last_block_hash = tip.block_hash
        self.committed_height = tip.height
        self.replica = Replica(
            self.genesis.chain_id, self.id, self.genesis.validator_keys, self.signer,
            self.consensus_params, self.genesis.genesis_hash, self.genesis.genesis_time_ms,
            genesis_app_hash, EMPTY_ROOT, restored=list(self.store.iterate_wal()), tip=tip)
        self._last_primary = self.replica.primary
        self.soft_state = self.replica.soft_state
        return self._run(Tick(now_ms, self.mempool.ready_count))

    def on_tick(self, now_ms: int) -> Output:
        self.now_ms = now_ms
        self.ticks += 1
        out_start = self._begin()
        self._step(Tick(now_ms, self.mempool.ready_count))
        self._forward_waiting()
        self._offer_proposals()
        return self._finish(out_start)

    def on_message(self, sender: int, data: bytes) -> Output:
        return self._run(Receive(sender, data))

    def submit_tx(self, raw: bytes, now_ms: int) -> tuple[SubmitResult, Output]:
        """Admit a client's transaction (raw canonical bytes) to the mempool."""
        self.now_ms = now_ms
        out_start = self._begin()
        result, tx = self._admit(raw, forward=True)
        if tx is not None:
            self._step(TxsVerified((result.tx_id,)))  # type: ignore[arg-type]
            self._offer_proposals()
        return result, self._finish(out_start)

    def status(self) -> dict:
        replica = self._replica
        stats = dict(self.stats)
        for name, value in replica.stats.items():
            stats["consensus." + name] = value
        return {
            "node_id": self.id,
            "chain_id": self.genesis.chain_id,
            "height": replica.committed_height,
            "executed_height": replica.executed_height,
            "view": replica.view,
            "primary": replica.primary,
            "view_changing": replica.view_changing,
            "stable_checkpoint": replica.stable.height,
            "syncing": replica.status()["syncing"],
            "mempool_txs": len(self.mempool),
            "mempool_bytes": self.mempool.total_bytes,
            "last_block_hash": self.last_block_hash.hex(),
            "app_hash": self.app_hash.hex(),
            "stats": stats,
        }

    def mempool_contains(self, tx_id: bytes) -> bool:
        return tx_id in self.mempool

    # --- the event loop of one entry point ------------------------------------------------

    @property
    def _replica(self) -> Replica:
        assert self.replica is not None, "start() first"
        return self.replica

    def _begin(self) -> int:
        self._send = []
        self._committed = []
        return 0

    def _finish(self, _: int) -> Output:
        out = Output(tuple(self._send), tuple(self._committed))
        self._send = []
        self._committed = []
        return out

    def _run(self, event: object) -> Output:
        start = self._begin()
        self._step(event)
        self._offer_proposals()
        return self._finish(start)

    def record_store_corrupt(self) -> None:
        """Damaged bytes were found outside NodeCore (a client read): counted like its own."""
        self._count("store_corrupt")

    def store_corrupt(self) -> bool:
        return self.stats.get("store_corrupt", 0) > 0

    def _count(self, name: str, amount: int = 1) -> None:
        self.stats[name] = self.stats.get(name, 0) + amount

    def _step(self, event: object) -> None:
        """Step the replica and carry out everything its Ready asks, and what that causes."""
        queue = [self._replica.step(event)]
        while queue:
            ready = queue.pop(0)
            if ready.soft is not None:
                self._on_soft_state(ready.soft)
            self._proposed_count += len(ready.proposed)
            queue.extend(self._apply(ready))

    def _on_soft_state(self, soft: SoftState) -> None:
        self.soft_state = soft
        if soft.primary != self._last_primary:
            # Forwarded transactions went to the old primary: offer them to the new one.
            self._last_primary = soft.primary
            self.mempool.mark_all_unforwarded()

    def _apply(self, ready: Ready) -> list[Ready]:
        follow: list[Ready] = []
        persist = list(ready.persist)
        if persist and not ready.commit:
            with self.store.batch() as batch:
                self._write_wal(batch, persist)
            persist = []
        for index, (block, cert) in enumerate(ready.commit):
            # The WAL records ride in the first block's batch: one synced write, not two.
            follow.append(self._execute(block, cert, persist if index == 0 else []))
        self._send.extend(ready.send)
        for request in ready.serve:
            self._serve(request)
        verified = []
        for sender, tx in ready.txs:
            result, admitted = self._admit_tx(tx, forward=False)
            if admitted is not None:
                verified.append(result.tx_id)
            else:
                self._count("forwarded_refused." + result.code)
        if verified:
            follow.append(self._replica.step(TxsVerified(tuple(verified))))  # type: ignore[arg-type]
        return follow

    @staticmethod
    def _write_wal(batch, records) -> None:
        for key, value in records:
            if value is None:
                batch.delete_wal(key)
            else:
                batch.put_wal(key, value)

    # --- execution ---------------------------------------------------------------------------

    def _execute(self, block: Block, cert: CommitCertificate,
                 wal_records: list[tuple[bytes, bytes | None]]) -> Ready:
        height = block.height
        receipts = self.app.execute_block(block.header, block.txs)
        assert len(receipts) == len(block.txs), "one receipt per transaction"
        app_hash = self.app.commit()
        writes = self.app.take_writes()
        receipts_root = results_hash(receipts)
        with self.store.batch() as batch:
            self._write_wal(batch, wal_records)
            batch.put_block(block)
            batch.put_certificate(cert)
            batch.put_receipts(height, receipts)
            for key, value in writes:
                if value is None:
                    batch.delete_state(key)
                else:
                    batch.put_state(key, value)
            batch.put_meta(executed_meta_name(height), codec.encode([app_hash, receipts_root]))
        self.app_hash = app_hash
        self.last_block_hash = cert.block_hash
        self.committed_height = height
        tx_ids = tuple(tx.tx_id for tx in block.txs)
        self.mempool.remove(tx_ids)
        self._recheck({tx.sender: None for tx in block.txs})
        self._committed.append(CommittedBlock(height, cert.block_hash, tx_ids, app_hash))
        self._count("executed_blocks")
        self._count("executed_txs", len(tx_ids))
        return self._replica.step(Executed(height, app_hash, receipts_root))

    def _committed_next_nonce(self, sender: bytes) -> int:
        """The sender's next nonce in the committed state: both applications answer
        ``nonce/<sender hex>`` (the plan with ``{"next_nonce": n}``, kv with ``n``)."""
        value, _ = self.app.query(f"nonce/{sender.hex()}")
        nonce = value["next_nonce"] if isinstance(value, dict) else value
        assert type(nonce) is int and nonce >= 0, f"bad nonce answer {value!r}"
        return nonce

    def _recheck(self, senders: dict[bytes, None]) -> None:
        """Move the senders' next nonces on and drop waiting transactions that the new state
        made invalid (spent nonces, a signer no longer authorised, ...)."""
        spent = self.mempool.set_next_nonces({
            sender: self._committed_next_nonce(sender) for sender in senders
            if self.mempool.next_nonce(sender) is not None})
        stale = [tx.tx_id for tx in self.mempool.of_senders(senders) if not self.app.check_tx(tx).ok]
        self.mempool.remove(stale)
        if spent or stale:
            self._count("mempool_rechecked_out", spent + len(stale))

    # --- genesis and restart -----------------------------------------------------------------

    def _init_genesis_state(self) -> bytes:
        stored = self.store.get_meta(GENESIS_APP_HASH_META)
        if stored is not None:
            return stored
        assert self.store.latest_height() == 0, "a store with blocks but no genesis state"
        app_hash = self.app.commit()
        with self.store.batch() as batch:
            for key, value in self.app.take_writes():
                if value is None:
                    batch.delete_state(key)
                else:
                    batch.put_state(key, value)
            batch.put_meta(GENESIS_APP_HASH_META, app_hash)
        return app_hash

    def _committed_tip(self, genesis_app_hash: bytes) -> CommittedTip:
        height = self.store.latest_height()
        depth = self.consensus_params.pipeline_depth
        if height == 0:
            return CommittedTip(0, self.genesis.genesis_hash, self.genesis.genesis_time_ms, None,
                                ((0, genesis_app_hash, EMPTY_ROOT),))
        block = self.store.get_block(height)
        cert = self.store.get_certificate(height)
        assert block is not None and cert is not None, f"block {height} is stored incompletely"
        executed = []
        last_nonempty = 0
        for past in range(max(1, height - depth + 1), height + 1):
            raw = self.store.get_meta(executed_meta_name(past))
            assert raw is not None, f"no execution record for block {past}"
            app_hash, receipts_root = codec.decode(raw)
            executed.append((past, app_hash, receipts_root))
            stored = self.store.get_block(past)
            if stored is not None and stored.txs:
                last_nonempty = past
        return CommittedTip(height, cert.block_hash, block.header.timestamp_ms, cert,
                            tuple(executed), last_nonempty)

    # --- serving peers -----------------------------------------------------------------------

    def _serve(self, request: ServeBlocks) -> None:
        limit = self.consensus_params.max_message_bytes - RESPONSE_OVERHEAD_BYTES
        entries = []
        size_bytes = 0
        for height in range(request.from_height, request.from_height + request.max_blocks):
            try:
                served = self.store.get_served_block(height)
            except StoreError as exc:
                if exc.code != "corrupt":
                    raise
                # A damaged block is never passed on: the peer gets what precedes it.
                self._count("store_corrupt")
                break
            if served is None:
                break
            raw, block, cert = served
            size_bytes += len(raw) + len(cert.encode())
            if size_bytes > limit and entries:
                break
            entries.append((block, cert))
        self._count("served_blocks", len(entries))
        self._send.append((request.replica, encode_message(BlockResponse(self.id, tuple(entries)))))

    # --- transactions ------------------------------------------------------------------------

    def _admit(self, raw: bytes, forward: bool) -> tuple[SubmitResult, Transaction | None]:
        if not isinstance(raw, (bytes, bytearray)) or len(raw) > MAX_TX_BYTES:
            return SubmitResult(False, "too_large", MALFORMED, None,
                                f"a transaction is at most {MAX_TX_BYTES} bytes"), None
        try:
            tx = Transaction.decode(bytes(raw))
        except HuzhuError as exc:
            return SubmitResult(False, exc.code, MALFORMED, None, exc.message), None
        return self._admit_tx(tx, forward)

    def _admit_tx(self, tx: Transaction, forward: bool) -> tuple[SubmitResult, Transaction | None]:
        encoded = tx.encode()
        tx_id = tx.tx_id
        if len(encoded) > MAX_TX_BYTES:
            return SubmitResult(False, "too_large", MALFORMED, tx_id), None
        if tx.chain_id != self.genesis.chain_id:
            return SubmitResult(False, "wrong_chain", MALFORMED, tx_id,
                                f"transaction for chain {tx.chain_id!r}"), None
        next_nonce = self.mempool.next_nonce(tx.sender)
        if next_nonce is None:
            next_nonce = self._committed_next_nonce(tx.sender)
        reason = self.mempool.precheck(tx, tx_id, len(encoded), next_nonce)
        if reason is None and self.store.get_tx_location(tx_id) is not None:
            reason = "already_committed"
        if reason is not None:
            return SubmitResult(False, reason, POOL_REFUSALS[reason], tx_id), None
        if not self.signer.verify_transaction(tx):
            return SubmitResult(False, "bad_signature", BAD_SIGNATURE, tx_id,
                                "the transaction signature does not verify"), None
        check = self.app.check_tx(tx)
        if not check.ok:
            return SubmitResult(False, check.code, REJECTED, tx_id, check.message), None
        replica = self._replica
        forward_now = forward and not replica.is_primary
        # Counted as forwarded now: passed to the primary, received from a peer (which passed
        # it on itself), or held by the primary; it is sent again only if it keeps waiting.
        added = self.mempool.add(tx, tx_id, len(encoded), self.ticks, next_nonce)
        assert added == "ok"
        if forward_now:
            # At once, held transactions too: the primary's mempool puts each sender's in
            # nonce order, and a transaction waiting here for its predecessor would otherwise
            # only reach the primary after the re-forward interval.
            self._send.append((replica.primary, encode_message(TxForward(self.id, (tx,)))))
        self._count("admitted_txs")
        return SubmitResult(True, "ok", ACCEPTED, tx_id), tx

    def _forward_waiting(self) -> None:
        replica = self._replica
        if not len(self.mempool):
            return
        interval = self.params.reforward_ticks
        if interval is None:
            interval = max(1, self.consensus_params.view_change_timeout_ticks // 2)
        due = self.mempool.due_for_forwarding(self.ticks, interval,
                                              min(self.params.max_reforward_txs_per_tick,
                                                  self.consensus_params.max_forward_txs),
                                              skip=self._not_due)
        # After a change of primary the new one gets what it may not have. A transaction that
        # kept waiting goes to every replica, as a PBFT client retransmits: if the primary is
        # dead, the others then wait on it too, time out together and change view (one
        # replica timing out alone cannot, it takes f + 1).
        to_primary = tuple(tx for tx, previous in due if previous < 0)
        to_all = tuple(tx for tx, previous in due if previous >= 0)
        if to_primary and not replica.is_primary and not replica.view_changing:
            self._count("reforwarded_txs", len(to_primary))
            self._send.append((replica.primary, encode_message(TxForward(self.id, to_primary))))
        if to_all:
            self._count("rebroadcast_txs", len(to_all))
            self._send.append((BROADCAST, encode_message(TxForward(self.id, to_all))))

    def _not_due(self, tx_id: bytes) -> bool:
        """Not sent again: in an accepted block, or held for a missing earlier nonce (nobody
        can do anything with it yet; it is sent when it becomes ready and stays waiting)."""
        return self._replica.is_inflight(tx_id) or not self.mempool.is_ready(tx_id)

    def _offer_proposals(self) -> None:
        """Give the primary the oldest waiting transactions while it wants to propose."""
        replica = self._replica
        params = self.consensus_params
        while replica.wants_proposal:
            # Nothing new since the last offer that produced no block: do not offer again.
            # One more waiting transaction is nothing new until it could fill a block: the
            # batch delay runs in ticks, and offering on every admission would scan up to a
            # block of the mempool per transaction (quadratic under load).
            waiting = self.mempool.ready_count - replica.inflight_tx_count
            fills_block = (waiting >= params.max_block_txs
                           or self.mempool.total_bytes >= params.max_block_bytes)
            situation = (self.ticks, waiting > 0, fills_block, replica.committed_height,
                         replica.executed_height, replica.view)
            if situation == self._idle_offer:
                return
            event = Propose(())
            if waiting > 0:
                entries = self.mempool.select_entries(params.max_block_txs, params.max_block_bytes,
                                                      skip=self._not_due)
                event = Propose(tuple(entry.tx for entry in entries),
                                tuple(entry.tx_id for entry in entries),
                                tuple(entry.size_bytes for entry in entries))
            before = self._proposed_count
            self._step(event)
            if self._proposed_count == before:
                self._idle_offer = situation
                return  # waiting to fill the batch, or nothing to propose


__all__ = ["BROADCAST", "CommittedBlock", "NodeCore", "NodeParams", "Output", "SubmitResult"]
