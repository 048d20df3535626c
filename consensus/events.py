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


MODE_NORMAL = "normal"  # the view is active: its primary proposes, backups prepare
MODE_VIEW_CHANGE = "view_change"  # waiting for this view's NEW-VIEW


@dataclass(frozen=True, slots=True)
class SoftState:
    """What the replica's role is now; not persisted (a restart recomputes it)."""

    view: int
    primary: int
    mode: str  # MODE_NORMAL or MODE_VIEW_CHANGE


@dataclass(frozen=True, slots=True)
class Ready:
    """What one step asks of the node: persist ``persist`` (synced) before sending ``send``;
    execute ``commit`` in order; answer ``serve``; admit ``txs``. ``soft`` is set when the
    view, primary or mode changed in this step (None: unchanged), ``proposed`` names the
    heights this replica proposed in it, so the node need not poll the replica for either."""

    persist: tuple[tuple[bytes, bytes | None], ...] = ()
    send: tuple[tuple[int | None, bytes], ...] = ()
    commit: tuple[tuple[Block, CommitCertificate], ...] = ()
    serve: tuple[ServeBlocks, ...] = ()
    txs: tuple[tuple[int, Transaction], ...] = ()  # (forwarding peer, transaction)
    soft: SoftState | None = None
    proposed: tuple[int, ...] = ()

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
