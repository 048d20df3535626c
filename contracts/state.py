"""The application's key/value state: a journal for transactions and a compact sparse Merkle tree.

Reads go through three layers: the writes of the current transaction and block (``dirty``,
every write since the node last took them), then the node's store (a ``StateReader``). A
transaction runs between ``begin()`` and ``commit_tx()`` / ``rollback()``; the journal keeps
each key's previous layer entry so a rollback leaves no trace.

State root: a compact sparse Merkle tree over 256-bit paths ``sha256(key)``. A subtree holding
no entry hashes to 32 zero bytes, a subtree holding exactly one entry is that entry's leaf
``H(0x00 || path || H(value))`` wherever it sits, and any other subtree is the interior node
``H(0x01 || left || right)``. The tree is therefore unique for a set of entries (independent
of insertion order) and about log2(n) deep. Every non-empty position is itself stored as a
state entry under ``TREE_PREFIX`` holding exactly the bytes whose SHA-256 is its hash, so the
node persists the tree with the rest of the state in one batch and a restarted application
finds it again. ``commit()`` applies the keys changed since the previous commit in one sorted
pass, so a block costs O(changed keys x depth), never O(state).

``verify_proof`` checks a single-key proof (inclusion or exclusion) against a root; it is pure
and meant for clients and the audit as well.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence
from typing import Any

from ledger.application import StateReader
from ledger.hashing import HASH_BYTES, sha256

# Keys under RESERVED_PREFIX are the tree's own nodes: they are state entries but not leaves.
RESERVED_PREFIX = b"~"
TREE_PREFIX = b"~t/"
EMPTY_HASH = bytes(HASH_BYTES)
PATH_BITS = 256
MAX_PROOF_SIBLINGS = PATH_BITS

# Store reads kept in memory (hot records such as params and totals, the top of the tree);
# dropped all at once when full. The cache only holds what the store says after the node
# persisted our writes, which take_writes applies to it, so it never changes a result.
MAX_CACHED_READS = 1 << 18

_LEAF_TAG = 0x00
_NODE_TAG = 0x01
_ABSENT = object()  # "no entry in this layer", distinct from a deletion (None)


def _bit(path: int, depth: int) -> int:
    """Bit ``depth`` of a 256-bit path, counted from the most significant."""
    return (path >> (PATH_BITS - 1 - depth)) & 1


def _position_key(depth: int, path: int) -> bytes:
    """Where the tree position at ``depth`` on the way to ``path`` is stored."""
    prefix = path >> (PATH_BITS - depth)
    return TREE_PREFIX + depth.to_bytes(2, "big") + prefix.to_bytes((depth + 7) // 8, "big")


def _content_hash(content: bytes | None) -> bytes:
    return EMPTY_HASH if content is None else sha256(content)


def _leaf(path: bytes, value_hash: bytes) -> bytes:
    return bytes((_LEAF_TAG,)) + path + value_hash


def _node(left: bytes, right: bytes) -> bytes:
    return bytes((_NODE_TAG,)) + left + right


class State:
    """Journaled key/value state over a ``StateReader`` with an incremental Merkle root."""

    def __init__(self, reader: StateReader, ordered_prefixes: Sequence[bytes] = ()) -> None:
        self._reader = reader
        # Range reads are only ever made under these prefixes; their dirty keys are also kept
        # in a sorted list so a range read merges two sorted streams instead of scanning.
        self._ordered_prefixes = tuple(ordered_prefixes)
        self._dirty: dict[bytes, bytes | None] = {}
        self._dirty_ordered: list[bytes] = []
        self._changed: dict[bytes, None] = {}
        self._journal: dict[bytes, tuple[Any, bool]] | None = None
        self._cache: dict[bytes, bytes | None] = {}

    # --- reads ----------------------------------------------------------------------------

    def get(self, key: bytes) -> bytes | None:
        value = self._dirty.get(key, _ABSENT)
        if value is not _ABSENT:
            return value
        return self._stored(key)

    def _stored(self, key: bytes) -> bytes | None:
        value = self._cache.get(key, _ABSENT)
        if value is _ABSENT:
            value = self._reader.get_state(key)
            if len(self._cache) >= MAX_CACHED_READS:
                self._cache.clear()
            self._cache[key] = value
        return value

    def _is_ordered(self, key: bytes) -> bool:
        return key.startswith(self._ordered_prefixes) if self._ordered_prefixes else False

    def iterate(self, start: bytes, stop: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Live entries with start <= key < stop, ascending; only under an ordered prefix.

        Do not write while iterating: collect what you need first.
        """
        assert self._is_ordered(start), "range reads only under an ordered prefix"
        low = bisect.bisect_left(self._dirty_ordered, start)
        high = bisect.bisect_left(self._dirty_ordered, stop)
        overlay = self._dirty_ordered[low:high]
        stored = self._reader.iterate_state(start, stop)
        index = 0
        for key, value in stored:
            while index < len(overlay) and overlay[index] < key:
                dirty_value = self._dirty[overlay[index]]
                if dirty_value is not None:
                    yield overlay[index], dirty_value
                index += 1
            if key in self._dirty:
                continue  # the overlay holds its current value (or its deletion)
            yield key, value
        while index < len(overlay):
            dirty_value = self._dirty[overlay[index]]
            if dirty_value is not None:
                yield overlay[index], dirty_value
            index += 1

    def first(self, start: bytes, stop: bytes) -> tuple[bytes, bytes] | None:
        return next(self.iterate(start, stop), None)

    # --- writes and the transaction journal -------------------------------------------------

    def set(self, key: bytes, value: bytes) -> None:
        assert isinstance(value, bytes)
        self._write(key, value)

    def delete(self, key: bytes) -> None:
        self._write(key, None)

    def _write(self, key: bytes, value: bytes | None) -> None:
        assert not key.startswith(RESERVED_PREFIX), "the tree's keys are written by commit()"
        previous = self._dirty.get(key, _ABSENT)
        if self._journal is not None and key not in self._journal:
            self._journal[key] = (previous, key in self._changed)
        if previous is _ABSENT and self._is_ordered(key):
            bisect.insort(self._dirty_ordered, key)
        self._dirty[key] = value
        self._changed[key] = None

    def begin(self) -> None:
        assert self._journal is None, "transactions do not nest"
        self._journal = {}

    def commit_tx(self) -> None:
        assert self._journal is not None
        self._journal = None

    def rollback(self) -> None:
        assert self._journal is not None
        for key, (previous, was_changed) in self._journal.items():
            if previous is _ABSENT:
                del self._dirty[key]
                if self._is_ordered(key):
                    index = bisect.bisect_left(self._dirty_ordered, key)
                    assert self._dirty_ordered[index] == key
                    del self._dirty_ordered[index]
            else:
                self._dirty[key] = previous
            if not was_changed:
                self._changed.pop(key, None)
        self._journal = None

    @property
    def in_transaction(self) -> bool:
        return self._journal is not None

    @property
    def uncommitted(self) -> bool:
        """True when keys changed since the last ``commit_root``."""
        return bool(self._changed)

    # --- the Merkle tree ----------------------------------------------------------------

    def root(self) -> bytes:
        """The root as of the last ``commit_root`` (or as stored)."""
        return _content_hash(self._read_position(_position_key(0, 0)))

    def commit_root(self) -> bytes:
        """Fold every key changed since the last call into the tree; return the new root."""
        assert self._journal is None, "commit the open transaction first"
        if not self._changed:
            return self.root()
        changes = []
        for key in self._changed:
            value = self.get(key)
            path = sha256(key)
            changes.append((int.from_bytes(path, "big"), path,
                            None if value is None else sha256(value)))
        changes.sort()
        self._changed = {}
        root_key = _position_key(0, 0)
        old_root = self._read_position(root_key)
        new_root = self._apply(0, old_root, changes, 0, len(changes))
        self._put_position(root_key, new_root, old_root)
        return _content_hash(new_root)

    # Tree positions live in the same key space (under their own prefix) as the entries.
    _read_position = get

    def _put_position(self, key: bytes, content: bytes | None, old: bytes | None) -> None:
        if content != old:
            self._dirty[key] = content

    def _split(self, depth: int, changes: list, low: int, high: int) -> int:
        """Index of the first change in [low, high) whose bit ``depth`` is 1."""
        first_path = changes[low][0]
        # All paths here share their first ``depth`` bits; the right half starts at that
        # prefix followed by a 1.
        threshold = ((first_path >> (PATH_BITS - depth)) << 1 | 1) << (PATH_BITS - 1 - depth)
        return bisect.bisect_left(changes, threshold, low, high, key=lambda change: change[0])

    def _apply(self, depth: int, content: bytes | None, changes: list, low: int,
               high: int) -> bytes | None:
        """The new content of the position at ``depth`` after changes[low:high].

        Writes every changed position below it; the caller writes this one.
        """
        if content is None or content[0] == _LEAF_TAG:
            # Below an empty position or a leaf nothing is stored: rebuild from its entries.
            leaves: dict[bytes, bytes] = {}
            if content is not None:
                leaves[content[1:33]] = content[33:65]
            for _, path, value_hash in changes[low:high]:
                if value_hash is None:
                    leaves.pop(path, None)
                else:
                    leaves[path] = value_hash
            entries = sorted((int.from_bytes(path, "big"), path, value_hash)
                             for path, value_hash in leaves.items())
            return self._build(depth, entries, 0, len(entries))

        any_path = changes[low][0]
        middle = self._split(depth, changes, low, high)
        left_key = _position_key(depth + 1, any_path & ~(1 << (PATH_BITS - 1 - depth)))
        right_key = _position_key(depth + 1, any_path | (1 << (PATH_BITS - 1 - depth)))
        left_hash, right_hash = content[1:33], content[33:65]
        left_old = right_old = _ABSENT
        left_new = right_new = _ABSENT
        if middle > low:
            left_old = self._read_position(left_key)
            left_new = self._apply(depth + 1, left_old, changes, low, middle)
            left_hash = _content_hash(left_new)
        if high > middle:
            right_old = self._read_position(right_key)
            right_new = self._apply(depth + 1, right_old, changes, middle, high)
            right_hash = _content_hash(right_new)

        if left_hash == EMPTY_HASH or right_hash == EMPTY_HASH:
            # One side is empty: if the other holds a single leaf, that leaf moves up here.
            if left_hash == EMPTY_HASH:
                other_key, other_new, other_old = right_key, right_new, right_old
                empty_key, empty_old = left_key, left_old
            else:
                other_key, other_new, other_old = left_key, left_new, left_old
                empty_key, empty_old = right_key, right_old
            if other_new is _ABSENT:
                other_new = other_old = self._read_position(other_key)
            if empty_old is not _ABSENT:
                self._put_position(empty_key, None, empty_old)
            if other_new is None:
                if other_old is not _ABSENT:
                    self._put_position(other_key, None, other_old)
                return None
            if other_new[0] == _LEAF_TAG:
                self._put_position(other_key, None, other_old)
                return other_new
            if other_old is not _ABSENT:
                self._put_position(other_key, other_new, other_old)
            return _node(left_hash, right_hash)

        if left_new is not _ABSENT:
            self._put_position(left_key, left_new, left_old)
        if right_new is not _ABSENT:
            self._put_position(right_key, right_new, right_old)
        return _node(left_hash, right_hash)

    def _build(self, depth: int, entries: list, low: int, high: int) -> bytes | None:
        """Content of a fresh subtree over entries[low:high]; writes the positions below it."""
        if high == low:
            return None
        if high - low == 1:
            _, path, value_hash = entries[low]
            return _leaf(path, value_hash)
        any_path = entries[low][0]
        middle = self._split(depth, entries, low, high)
        left = self._build(depth + 1, entries, low, middle)
        right = self._build(depth + 1, entries, middle, high)
        if left is not None:
            self._dirty[_position_key(depth + 1, any_path & ~(1 << (PATH_BITS - 1 - depth)))] = left
        if right is not None:
            self._dirty[_position_key(depth + 1, any_path | (1 << (PATH_BITS - 1 - depth)))] = right
        return _node(_content_hash(left), _content_hash(right))

    def prove(self, key: bytes) -> dict:
        """A proof for ``key`` against ``root()``: JSON-friendly (hex strings)."""
        assert not self._changed, "proofs are against the committed root"
        path = sha256(key)
        path_int = int.from_bytes(path, "big")
        siblings = []
        depth = 0
        content = self._read_position(_position_key(0, 0))
        while content is not None and content[0] == _NODE_TAG:
            if _bit(path_int, depth):
                siblings.append(content[1:33].hex())
            else:
                siblings.append(content[33:65].hex())
            depth += 1
            content = self._read_position(_position_key(depth, path_int))
        leaf = None
        if content is not None:
            leaf = {"path": content[1:33].hex(), "value_hash": content[33:65].hex()}
        return {"siblings": siblings, "leaf": leaf}

    # --- handing writes to the node -------------------------------------------------------

    def take_writes(self) -> list[tuple[bytes, bytes | None]]:
        assert self._journal is None and not self._changed, "commit before taking writes"
        writes = sorted(self._dirty.items())
        for key, value in writes:
            if key in self._cache:
                self._cache[key] = value  # what the store holds once the node persists
        self._dirty = {}
        self._dirty_ordered = []
        return writes


def _parse_hash(value: Any) -> bytes | None:
    if isinstance(value, bytes):
        return value if len(value) == HASH_BYTES else None
    if not isinstance(value, str) or len(value) != 2 * HASH_BYTES:
        return None
    try:
        return bytes.fromhex(value)
    except ValueError:
        return None


def verify_proof(root: bytes, key: bytes, value: bytes | None, proof: Any) -> bool:
    """True when ``proof`` shows ``key`` holds ``value`` (or is absent, for None) under ``root``.

    Never raises on malformed input: proofs come from untrusted nodes.
    """
    if not isinstance(root, bytes) or len(root) != HASH_BYTES or not isinstance(key, bytes):
        return False
    if value is not None and not isinstance(value, bytes):
        return False
    if not isinstance(proof, dict) or set(proof) != {"siblings", "leaf"}:
        return False
    siblings_plain = proof["siblings"]
    if not isinstance(siblings_plain, list) or len(siblings_plain) > MAX_PROOF_SIBLINGS:
        return False
    siblings = [_parse_hash(sibling) for sibling in siblings_plain]
    if any(sibling is None for sibling in siblings):
        return False
    leaf = proof["leaf"]
    leaf_path = leaf_value_hash = None
    if leaf is not None:
        if not isinstance(leaf, dict) or set(leaf) != {"path", "value_hash"}:
            return False
        leaf_path, leaf_value_hash = _parse_hash(leaf["path"]), _parse_hash(leaf["value_hash"])
        if leaf_path is None or leaf_value_hash is None:
            return False

    path = sha256(key)
    path_int = int.from_bytes(path, "big")
    depth = len(siblings)
    if value is not None:
        if leaf_path != path or leaf_value_hash != sha256(value):
            return False
        current = sha256(_leaf(path, leaf_value_hash))
    elif leaf is None:
        current = EMPTY_HASH
    else:
        # Absent: another entry's leaf sits where ours would, so it shares our first bits.
        other = int.from_bytes(leaf_path, "big")
        if leaf_path == path or (depth and (other ^ path_int) >> (PATH_BITS - depth)):
            return False
        current = sha256(_leaf(leaf_path, leaf_value_hash))
    for depth_index in range(depth - 1, -1, -1):
        sibling = siblings[depth_index]
        if _bit(path_int, depth_index):
            current = sha256(_node(sibling, current))
        else:
            current = sha256(_node(current, sibling))
    return current == root
