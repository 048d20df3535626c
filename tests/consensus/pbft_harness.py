"""A tiny deterministic world for PBFT replicas: in-memory replicas, a FIFO router, a WAL per
replica, and a stand-in execution (app hash = H(previous app hash || block hash)).

Messages are delivered one at a time in the order they were sent, so every run is an exact,
repeatable transcript. Tests intercept traffic with ``drop`` (a predicate over
(source, destination, decoded message)), crash replicas (their messages are lost and they
stop stepping) and restart them from their WAL.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from consensus.events import BROADCAST, CommittedTip, Executed, Propose, Ready, Receive, Tick
from consensus.messages import decode_message
from consensus.params import ConsensusParams
from consensus.replica import Replica
from consensus.signer import Ed25519Signer
from ledger.hashing import sha256
from ledger.keys import KeyPair
from ledger.merkle import EMPTY_ROOT
from ledger.types import Block, CommitCertificate, Transaction

CHAIN_ID = "pbft-test"
GENESIS_HASH = sha256(b"pbft-test genesis")
GENESIS_TIME_MS = 1_700_000_000_000
APP_HASH0 = sha256(b"pbft-test state 0")
TICK_MS = 10

TEST_PARAMS = ConsensusParams(checkpoint_interval=4, watermark_window=16, batch_delay_ticks=0,
                              view_change_timeout_ticks=20, max_view_change_timeout_ticks=160,
                              catch_up_delay_ticks=3, catch_up_timeout_ticks=10)


def replica_keys(n: int) -> list[KeyPair]:
    return [KeyPair.from_seed(bytes([index + 1]) * 32) for index in range(n)]


CLIENT = KeyPair.from_seed(b"\x77" * 32)


def make_txs(start: int, count: int, chain_id: str = CHAIN_ID) -> tuple[Transaction, ...]:
    return tuple(Transaction.create(CLIENT, chain_id, nonce, "kv.set",
                                    {"key": f"k{nonce}", "value": b"v"})
                 for nonce in range(start, start + count))


@dataclass
class Node:
    index: int
    replica: Replica
    wal: dict[bytes, bytes] = field(default_factory=dict)
    chain: list[tuple[Block, CommitCertificate]] = field(default_factory=list)
    app_hashes: list[bytes] = field(default_factory=lambda: [APP_HASH0])
    crashed: bool = False


class Cluster:
    def __init__(self, n: int = 4, params: ConsensusParams = TEST_PARAMS) -> None:
        self.n = n
        self.params = params
        self.keys = replica_keys(n)
        self.validators = [key.public_key for key in self.keys]
        self.now_ms = GENESIS_TIME_MS
        self.queue: list[tuple[int, int, bytes]] = []
        self.transcript: list[tuple[int, int, str]] = []
        self.drop: Callable[[int, int, object], bool] | None = None
        self.nodes = [Node(index, self._new_replica(index)) for index in range(n)]
        self.served = 0

    def _new_replica(self, index: int, restored=None, tip=None) -> Replica:
        signer = Ed25519Signer(CHAIN_ID, self.keys[index], self.validators)
        return Replica(CHAIN_ID, index, self.validators, signer, self.params, GENESIS_HASH,
                       GENESIS_TIME_MS, APP_HASH0, EMPTY_ROOT, restored=restored, tip=tip)

    def replica(self, index: int) -> Replica:
        return self.nodes[index].replica

    # --- driving ---------------------------------------------------------------------------

    def step(self, index: int, event: object) -> Ready:
        node = self.nodes[index]
        assert not node.crashed
        ready = node.replica.step(event)
        self.apply(index, ready)
        return ready

    def apply(self, index: int, ready: Ready) -> None:
        """Carry out a Ready the way NodeCore does, then the replica's answers to the
        ``Executed`` events it caused, in order."""
        queue = [ready]
        while queue:
            queue.extend(self.apply_one(index, queue.pop(0)))

    def apply_one(self, index: int, ready: Ready) -> list[Ready]:
        """Persist, execute every committed block, serve block requests, send."""
        node = self.nodes[index]
        follow = []
        for key, value in ready.persist:  # persisted before anything is sent
            if value is None:
                node.wal.pop(key, None)
            else:
                node.wal[key] = value
        for block, cert in ready.commit:
            node.chain.append((block, cert))
            app_hash = sha256(node.app_hashes[-1] + block.block_hash)
            node.app_hashes.append(app_hash)
            follow.append(node.replica.step(Executed(block.height, app_hash, EMPTY_ROOT)))
        for request in ready.serve:
            self.served += 1
            self.serve(index, request)
        for destination, data in ready.send:
            targets = ([j for j in range(self.n) if j != index] if destination is BROADCAST
                       else [destination])
            for target in targets:
                self.queue.append((index, target, data))
        return follow

    def serve(self, index: int, request) -> None:
        """Answer a block request from this node's chain, as NodeCore does from its store."""
        from consensus.messages import BlockResponse, encode_message
        chain = self.nodes[index].chain
        entries = tuple(entry for entry in chain
                        if request.from_height <= entry[0].height < request.from_height + request.max_blocks)
        self.queue.append((index, request.replica,
                           encode_message(BlockResponse(index, entries))))

    def deliver_all(self, limit: int = 100_000) -> int:
        delivered = 0
        while self.queue and delivered < limit:
            source, target, data = self.queue.pop(0)
            message = decode_message(data)
            if self.nodes[source].crashed or self.nodes[target].crashed:
                continue
            if self.drop is not None and self.drop(source, target, message):
                continue
            self.transcript.append((source, target, message.TYPE))
            self.step(target, Receive(source, data))
            delivered += 1
        return delivered

    def tick(self, waiting_txs: int = 0, ticks: int = 1) -> None:
        for _ in range(ticks):
            self.now_ms += TICK_MS
            for node in self.nodes:
                if not node.crashed:
                    self.step(node.index, Tick(self.now_ms, waiting_txs))
            self.deliver_all()

    def propose(self, txs: tuple[Transaction, ...]) -> Ready:
        primary = self.replica(0).primary_of(self.max_view())
        return self.step(primary, Propose(txs))

    def max_view(self) -> int:
        return max(node.replica.view for node in self.nodes if not node.crashed)

    def start(self) -> None:
        for node in self.nodes:
            self.step(node.index, Tick(self.now_ms, 0))

    # --- faults ----------------------------------------------------------------------------

    def crash(self, index: int) -> None:
        self.nodes[index].crashed = True

    def restart(self, index: int) -> Replica:
        """A new replica from this node's WAL and its committed chain (as its store holds it)."""
        node = self.nodes[index]
        tip = None
        if node.chain:
            block, cert = node.chain[-1]
            height = block.height
            depth = self.params.pipeline_depth
            executed = tuple((h, node.app_hashes[h], EMPTY_ROOT)
                             for h in range(max(1, height - depth + 1), height + 1))
            nonempty = max((b.height for b, _ in node.chain[-depth:] if b.txs), default=0)
            tip = CommittedTip(height, cert.block_hash, block.header.timestamp_ms, cert, executed,
                               nonempty)
        node.replica = self._new_replica(index, restored=sorted(node.wal.items()), tip=tip)
        node.crashed = False
        self.step(index, Tick(self.now_ms, 0))
        return node.replica

    # --- checks ----------------------------------------------------------------------------

    def heights(self) -> list[int]:
        return [len(node.chain) for node in self.nodes]

    def assert_consistent(self) -> None:
        """Every pair of replicas agrees on every height both committed, and certificates
        verify against the validator set."""
        longest = max((node.chain for node in self.nodes), key=len)
        for node in self.nodes:
            for (block, cert), (other, _) in zip(node.chain, longest):
                assert block.block_hash == other.block_hash
                assert cert.block_hash == block.block_hash and cert.height == block.height
                cert.verify(CHAIN_ID, self.validators)
            for position, (block, _) in enumerate(node.chain):
                assert block.height == position + 1
                previous = GENESIS_HASH if position == 0 else node.chain[position - 1][0].block_hash
                assert block.header.prev_hash == previous

