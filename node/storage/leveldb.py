"""LevelDB Store (plyvel): one database directory per node, every commit one synced WriteBatch.

LevelDB allows one open handle per directory; opening a directory that another handle or
process holds raises ``StoreError("locked")`` instead of plyvel's generic IOError. After a
``kill -9`` the lock is released by the kernel and LevelDB replays its own log on open, so
every batch whose ``commit`` returned is there.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import plyvel

from node.storage.base import Op, Store, StoreError


BLOOM_FILTER_BITS = 10  # per key: about 1% false positives
BLOCK_CACHE_BYTES = 64 * 1024 * 1024  # LevelDB's own cache of uncompressed blocks
# A larger memtable means fewer level-0 files and compactions; its log is replayed on open.
WRITE_BUFFER_BYTES = 32 * 1024 * 1024


class LevelDBStore(Store):
    def __init__(self, path: str | os.PathLike[str], create_if_missing: bool = True) -> None:
        super().__init__()
        self.path = Path(path)
        try:
            # Bloom filters make lookups of absent keys cheap (every new tx id is checked
            # against the committed ones; the state tree reads keys that do not exist yet).
            # No compression: hashes, keys and signatures do not compress, snappy only costs.
            self._db = plyvel.DB(str(self.path), create_if_missing=create_if_missing,
                                 bloom_filter_bits=BLOOM_FILTER_BITS,
                                 lru_cache_size=BLOCK_CACHE_BYTES,
                                 write_buffer_size=WRITE_BUFFER_BYTES, compression=None,
                                 paranoid_checks=True)
        except plyvel.CorruptionError as exc:
            raise StoreError("corrupt", f"{self.path} is damaged: {_message(exc)}") from None
        except plyvel.IOError as exc:
            message = _message(exc)
            if "lock" in message.lower():
                raise StoreError(
                    "locked", f"{self.path} is in use by another store or process ({message})"
                ) from None
            raise StoreError("open_failed", f"cannot open {self.path}: {message}") from None
        except plyvel.Error as exc:
            raise StoreError("open_failed", f"cannot open {self.path}: {_message(exc)}") from None

    def _read(self, key: bytes) -> bytes | None:
        # Every read checks LevelDB's block checksums: a flipped byte on disk is reported as
        # StoreError("corrupt") instead of being decoded and passed on.
        try:
            return self._db.get(key, verify_checksums=True)
        except plyvel.CorruptionError as exc:
            raise StoreError("corrupt", f"checksum mismatch reading {key[:16]!r}: "
                                        f"{_message(exc)}") from None

    def _scan(self, start: bytes, stop: bytes) -> Iterator[tuple[bytes, bytes]]:
        # Created now: a plyvel iterator reads from an implicit snapshot taken here.
        iterator = self._db.iterator(start=start, stop=stop, verify_checksums=True)
        return self._guard(iterator)

    def _guard(self, iterator: Iterator[tuple[bytes, bytes]]) -> Iterator[tuple[bytes, bytes]]:
        try:
            yield from iterator
        except plyvel.CorruptionError as exc:
            raise StoreError("corrupt", f"checksum mismatch in a scan: {_message(exc)}") from None
        except RuntimeError:
            # plyvel raises RuntimeError when the DB was closed under the iterator.
            self._check_open()
            raise

    def _apply(self, ops: list[Op]) -> None:
        batch = self._db.write_batch(sync=True)
        for key, value in ops:
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
        batch.write()

    def _close(self) -> None:
        self._db.close()


def _message(exc: Exception) -> str:
    text = exc.args[0] if exc.args else str(exc)
    if isinstance(text, bytes):
        return text.decode("utf-8", "replace")
    return str(text)
