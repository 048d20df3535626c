"""What goes into a replica (events) and what comes out of one step (``Ready``).

``ready = replica.step(event)`` is the only way in. The caller then, in this order:
  1. durably writes ``ready.persist`` (WAL records; value None deletes the record),
  2. executes and stores ``ready.commit`` (certified blocks, in height order) and steps
     ``Executed`` for each,
  3. answers ``ready.serve`` (block requests) from its store and admits ``ready.txs``
     (transactions forwarded by peers) to its mempool,
  4. sends ``ready.send``.
Persisting before sending is what makes the replica's own votes crash-safe: a vote leaves
the node only once the record that forbids a different vote for the same slot is on disk.
"""

from __future__ import annotations

from dataclasses import dataclass

from ledger.types import Block, CommitCertificate, Transaction

BROADCAST = None  # destination meaning "every other replica"


@dataclass(frozen=True, slots=True)
class Tick:
    """Time passes by one tick. ``now_ms`` is the runtime's clock (block timestamps and the
    clock-skew check); ``waiting_txs`` is how many admitted transactions the node holds that
    are not committed yet (pending work that arms the view-change timer)."""

    now_ms: int
    waiting_txs: int = 0


@dataclass(frozen=True, slots=True)
class Receive:
    """Raw bytes from peer ``sender`` (the transport authenticates who sent them)."""

    sender: int
    data: bytes


@dataclass(frozen=True, slots=True)
class Propose:
    """Transactions available for the next block, oldest first (only the primary uses them;
    see ``Replica.wants_proposal``). The node may pass each one's id and encoded size (it
    has them from admission), sparing the replica from encoding them again."""

    txs: tuple[Transaction, ...]
    tx_ids: tuple[bytes, ...] = ()
    sizes: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Executed:
    """The node executed committed block ``height``: the state and receipts roots after it."""

    height: int
    app_hash: bytes
    results_hash: bytes


@dataclass(frozen=True, slots=True)
class TxsVerified:
    """The node already checked these transactions' signatures (mempool admission)."""

    tx_ids: tuple[bytes, ...]


Event = Tick | Receive | Propose | Executed | TxsVerified


@dataclass(frozen=True, slots=True)
class ServeBlocks:
    """Peer ``replica`` asks for up to ``max_blocks`` certified blocks from ``from_height``."""

    replica: int
    from_height: int
    max_blocks: int


@dataclass(frozen=True, slots=True)
class Ready:
    persist: tuple[tuple[bytes, bytes | None], ...] = ()
    send: tuple[tuple[int | None, bytes], ...] = ()
    commit: tuple[tuple[Block, CommitCertificate], ...] = ()
    serve: tuple[ServeBlocks, ...] = ()
    txs: tuple[tuple[int, Transaction], ...] = ()  # (forwarding peer, transaction)

    def __bool__(self) -> bool:
        return bool(self.persist or self.send or self.commit or self.serve or self.txs)


@dataclass(frozen=True, slots=True)
class CommittedTip:
    """What the node's store says about the committed chain, given to a restarting replica.

    ``executed`` holds (height, app_hash, results_hash) for the last ``pipeline_depth``
    executed heights (fewer near genesis), oldest first; the store's executed height equals
    its committed height because a node executes and stores a block in one batch.
    """

    height: int
    block_hash: bytes
    timestamp_ms: int
    certificate: CommitCertificate | None
    executed: tuple[tuple[int, bytes, bytes], ...]
    last_nonempty_height: int = 0
