"""The Store interface: one ordered key/value space per node, written only in atomic batches.

Everything a node keeps durably (blocks, certificates, receipts, the tx index, application
state, node metadata and the consensus WAL) lives in one sorted byte-keyed map, separated by
a two-byte prefix per family:

    b"b/" + u64be(height)   -> canonical block encoding (``Block.encode()``, the raw bytes)
    b"h/" + block_hash      -> u64be(height)
    b"c/" + u64be(height)   -> canonical ``CommitCertificate`` encoding
    b"r/" + u64be(height)   -> canonical encoding of the list of receipts' plain forms
    b"t/" + tx_id           -> u64be(height) + u64be(index in the block)
    b"s/" + key             -> application state value (opaque bytes)
    b"m/" + utf-8 name      -> node metadata (opaque bytes); ``latest_height`` is reserved
    b"w/" + key             -> consensus WAL record (opaque bytes)

Heights are fixed-width big-endian so that byte order is height order. Blocks are stored as
their raw canonical bytes and decoded on read, so an audit can compare exactly what is on
disk (``get_block_raw``) against the certified hash.

The shared logic (keys, value codecs, batch building, the ``latest_height`` meta entry) is
here; an implementation only supplies raw reads (``_read``, ``_scan``), the atomic
application of an op list (``_apply``) and ``_close``. A store holds no state outside
committed batches, so a simulated crash is simply dropping the objects above the store.
"""

from __future__ import annotations

import struct
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from types import TracebackType

from ledger import codec
from ledger.errors import DecodeError, HuzhuError, InvalidBlock, InvalidCertificate
from ledger.types import MAX_HEIGHT, Block, CommitCertificate, Receipt

BLOCK_PREFIX = b"b/"
HASH_PREFIX = b"h/"
CERTIFICATE_PREFIX = b"c/"
RECEIPTS_PREFIX = b"r/"
TX_PREFIX = b"t/"
STATE_PREFIX = b"s/"
META_PREFIX = b"m/"
WAL_PREFIX = b"w/"

LATEST_HEIGHT_META = "latest_height"  # reserved meta name, written only by put_block

MAX_KEY_BYTES = 4096  # longest state or WAL key accepted (without the prefix)
MAX_META_NAME_CHARS = 128
MAX_VALUE_BYTES = 64 * 1024 * 1024  # largest single value written or decoded

_HEIGHT = struct.Struct(">Q")
_TX_LOCATION = struct.Struct(">QQ")

Op = tuple[bytes, bytes | None]  # (full key, value) or (full key, None) for a delete


class StoreError(HuzhuError):
    """A storage failure with a reason code.

    Codes: ``locked`` (another handle or process holds the database), ``open_failed``,
    ``closed`` (the store was closed), ``batch_finished`` (a committed or discarded batch was
    used again), ``corrupt`` (a stored value does not decode), ``block_conflict`` (a different
    block is already stored at that height), ``reserved_meta``, ``bad_key``, ``bad_height``,
    ``too_large``.
    """

    default_code = "store_error"


# --- keys and values -------------------------------------------------------------------------

def _check_height(height: int) -> int:
    if type(height) is not int or not 1 <= height <= MAX_HEIGHT:
        raise StoreError("bad_height", f"height must be an integer in [1, {MAX_HEIGHT}]")
    return height


def _height_in_range(height: object) -> bool:
    return type(height) is int and 1 <= height <= MAX_HEIGHT


def _check_key(key: bytes, what: str) -> bytes:
    if not isinstance(key, (bytes, bytearray, memoryview)):
        raise TypeError(f"{what} must be bytes, not {type(key).__name__}")
    key = bytes(key)
    if len(key) > MAX_KEY_BYTES:
        raise StoreError("bad_key", f"{what} longer than {MAX_KEY_BYTES} bytes")
    return key


def _check_value(value: bytes, what: str) -> bytes:
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError(f"{what} must be bytes, not {type(value).__name__}")
    value = bytes(value)
    if len(value) > MAX_VALUE_BYTES:
        raise StoreError("too_large", f"{what} larger than {MAX_VALUE_BYTES} bytes")
    return value


def _meta_name(name: str) -> bytes:
    if not isinstance(name, str) or not 0 < len(name) <= MAX_META_NAME_CHARS:
        raise StoreError("bad_key", f"meta name must be a str of 1..{MAX_META_NAME_CHARS} chars")
    return name.encode("utf-8")


def _decode_block(height: int, raw: bytes) -> Block:
    try:
        block = Block.decode(raw)
    except InvalidBlock as exc:
        raise StoreError("corrupt", f"block {height} does not decode: {exc.message}") from None
    if block.height != height:
        raise StoreError("corrupt", f"block stored at {height} has height {block.height}")
    return block


def encode_height(height: int) -> bytes:
    return _HEIGHT.pack(height)


def decode_height(data: bytes) -> int:
    if len(data) != _HEIGHT.size:
        raise StoreError("corrupt", "stored height is not 8 bytes")
    return _HEIGHT.unpack(data)[0]


def block_key(height: int) -> bytes:
    return BLOCK_PREFIX + encode_height(height)


def hash_key(block_hash: bytes) -> bytes:
    return HASH_PREFIX + bytes(block_hash)


def certificate_key(height: int) -> bytes:
    return CERTIFICATE_PREFIX + encode_height(height)


def receipts_key(height: int) -> bytes:
    return RECEIPTS_PREFIX + encode_height(height)


def tx_key(tx_id: bytes) -> bytes:
    return TX_PREFIX + bytes(tx_id)


def state_key(key: bytes) -> bytes:
    return STATE_PREFIX + bytes(key)


def meta_key(name: str) -> bytes:
    return META_PREFIX + _meta_name(name)


def wal_key(key: bytes) -> bytes:
    return WAL_PREFIX + bytes(key)


def prefix_end(prefix: bytes) -> bytes | None:
    """The smallest key greater than every key starting with ``prefix`` (None: no bound)."""
    trimmed = bytes(prefix).rstrip(b"\xff")
    if not trimmed:
        return None
    return trimmed[:-1] + bytes([trimmed[-1] + 1])


_LATEST_HEIGHT_KEY = meta_key(LATEST_HEIGHT_META)


def encode_receipts(receipts: Sequence[Receipt]) -> bytes:
    return codec.encode([receipt.to_plain() for receipt in receipts])


def decode_receipts(data: bytes) -> list[Receipt]:
    plain = codec.decode(data, max_bytes=MAX_VALUE_BYTES)
    if not isinstance(plain, list):
        raise DecodeError("malformed", "receipts must be a list")
    return [Receipt.from_plain(item) for item in plain]


# --- batches -----------------------------------------------------------------------------

class WriteBatch:
    """A set of writes applied all together by ``commit`` or not at all.

    Reads on the store do not see a batch's writes until it commits. Used as a context
    manager it commits when the block exits normally and discards on an exception. A batch
    that has been committed or discarded refuses further use (``StoreError("batch_finished")``).
    Ops apply in the order they were added, so a later write to a key wins.
    """

    __slots__ = ("_store", "_ops", "_blocks", "_finished")

    def __init__(self, store: Store) -> None:
        self._store = store
        self._ops: list[Op] = []
        self._blocks: dict[int, bytes] = {}  # height -> raw block, for the conflict check
        self._finished = False

    def _check_open(self) -> None:
        if self._finished:
            raise StoreError("batch_finished", "this batch was already committed or discarded")

    def _add(self, key: bytes, value: bytes | None) -> None:
        self._check_open()
        self._ops.append((key, value))

    def put_block(self, block: Block) -> None:
        """Store ``block`` by height and by hash, and index every transaction in it."""
        self._check_open()
        height = _check_height(block.height)
        raw = _check_value(block.encode(), "block")
        pending = self._blocks.get(height)
        if pending is None:
            stored = self._store.get_block_raw(height)
            if stored is not None and stored != raw:
                raise StoreError("block_conflict", f"a different block is stored at {height}")
        elif pending != raw:
            raise StoreError("block_conflict", f"a different block is already in this batch at {height}")
        self._blocks[height] = raw
        self._add(block_key(height), raw)
        self._add(hash_key(block.block_hash), encode_height(height))
        for index, tx in enumerate(block.txs):
            self._add(tx_key(tx.tx_id), _TX_LOCATION.pack(height, index))

    def put_certificate(self, certificate: CommitCertificate) -> None:
        height = _check_height(certificate.height)
        self._add(certificate_key(height), _check_value(certificate.encode(), "certificate"))

    def put_receipts(self, height: int, receipts: Sequence[Receipt]) -> None:
        height = _check_height(height)
        self._add(receipts_key(height), _check_value(encode_receipts(receipts), "receipts"))

    def put_state(self, key: bytes, value: bytes) -> None:
        # A block writes many state entries (the tree's nodes too): plain bytes of legal sizes
        # skip the general checks below, which accept the same and more.
        if (type(key) is bytes and type(value) is bytes and len(key) <= MAX_KEY_BYTES
                and len(value) <= MAX_VALUE_BYTES and not self._finished):
            self._ops.append((STATE_PREFIX + key, value))
            return
        key = _check_key(key, "state key")
        self._add(state_key(key), _check_value(value, "state value"))

    def delete_state(self, key: bytes) -> None:
        self._add(state_key(_check_key(key, "state key")), None)

    def put_meta(self, name: str, value: bytes) -> None:
        if name == LATEST_HEIGHT_META:
            raise StoreError("reserved_meta", f"{LATEST_HEIGHT_META} is maintained by put_block")
        self._add(meta_key(name), _check_value(value, "meta value"))

    def put_wal(self, key: bytes, value: bytes) -> None:
        key = _check_key(key, "WAL key")
        self._add(wal_key(key), _check_value(value, "WAL value"))

    def delete_wal(self, key: bytes) -> None:
        self._add(wal_key(_check_key(key, "WAL key")), None)

    def __len__(self) -> int:
        return len(self._ops)

    def commit(self) -> None:
        """Apply every write at once (LevelDB: one synced WriteBatch); the batch is then done."""
        self._check_open()
        self._finished = True
        self._store._commit(self._ops, self._blocks)
        self._ops = []
        self._blocks = {}

    def discard(self) -> None:
        """Drop every write; the batch is then done."""
        self._check_open()
        self._finished = True
        self._ops = []
        self._blocks = {}

    def __enter__(self) -> WriteBatch:
        self._check_open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._finished:  # committed or discarded explicitly inside the block
            return
        if exc_type is None:
            self.commit()
        else:
            self.discard()


# --- the store ---------------------------------------------------------------------------

class Store(ABC):
    """A node's durable store (see the module docstring for the key layout).

    Also a ``ledger.application.StateReader``. Subclasses implement only the raw primitives.
    """

    def __init__(self, write_lock: threading.RLock | None = None) -> None:
        # Serializes the read-check-apply of a commit (conflict check, latest_height).
        self._write_lock = write_lock if write_lock is not None else threading.RLock()
        self._closed = False

    # raw primitives ------------------------------------------------------------------
    @abstractmethod
    def _read(self, key: bytes) -> bytes | None:
        """The committed value of a full key."""

    @abstractmethod
    def _scan(self, start: bytes, stop: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Committed pairs with start <= key < stop, ascending, as of the moment of the call."""

    @abstractmethod
    def _apply(self, ops: list[Op]) -> None:
        """Apply ``ops`` in order, atomically and durably."""

    @abstractmethod
    def _close(self) -> None:
        """Release the underlying resources."""

    # lifecycle -----------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("closed", "the store is closed")

    def close(self) -> None:
        """Close the store; idempotent. Later reads and commits raise ``StoreError("closed")``."""
        with self._write_lock:
            if self._closed:
                return
            self._closed = True
            self._close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def batch(self) -> WriteBatch:
        self._check_open()
        return WriteBatch(self)

    def _commit(self, ops: list[Op], blocks: dict[int, bytes]) -> None:
        with self._write_lock:
            self._check_open()
            # Re-check under the lock: another batch may have stored a block since put_block.
            for height, raw in blocks.items():
                stored = self._read(block_key(height))
                if stored is not None and stored != raw:
                    raise StoreError("block_conflict", f"a different block is stored at {height}")
            ops = list(ops)
            highest = max(blocks, default=0)
            if highest > self.latest_height():
                ops.append((_LATEST_HEIGHT_KEY, encode_height(highest)))
            if ops:
                self._apply(ops)

    # reads ---------------------------------------------------------------------------
    def _get(self, key: bytes) -> bytes | None:
        self._check_open()
        return self._read(key)

    def get_block_raw(self, height: int) -> bytes | None:
        """The block's bytes exactly as stored (for tamper checks)."""
        if not _height_in_range(height):
            return None
        return self._get(block_key(height))

    def get_block(self, height: int) -> Block | None:
        raw = self.get_block_raw(height)
        return None if raw is None else _decode_block(height, raw)

    def get_served_block(self, height: int) -> tuple[bytes, Block, CommitCertificate] | None:
        """(raw bytes, block, certificate) of a block about to leave the node, or None.

        The block is re-hashed against its stored certificate and its transactions against
        its tx_root, so damaged bytes raise ``StoreError("corrupt")`` instead of being served.
        """
        raw = self.get_block_raw(height)
        if raw is None:
            return None
        block = _decode_block(height, raw)
        certificate = self.get_certificate(height)
        if certificate is None:
            raise StoreError("corrupt", f"block {height} is stored without its certificate")
        if certificate.height != height or certificate.block_hash != block.block_hash:
            raise StoreError("corrupt", f"block {height} does not match its certificate")
        try:
            block.validate_structure()
        except InvalidBlock as exc:
            raise StoreError("corrupt", f"block {height} fails its own header: {exc.message}") \
                from None
        return raw, block, certificate

    def get_height_by_hash(self, block_hash: bytes) -> int | None:
        if not isinstance(block_hash, (bytes, bytearray, memoryview)):
            return None
        raw = self._get(hash_key(block_hash))
        return None if raw is None else decode_height(raw)

    def get_certificate(self, height: int) -> CommitCertificate | None:
        if not _height_in_range(height):
            return None
        raw = self._get(certificate_key(height))
        if raw is None:
            return None
        try:
            return CommitCertificate.decode(raw)
        except InvalidCertificate as exc:
            raise StoreError("corrupt", f"certificate {height} does not decode: {exc.message}") from None

    def get_receipts(self, height: int) -> list[Receipt] | None:
        if not _height_in_range(height):
            return None
        raw = self._get(receipts_key(height))
        if raw is None:
            return None
        try:
            return decode_receipts(raw)
        except DecodeError as exc:
            raise StoreError("corrupt", f"receipts {height} do not decode: {exc.message}") from None

    def get_tx_location(self, tx_id: bytes) -> tuple[int, int] | None:
        """(height, index in the block) of a stored transaction."""
        if not isinstance(tx_id, (bytes, bytearray, memoryview)):
            return None
        raw = self._get(tx_key(tx_id))
        if raw is None:
            return None
        if len(raw) != _TX_LOCATION.size:
            raise StoreError("corrupt", "stored tx location is not 16 bytes")
        height, index = _TX_LOCATION.unpack(raw)
        return height, index

    def iterate_tx_index(self) -> Iterator[tuple[bytes, int, int]]:
        """Every tx index entry as (tx id, height, index in the block), by tx id."""
        for tx_id, raw in self._iterate_family(TX_PREFIX, TX_PREFIX, prefix_end(TX_PREFIX)):
            if len(raw) != _TX_LOCATION.size:
                raise StoreError("corrupt", f"tx location of {tx_id.hex()} is not 16 bytes")
            height, index = _TX_LOCATION.unpack(raw)
            yield tx_id, height, index

    def get_state(self, key: bytes) -> bytes | None:
        return self._get(state_key(_check_key(key, "state key")))

    def iterate_state(
        self, start: bytes = b"", stop: bytes | None = None
    ) -> Iterator[tuple[bytes, bytes]]:
        """State pairs with start <= key < stop in ascending key order (stop None: no bound).

        The range is fixed when this is called: later commits do not show up in it.
        """
        start = _check_key(start, "start")
        if stop is None:
            full_stop = prefix_end(STATE_PREFIX)
        else:
            stop = _check_key(stop, "stop")
            full_stop = state_key(stop)
        return self._iterate_family(STATE_PREFIX, state_key(start), full_stop)

    def get_meta(self, name: str) -> bytes | None:
        return self._get(meta_key(name))

    def iterate_wal(self) -> Iterator[tuple[bytes, bytes]]:
        """Every WAL record (key, value) in ascending key order."""
        return self._iterate_family(WAL_PREFIX, WAL_PREFIX, prefix_end(WAL_PREFIX))

    def latest_height(self) -> int:
        """The highest block height stored; 0 when no block is stored."""
        raw = self._get(_LATEST_HEIGHT_KEY)
        return 0 if raw is None else decode_height(raw)

    def _iterate_family(
        self, prefix: bytes, start: bytes, stop: bytes | None
    ) -> Iterator[tuple[bytes, bytes]]:
        self._check_open()
        assert stop is not None  # every family prefix ends in "/", so it has an end
        if start >= stop:
            return iter(())
        # _scan is called now (not lazily) so the range is a snapshot of this moment.
        return self._strip(self._scan(start, stop), len(prefix))

    def _strip(
        self, pairs: Iterator[tuple[bytes, bytes]], prefix_bytes: int
    ) -> Iterator[tuple[bytes, bytes]]:
        for key, value in pairs:
            self._check_open()
            yield key[prefix_bytes:], value
