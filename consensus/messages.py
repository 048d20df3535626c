"""PBFT wire messages: frozen dataclasses, one canonical encoding each, strict decoding.

Every message is a canonical msgpack map with a ``type`` tag and a ``replica`` field naming
its sender. ``decode_message`` checks every field (exact key set, types, sizes, bounds) and
raises ``DecodeError`` with a reason code on anything else; semantic checks (signatures,
views, heights, quorums) are the replica's job.

Signed messages carry an Ed25519 signature over ``signing_payload()`` in their own domain
(``ledger.keys``), so a prepare can never pass for a commit. A ``Commit`` signs exactly
``ledger.types.commit_vote_payload`` in domain ``commit``: 2f+1 commits for one block are a
``CommitCertificate`` as they are. A pre-prepare signs only (view, height, block hash) in
domain ``preprepare``; the block's contents are bound to that hash through ``tx_root``.

Block-sync messages (``BlockRequest``/``BlockResponse``) and ``TxForward`` are not signed:
certified blocks and signed transactions speak for themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Union

from ledger import codec, keys
from ledger.errors import DecodeError, RemoteError
from ledger.hashing import HASH_BYTES
from ledger.types import (
    COMMIT_DOMAIN,
    MAX_BLOCK_TXS,
    MAX_HEIGHT,
    MAX_REPLICAS,
    Block,
    CommitCertificate,
    Transaction,
    commit_vote_payload,
)

# Signature domains, one per kind of signed statement.
PREPREPARE_DOMAIN = "preprepare"
PREPARE_DOMAIN = "prepare"
CHECKPOINT_DOMAIN = "checkpoint"
VIEW_CHANGE_DOMAIN = "viewchange"
NEW_VIEW_DOMAIN = "newview"

MAX_LIST_ITEMS = 4096  # structural bound on any list in a message; the replica checks tighter ones
MAX_VIEW = MAX_HEIGHT


# --- field checks ----------------------------------------------------------------------------

def _map(value: Any, names: tuple[str, ...], what: str) -> dict:
    if not isinstance(value, dict):
        raise DecodeError("malformed", f"{what} is not a map")
    if len(value) != len(names) or any(name not in value for name in names):
        raise DecodeError("malformed", f"{what} has the wrong fields")
    return value


def _int(value: Any, low: int, high: int, what: str) -> int:
    if type(value) is not int or not low <= value <= high:
        raise DecodeError("malformed", f"{what} must be an integer in [{low}, {high}]")
    return value


def _bytes(value: Any, size: int, what: str) -> bytes:
    if not isinstance(value, bytes) or len(value) != size:
        raise DecodeError("malformed", f"{what} must be {size} bytes")
    return value


def _list(value: Any, max_items: int, what: str) -> list:
    if not isinstance(value, list) or len(value) > max_items:
        raise DecodeError("malformed", f"{what} must be a list of at most {max_items} items")
    return value


def _replica(value: Any, what: str = "replica") -> int:
    return _int(value, 0, MAX_REPLICAS - 1, what)


def _view(value: Any, what: str = "view") -> int:
    return _int(value, 0, MAX_VIEW, what)


def _height(value: Any, what: str = "height") -> int:
    return _int(value, 0, MAX_HEIGHT, what)


def _hash(value: Any, what: str) -> bytes:
    return _bytes(value, HASH_BYTES, what)


def _signature(value: Any, what: str = "signature") -> bytes:
    return _bytes(value, keys.SIGNATURE_BYTES, what)


def _signature_pairs(value: Any, what: str) -> tuple[tuple[int, bytes], ...]:
    entries = _list(value, MAX_REPLICAS, what)
    pairs = []
    for entry in entries:
        if not isinstance(entry, list) or len(entry) != 2:
            raise DecodeError("malformed", f"each of {what} is [replica, signature]")
        pairs.append((_replica(entry[0]), _signature(entry[1])))
    ids = [replica for replica, _ in pairs]
    if any(later <= earlier for earlier, later in zip(ids, ids[1:])):
        # One order, so that one set of signatures has exactly one encoding.
        raise DecodeError("unsorted_signers", f"{what} must be in ascending replica order")
    return tuple(pairs)


def _block(value: Any) -> Block:
    try:
        return Block.from_plain(value)
    except RemoteError as exc:
        raise DecodeError("bad_block", exc.message) from None


def _certificate(value: Any) -> CommitCertificate:
    try:
        return CommitCertificate.from_plain(value)
    except RemoteError as exc:
        raise DecodeError("bad_certificate", exc.message) from None


def _pairs_plain(pairs: tuple[tuple[int, bytes], ...]) -> list:
    return [[replica, signature] for replica, signature in pairs]


def preprepare_payload(view: int, height: int, block_hash: bytes) -> dict:
    """What a primary signs (domain ``preprepare``) when it proposes ``block_hash``."""
    return {"block_hash": block_hash, "height": height, "view": view}


def prepare_payload(view: int, height: int, block_hash: bytes) -> dict:
    """What a backup signs (domain ``prepare``) when it accepts a pre-prepare."""
    return {"block_hash": block_hash, "height": height, "view": view}


def checkpoint_payload(height: int, block_hash: bytes, state_root: bytes) -> dict:
    """What a replica signs (domain ``checkpoint``) after executing block ``height``: the
    block's hash and the state root after it. The hash makes a stable checkpoint a full
    anchor for a new view (its O set must extend exactly that block)."""
    return {"block_hash": block_hash, "height": height, "state_root": state_root}


# --- normal case -----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class PrePrepare:
    TYPE: ClassVar[str] = "preprepare"
    view: int
    height: int
    replica: int
    block: Block
    signature: bytes

    def signing_payload(self, block_hash: bytes | None = None) -> dict:
        return preprepare_payload(self.view, self.height,
                                  block_hash if block_hash is not None else self.block.block_hash)

    def to_plain(self) -> dict:
        return {"type": self.TYPE, "view": self.view, "height": self.height,
                "replica": self.replica, "block": self.block.to_plain(),
                "signature": self.signature}

    @classmethod
    def from_plain(cls, plain: dict) -> PrePrepare:
        _map(plain, ("type", "view", "height", "replica", "block", "signature"), cls.TYPE)
        return cls(_view(plain["view"]), _height(plain["height"]), _replica(plain["replica"]),
                   _block(plain["block"]), _signature(plain["signature"]))


class _Vote:
    """The wire form shared by PREPARE and COMMIT: (view, height, replica, block_hash,
    signature); the classes differ in their type tag and signing domain."""

    __slots__ = ()
    TYPE: ClassVar[str]

    def to_plain(self) -> dict:
        return {"type": self.TYPE, "view": self.view, "height": self.height,
                "replica": self.replica, "block_hash": self.block_hash,
                "signature": self.signature}

    @classmethod
    def from_plain(cls, plain: dict) -> Any:
        _map(plain, ("type", "view", "height", "replica", "block_hash", "signature"), cls.TYPE)
        return cls(_view(plain["view"]), _height(plain["height"]),
                   _replica(plain["replica"]), _hash(plain["block_hash"], "block_hash"),
                   _signature(plain["signature"]))


@dataclass(frozen=True, slots=True)
class Prepare(_Vote):
    TYPE: ClassVar[str] = "prepare"
    view: int
    height: int
    replica: int
    block_hash: bytes
    signature: bytes

    def signing_payload(self) -> dict:
        return prepare_payload(self.view, self.height, self.block_hash)


@dataclass(frozen=True, slots=True)
class Commit(_Vote):
    """A commit vote; its signature is a ``CommitCertificate`` signature as it stands."""

    TYPE: ClassVar[str] = "commit"
    view: int
    height: int
    replica: int
    block_hash: bytes
    signature: bytes

    def signing_payload(self) -> dict:
        return commit_vote_payload(self.view, self.height, self.block_hash)


# --- checkpoints -----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Checkpoint:
    TYPE: ClassVar[str] = "checkpoint"
    height: int
    block_hash: bytes  # the committed block at ``height``
    state_root: bytes  # the app_hash after executing ``height``
    replica: int
    signature: bytes

    def signing_payload(self) -> dict:
        return checkpoint_payload(self.height, self.block_hash, self.state_root)

    def to_plain(self) -> dict:
        return {"type": self.TYPE, "height": self.height, "block_hash": self.block_hash,
                "state_root": self.state_root, "replica": self.replica,
                "signature": self.signature}

    @classmethod
    def from_plain(cls, plain: dict) -> Checkpoint:
        _map(plain, ("type", "height", "block_hash", "state_root", "replica", "signature"),
             cls.TYPE)
        return cls(_height(plain["height"]), _hash(plain["block_hash"], "block_hash"),
                   _hash(plain["state_root"], "state_root"), _replica(plain["replica"]),
                   _signature(plain["signature"]))


@dataclass(frozen=True, slots=True)
class CheckpointProof:
    """2f+1 checkpoint signatures over (height, block_hash, state_root); height 0 (genesis:
    the genesis hash and state) needs none."""

    height: int
    block_hash: bytes
    state_root: bytes
    signatures: tuple[tuple[int, bytes], ...]

    def to_plain(self) -> dict:
        return {"height": self.height, "block_hash": self.block_hash,
                "state_root": self.state_root, "signatures": _pairs_plain(self.signatures)}

    @classmethod
    def from_plain(cls, value: Any) -> CheckpointProof:
        plain = _map(value, ("height", "block_hash", "state_root", "signatures"),
                     "checkpoint proof")
        return cls(_height(plain["height"]), _hash(plain["block_hash"], "block_hash"),
                   _hash(plain["state_root"], "state_root"),
                   _signature_pairs(plain["signatures"], "checkpoint signatures"))


# --- view change -----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class PreparedCertificate:
    """Proof that ``block_hash`` prepared at (view, height): the primary's pre-prepare
    signature and 2f prepare signatures of distinct backups."""

    view: int
    height: int
    block_hash: bytes
    preprepare_signature: bytes
    prepares: tuple[tuple[int, bytes], ...]

    def to_plain(self) -> dict:
        return {"view": self.view, "height": self.height, "block_hash": self.block_hash,
                "preprepare_signature": self.preprepare_signature,
                "prepares": _pairs_plain(self.prepares)}

    @classmethod
    def from_plain(cls, value: Any) -> PreparedCertificate:
        plain = _map(value, ("view", "height", "block_hash", "preprepare_signature", "prepares"),
                     "prepared certificate")
        return cls(_view(plain["view"]), _height(plain["height"]),
                   _hash(plain["block_hash"], "block_hash"),
                   _signature(plain["preprepare_signature"], "preprepare_signature"),
                   _signature_pairs(plain["prepares"], "prepares"))


@dataclass(frozen=True, slots=True)
class ViewChange:
    """VIEW-CHANGE to ``new_view``: the sender's stable checkpoint, the highest commit
    certificate it knows (None at genesis), and every prepared certificate it holds above
    the higher of the two. ``blocks`` carries the block of each prepared certificate, in the same
    order; it is not signed (each block is bound by its hash in the signed certificate)."""

    TYPE: ClassVar[str] = "view_change"
    new_view: int
    replica: int
    checkpoint: CheckpointProof
    committed: CommitCertificate | None
    prepared: tuple[PreparedCertificate, ...]
    signature: bytes
    blocks: tuple[Block, ...] = ()

    def signing_payload(self) -> dict:
        return {"new_view": self.new_view, "checkpoint": self.checkpoint.to_plain(),
                "committed": None if self.committed is None else self.committed.to_plain(),
                "prepared": [cert.to_plain() for cert in self.prepared]}

    def to_plain(self, with_blocks: bool = True) -> dict:
        plain = self.signing_payload()
        plain["type"] = self.TYPE
        plain["replica"] = self.replica
        plain["signature"] = self.signature
        if with_blocks:
            plain["blocks"] = [block.to_plain() for block in self.blocks]
        return plain

    def without_blocks(self) -> ViewChange:
        return ViewChange(self.new_view, self.replica, self.checkpoint, self.committed,
                          self.prepared, self.signature, ())

    @classmethod
    def from_plain(cls, plain: dict, with_blocks: bool = True) -> ViewChange:
        names = ("type", "new_view", "replica", "checkpoint", "committed", "prepared",
                 "signature") + (("blocks",) if with_blocks else ())
        _map(plain, names, cls.TYPE)
        if plain["type"] != cls.TYPE:
            raise DecodeError("malformed", "not a view change")
        committed = plain["committed"]
        prepared = tuple(PreparedCertificate.from_plain(item)
                         for item in _list(plain["prepared"], MAX_LIST_ITEMS, "prepared"))
        blocks: tuple[Block, ...] = ()
        if with_blocks:
            blocks = tuple(_block(item) for item in _list(plain["blocks"], MAX_LIST_ITEMS, "blocks"))
            if len(blocks) != len(prepared):
                raise DecodeError("malformed", "a view change carries one block per certificate")
        return cls(_view(plain["new_view"], "new_view"), _replica(plain["replica"]),
                   CheckpointProof.from_plain(plain["checkpoint"]),
                   None if committed is None else _certificate(committed),
                   prepared, _signature(plain["signature"]), blocks)


@dataclass(frozen=True, slots=True)
class NewViewEntry:
    """One re-issued pre-prepare of the new view's O set, signed by the new primary."""

    height: int
    block_hash: bytes
    signature: bytes  # domain ``preprepare`` over (new_view, height, block_hash)

    def to_plain(self) -> list:
        return [self.height, self.block_hash, self.signature]

    @classmethod
    def from_plain(cls, value: Any) -> NewViewEntry:
        if not isinstance(value, list) or len(value) != 3:
            raise DecodeError("malformed", "a new-view entry is [height, block_hash, signature]")
        return cls(_height(value[0]), _hash(value[1], "block_hash"), _signature(value[2]))


@dataclass(frozen=True, slots=True)
class NewView:
    """NEW-VIEW: 2f+1 view changes (blocks stripped), the O set they determine, and the
    blocks of every candidate certificate above the anchor, in height order (unsigned, bound
    by hash): the O set's, plus the one that breaks the hash chain if the O set stops early."""

    TYPE: ClassVar[str] = "new_view"
    new_view: int
    replica: int
    view_changes: tuple[ViewChange, ...]
    preprepares: tuple[NewViewEntry, ...]
    signature: bytes
    blocks: tuple[Block, ...] = ()

    def signing_payload(self) -> dict:
        return {"new_view": self.new_view,
                "view_changes": [vc.to_plain(with_blocks=False) for vc in self.view_changes],
                "preprepares": [entry.to_plain() for entry in self.preprepares]}

    def to_plain(self) -> dict:
        plain = self.signing_payload()
        plain["type"] = self.TYPE
        plain["replica"] = self.replica
        plain["signature"] = self.signature
        plain["blocks"] = [block.to_plain() for block in self.blocks]
        return plain

    @classmethod
    def from_plain(cls, plain: dict) -> NewView:
        _map(plain, ("type", "new_view", "replica", "view_changes", "preprepares", "signature",
                     "blocks"), cls.TYPE)
        view_changes = []
        for item in _list(plain["view_changes"], MAX_REPLICAS, "view_changes"):
            if not isinstance(item, dict):
                raise DecodeError("malformed", "a view change is a map")
            view_changes.append(ViewChange.from_plain(item, with_blocks=False))
        preprepares = tuple(NewViewEntry.from_plain(item)
                            for item in _list(plain["preprepares"], MAX_LIST_ITEMS, "preprepares"))
        blocks = tuple(_block(item) for item in _list(plain["blocks"], MAX_LIST_ITEMS, "blocks"))
        if len(blocks) < len(preprepares):
            raise DecodeError("malformed", "a new view carries the block of every pre-prepare")
        return cls(_view(plain["new_view"], "new_view"), _replica(plain["replica"]),
                   tuple(view_changes), preprepares, _signature(plain["signature"]), blocks)


# --- block sync and transaction forwarding ---------------------------------------------------

@dataclass(frozen=True, slots=True)
class BlockRequest:
    TYPE: ClassVar[str] = "block_request"
    replica: int
    from_height: int
    max_blocks: int

    def to_plain(self) -> dict:
        return {"type": self.TYPE, "replica": self.replica, "from_height": self.from_height,
                "max_blocks": self.max_blocks}

    @classmethod
    def from_plain(cls, plain: dict) -> BlockRequest:
        _map(plain, ("type", "replica", "from_height", "max_blocks"), cls.TYPE)
        return cls(_replica(plain["replica"]), _int(plain["from_height"], 1, MAX_HEIGHT, "from_height"),
                   _int(plain["max_blocks"], 1, MAX_LIST_ITEMS, "max_blocks"))


@dataclass(frozen=True, slots=True)
class BlockResponse:
    """Consecutive certified blocks starting at the requested height (possibly none)."""

    TYPE: ClassVar[str] = "block_response"
    replica: int
    entries: tuple[tuple[Block, CommitCertificate], ...]

    def to_plain(self) -> dict:
        return {"type": self.TYPE, "replica": self.replica,
                "entries": [[block.to_plain(), cert.to_plain()] for block, cert in self.entries]}

    @classmethod
    def from_plain(cls, plain: dict) -> BlockResponse:
        _map(plain, ("type", "replica", "entries"), cls.TYPE)
        entries = []
        for item in _list(plain["entries"], MAX_LIST_ITEMS, "entries"):
            if not isinstance(item, list) or len(item) != 2:
                raise DecodeError("malformed", "an entry is [block, certificate]")
            entries.append((_block(item[0]), _certificate(item[1])))
        return cls(_replica(plain["replica"]), tuple(entries))


@dataclass(frozen=True, slots=True)
class TxForward:
    """Transactions a node admitted to its mempool, passed on to the primary."""

    TYPE: ClassVar[str] = "tx_forward"
    replica: int
    txs: tuple[Transaction, ...]

    def to_plain(self) -> dict:
        return {"type": self.TYPE, "replica": self.replica,
                "txs": [tx.to_plain() for tx in self.txs]}

    @classmethod
    def from_plain(cls, plain: dict) -> TxForward:
        _map(plain, ("type", "replica", "txs"), cls.TYPE)
        txs = []
        for item in _list(plain["txs"], MAX_BLOCK_TXS, "txs"):
            try:
                txs.append(Transaction.from_plain(item))
            except RemoteError as exc:
                raise DecodeError("bad_transaction", exc.message) from None
        return cls(_replica(plain["replica"]), tuple(txs))


Message = Union[PrePrepare, Prepare, Commit, Checkpoint, ViewChange, NewView, BlockRequest,
                BlockResponse, TxForward]

MESSAGE_TYPES: dict[str, Any] = {
    cls.TYPE: cls
    for cls in (PrePrepare, Prepare, Commit, Checkpoint, ViewChange, NewView, BlockRequest,
                BlockResponse, TxForward)
}

# The signature domain of each signed message type.
SIGNATURE_DOMAINS: dict[str, str] = {
    PrePrepare.TYPE: PREPREPARE_DOMAIN,
    Prepare.TYPE: PREPARE_DOMAIN,
    Commit.TYPE: COMMIT_DOMAIN,
    Checkpoint.TYPE: CHECKPOINT_DOMAIN,
    ViewChange.TYPE: VIEW_CHANGE_DOMAIN,
    NewView.TYPE: NEW_VIEW_DOMAIN,
}


def encode_message(message: Message) -> bytes:
    return codec.encode(message.to_plain())


def decode_message(data: bytes, max_bytes: int = codec.MAX_ENCODED_BYTES) -> Message:
    """Decode and structurally validate one message; ``DecodeError`` on anything wrong."""
    plain = codec.decode(data, max_bytes=max_bytes)
    if not isinstance(plain, dict):
        raise DecodeError("malformed", "a message is a map")
    cls = MESSAGE_TYPES.get(plain.get("type")) if isinstance(plain.get("type"), str) else None
    if cls is None:
        raise DecodeError("unknown_type", "unknown message type")
    return cls.from_plain(plain)

