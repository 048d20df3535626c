"""Chain types: Transaction, BlockHeader, Block, CommitCertificate, Receipt.

Each is a frozen, slotted dataclass with one canonical encoding (``encode``/``decode``),
strict field validation on decode (exact key set, exact types, bounds), and its hash or id.
Signatures are domain-separated (see ``ledger.keys``): transactions under ``tx``, commit votes
under ``commit``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ledger import codec, keys, merkle
from ledger.errors import DecodeError, InvalidBlock, InvalidCertificate, InvalidTransaction
from ledger.hashing import HASH_BYTES, sha256
from ledger.quorum import quorum_size

MAX_TX_BYTES = 64 * 1024
MAX_BLOCK_TXS = 10_000
MAX_BLOCK_BYTES = 8 * 1024 * 1024
MAX_CHAIN_ID_CHARS = 64
MAX_KIND_CHARS = 64
MAX_CODE_CHARS = 64
MAX_NONCE = 2**63 - 1
MAX_HEIGHT = 2**63 - 1
MAX_REPLICAS = 4096

TX_DOMAIN = "tx"
COMMIT_DOMAIN = "commit"

# Used with fullmatch: "$" alone would also accept a trailing newline.
_KIND_PATTERN = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*")
_CHAIN_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def _require_map(value: Any, fields: Sequence[str], error: type, what: str) -> dict:
    if not isinstance(value, dict):
        raise error("malformed", f"{what} is not a map")
    if set(value) != set(fields):
        missing = sorted(set(fields) - set(value))
        extra = sorted(set(value) - set(fields))
        raise error("malformed", f"{what} fields wrong (missing {missing}, unexpected {extra})")
    return value


def _require_int(value: Any, low: int, high: int, error: type, what: str) -> int:
    if type(value) is not int or not low <= value <= high:
        raise error("malformed", f"{what} must be an integer in [{low}, {high}]")
    return value


def _require_bytes(value: Any, size: int, error: type, what: str) -> bytes:
    if not isinstance(value, bytes) or len(value) != size:
        raise error("malformed", f"{what} must be {size} bytes")
    return value


def _require_chain_id(value: Any, error: type) -> str:
    if (
        not isinstance(value, str)
        or not 0 < len(value) <= MAX_CHAIN_ID_CHARS
        or not _CHAIN_ID_PATTERN.fullmatch(value)
    ):
        raise error("bad_chain_id", "chain_id must be a short identifier")
    return value


def _decode(data: bytes, max_bytes: int, error: type) -> Any:
    try:
        return codec.decode(data, max_bytes=max_bytes)
    except DecodeError as exc:
        raise error(exc.code, exc.message) from None


# --- Transaction ------------------------------------------------------------------------

_TX_FIELDS = ("body", "chain_id", "kind", "nonce", "sender", "signature")


@dataclass(frozen=True, slots=True)
class Transaction:
    chain_id: str
    sender: bytes
    nonce: int
    kind: str
    body: dict
    signature: bytes
    # The canonical encoding, kept once computed (or decoded from): a node needs it for the
    # tx id, the block, the store and the wire several times per transaction. The fields are
    # frozen and a body is never changed after it is signed.
    _encoded: bytes | None = field(default=None, init=False, repr=False, compare=False)
    _id: bytes | None = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def create(
        cls, key: keys.KeyPair, chain_id: str, nonce: int, kind: str, body: dict
    ) -> "Transaction":
        unsigned = {"body": body, "chain_id": chain_id, "kind": kind, "nonce": nonce,
                    "sender": key.public_key}
        signature = key.sign(TX_DOMAIN, chain_id, unsigned)
        tx = cls(chain_id, key.public_key, nonce, kind, body, signature)
        tx.validate()
        return tx

    def signing_payload(self) -> dict:
        return {"body": self.body, "chain_id": self.chain_id, "kind": self.kind,
                "nonce": self.nonce, "sender": self.sender}

    def to_plain(self) -> dict:
        plain = self.signing_payload()
        plain["signature"] = self.signature
        return plain

    def encode(self) -> bytes:
        encoded = self._encoded
        if encoded is None:
            encoded = codec.encode(self.to_plain())
            object.__setattr__(self, "_encoded", encoded)
        return encoded

    @property
    def tx_id(self) -> bytes:
        tx_id = self._id
        if tx_id is None:
            tx_id = sha256(self.encode())
            object.__setattr__(self, "_id", tx_id)
        return tx_id

    def validate(self) -> None:
        """Structural checks (not the signature)."""
        self.from_plain(self.to_plain())

    @classmethod
    def from_plain(cls, value: Any) -> "Transaction":
        E = InvalidTransaction
        plain = _require_map(value, _TX_FIELDS, E, "transaction")
        chain_id = _require_chain_id(plain["chain_id"], E)
        sender = _require_bytes(plain["sender"], keys.PUBLIC_KEY_BYTES, E, "sender")
        nonce = _require_int(plain["nonce"], 0, MAX_NONCE, E, "nonce")
        kind = plain["kind"]
        if (not isinstance(kind, str) or len(kind) > MAX_KIND_CHARS
                or not _KIND_PATTERN.fullmatch(kind)):
            raise E("bad_kind", "kind must look like 'member.enroll'")
        if not isinstance(plain["body"], dict):
            raise E("malformed", "body must be a map")
        signature = _require_bytes(plain["signature"], keys.SIGNATURE_BYTES, E, "signature")
        return cls(chain_id, sender, nonce, kind, plain["body"], signature)

    @classmethod
    def decode(cls, data: bytes) -> "Transaction":
        tx = cls.from_plain(_decode(data, MAX_TX_BYTES, InvalidTransaction))
        # _decode accepted only the canonical encoding, so these bytes are the encoding.
        object.__setattr__(tx, "_encoded", bytes(data))
        return tx

    def verify_signature(self) -> bool:
        return keys.verify(self.sender, TX_DOMAIN, self.chain_id, self.signing_payload(),
                           self.signature)

    def check_signature(self) -> None:
        if not self.verify_signature():
            raise InvalidTransaction("bad_signature", "transaction signature does not verify")


# --- Block header and block ---------------------------------------------------------------

_HEADER_FIELDS = ("app_hash", "chain_id", "height", "prev_hash", "proposer", "results_hash",
                  "timestamp_ms", "tx_count", "tx_root", "view")


@dataclass(frozen=True, slots=True)
class BlockHeader:
    chain_id: str
    height: int
    view: int
    prev_hash: bytes
    timestamp_ms: int
    proposer: int
    tx_root: bytes
    tx_count: int
    app_hash: bytes
    results_hash: bytes

    def to_plain(self) -> dict:
        return {"app_hash": self.app_hash, "chain_id": self.chain_id, "height": self.height,
                "prev_hash": self.prev_hash, "proposer": self.proposer,
                "results_hash": self.results_hash, "timestamp_ms": self.timestamp_ms,
                "tx_count": self.tx_count, "tx_root": self.tx_root, "view": self.view}

    def encode(self) -> bytes:
        return codec.encode(self.to_plain())

    @property
    def block_hash(self) -> bytes:
        return sha256(self.encode())

    @classmethod
    def from_plain(cls, value: Any) -> "BlockHeader":
        E = InvalidBlock
        plain = _require_map(value, _HEADER_FIELDS, E, "block header")
        return cls(
            chain_id=_require_chain_id(plain["chain_id"], E),
            height=_require_int(plain["height"], 0, MAX_HEIGHT, E, "height"),
            view=_require_int(plain["view"], 0, MAX_HEIGHT, E, "view"),
            prev_hash=_require_bytes(plain["prev_hash"], HASH_BYTES, E, "prev_hash"),
            timestamp_ms=_require_int(plain["timestamp_ms"], 0, MAX_HEIGHT, E, "timestamp_ms"),
            proposer=_require_int(plain["proposer"], 0, MAX_REPLICAS - 1, E, "proposer"),
            tx_root=_require_bytes(plain["tx_root"], HASH_BYTES, E, "tx_root"),
            tx_count=_require_int(plain["tx_count"], 0, MAX_BLOCK_TXS, E, "tx_count"),
            app_hash=_require_bytes(plain["app_hash"], HASH_BYTES, E, "app_hash"),
            results_hash=_require_bytes(plain["results_hash"], HASH_BYTES, E, "results_hash"),
        )

    @classmethod
    def decode(cls, data: bytes) -> "BlockHeader":
        return cls.from_plain(_decode(data, MAX_TX_BYTES, InvalidBlock))


def tx_root(tx_ids: Sequence[bytes]) -> bytes:
    return merkle.root(list(tx_ids))


@dataclass(frozen=True, slots=True)
class Block:
    header: BlockHeader
    txs: tuple[Transaction, ...] = field(default_factory=tuple)

    @property
    def block_hash(self) -> bytes:
        return self.header.block_hash

    @property
    def height(self) -> int:
        return self.header.height

    def to_plain(self) -> dict:
        return {"header": self.header.to_plain(), "txs": [tx.to_plain() for tx in self.txs]}

    def encode(self) -> bytes:
        return codec.encode(self.to_plain())

    @classmethod
    def from_plain(cls, value: Any) -> "Block":
        plain = _require_map(value, ("header", "txs"), InvalidBlock, "block")
        if not isinstance(plain["txs"], list) or len(plain["txs"]) > MAX_BLOCK_TXS:
            raise InvalidBlock("malformed", "txs must be a list of at most MAX_BLOCK_TXS")
        header = BlockHeader.from_plain(plain["header"])
        try:
            txs = tuple(Transaction.from_plain(tx) for tx in plain["txs"])
        except InvalidTransaction as exc:
            raise InvalidBlock("bad_transaction", exc.message) from None
        return cls(header, txs)

    @classmethod
    def decode(cls, data: bytes) -> "Block":
        return cls.from_plain(_decode(data, MAX_BLOCK_BYTES, InvalidBlock))

    def validate_structure(self) -> None:
        """Checks a block must pass before anyone votes for it (signatures aside)."""
        if self.header.tx_count != len(self.txs):
            raise InvalidBlock("tx_count", "tx_count does not match the transactions")
        tx_ids = []
        for tx in self.txs:
            encoded = tx.encode()
            # The mempool admits nothing larger; a primary must not slip it in through a block.
            if len(encoded) > MAX_TX_BYTES:
                raise InvalidBlock("oversize_tx", f"a transaction exceeds {MAX_TX_BYTES} bytes")
            tx_ids.append(tx.tx_id)
        if len(set(tx_ids)) != len(tx_ids):
            raise InvalidBlock("duplicate_tx", "a transaction appears twice")
        if tx_root(tx_ids) != self.header.tx_root:
            raise InvalidBlock("tx_root", "tx_root does not match the transactions")
        for tx in self.txs:
            if tx.chain_id != self.header.chain_id:
                raise InvalidBlock("bad_chain_id", "transaction for another chain")


# --- Commit certificate -----------------------------------------------------------------

def commit_vote_payload(view: int, height: int, block_hash: bytes) -> dict:
    """What each replica signs (domain ``commit``) when it commits ``block_hash``."""
    return {"block_hash": block_hash, "height": height, "view": view}


@dataclass(frozen=True, slots=True)
class CommitCertificate:
    height: int
    view: int
    block_hash: bytes
    signatures: tuple[tuple[int, bytes], ...]

    def to_plain(self) -> dict:
        return {"block_hash": self.block_hash, "height": self.height, "view": self.view,
                "signatures": [[replica, sig] for replica, sig in self.signatures]}

    def encode(self) -> bytes:
        return codec.encode(self.to_plain())

    @classmethod
    def from_plain(cls, value: Any) -> "CommitCertificate":
        E = InvalidCertificate
        plain = _require_map(value, ("block_hash", "height", "signatures", "view"), E,
                             "certificate")
        signatures = plain["signatures"]
        if not isinstance(signatures, list) or not 0 < len(signatures) <= MAX_REPLICAS:
            raise E("malformed", "signatures must be a non-empty list")
        pairs = []
        for entry in signatures:
            if not isinstance(entry, list) or len(entry) != 2:
                raise E("malformed", "each signature is [replica_id, signature]")
            replica = _require_int(entry[0], 0, MAX_REPLICAS - 1, E, "replica id")
            pairs.append((replica, _require_bytes(entry[1], keys.SIGNATURE_BYTES, E, "signature")))
        ids = [replica for replica, _ in pairs]
        if ids != sorted(set(ids)):
            raise E("unsorted_signers", "signers must be distinct and in ascending order")
        return cls(
            height=_require_int(plain["height"], 0, MAX_HEIGHT, E, "height"),
            view=_require_int(plain["view"], 0, MAX_HEIGHT, E, "view"),
            block_hash=_require_bytes(plain["block_hash"], HASH_BYTES, E, "block_hash"),
            signatures=tuple(pairs),
        )

    @classmethod
    def decode(cls, data: bytes) -> "CommitCertificate":
        return cls.from_plain(_decode(data, MAX_TX_BYTES * 4, InvalidCertificate))

    @classmethod
    def build(cls, height: int, view: int, block_hash: bytes,
              signatures: dict[int, bytes] | Sequence[tuple[int, bytes]]) -> "CommitCertificate":
        pairs = dict(signatures)
        return cls(height, view, block_hash, tuple(sorted(pairs.items())))

    def verify(self, chain_id: str, validators: Sequence[bytes]) -> None:
        """Raise ``InvalidCertificate`` unless a quorum of distinct validators signed."""
        ids = [replica for replica, _ in self.signatures]
        if ids != sorted(set(ids)):
            raise InvalidCertificate("unsorted_signers", "signers must be distinct and sorted")
        payload = commit_vote_payload(self.view, self.height, self.block_hash)
        message = keys.signing_message(COMMIT_DOMAIN, chain_id, payload)
        valid = 0
        for replica, signature in self.signatures:
            # A negative id would index validators from the end and count a signer twice.
            if type(replica) is not int or not 0 <= replica < len(validators):
                raise InvalidCertificate("unknown_signer", f"replica {replica} is not a validator")
            if not keys.verify_message(validators[replica], message, signature):
                raise InvalidCertificate("bad_signature", f"signature of replica {replica} is invalid")
            valid += 1
        needed = quorum_size(len(validators))
        if valid < needed:
            raise InvalidCertificate("no_quorum", f"{valid} signatures, {needed} needed")


# --- Receipt ----------------------------------------------------------------------------

OK = "ok"


@dataclass(frozen=True, slots=True)
class Receipt:
    """The outcome of one transaction: ``code`` is ``"ok"`` or a rejection reason code."""

    tx_id: bytes
    code: str
    result: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.code == OK

    def to_plain(self) -> dict:
        return {"code": self.code, "result": self.result, "tx_id": self.tx_id}

    def encode(self) -> bytes:
        return codec.encode(self.to_plain())

    @classmethod
    def from_plain(cls, value: Any) -> "Receipt":
        plain = _require_map(value, ("code", "result", "tx_id"), DecodeError, "receipt")
        code = plain["code"]
        if not isinstance(code, str) or not 0 < len(code) <= MAX_CODE_CHARS:
            raise DecodeError("malformed", "receipt code must be a short string")
        if not isinstance(plain["result"], dict):
            raise DecodeError("malformed", "receipt result must be a map")
        tx_id = _require_bytes(plain["tx_id"], HASH_BYTES, DecodeError, "tx_id")
        return cls(tx_id, code, plain["result"])

    @classmethod
    def decode(cls, data: bytes) -> "Receipt":
        return cls.from_plain(codec.decode(data, max_bytes=MAX_TX_BYTES))


def results_hash(receipts: Sequence[Receipt]) -> bytes:
    """Merkle root of the encoded receipts of one block."""
    return merkle.root([receipt.encode() for receipt in receipts])
