"""In-memory Store for the simulator and unit tests: a sorted map with atomic batches.

It behaves exactly like ``LevelDBStore`` (same keys, same order, same errors). Its committed
contents live in a ``_Contents`` object that outlives any handle, which is how the simulator
crashes a node and restarts it "from its own store": it keeps the store (or calls
``reopen()``, which also cuts off batches the crashed node left open) and builds a new
NodeCore over it. ``snapshot()`` copies the committed contents into an independent store.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

from sortedcontainers import SortedDict

from node.storage.base import Op, Store


class _Contents:
    """The committed key/value pairs, shared by successive handles of one store."""

    __slots__ = ("items", "lock")

    def __init__(self, items: SortedDict | None = None) -> None:
        self.items: SortedDict = items if items is not None else SortedDict()
        self.lock = threading.RLock()


class MemoryStore(Store):
    def __init__(self, _contents: _Contents | None = None) -> None:
        self._contents = _contents if _contents is not None else _Contents()
        super().__init__(write_lock=self._contents.lock)

    def _read(self, key: bytes) -> bytes | None:
        with self._contents.lock:
            return self._contents.items.get(key)

    def _scan(self, start: bytes, stop: bytes) -> Iterator[tuple[bytes, bytes]]:
        # Materialized under the lock so the range is a snapshot, as a LevelDB iterator is.
        with self._contents.lock:
            items = self._contents.items
            keys = list(items.irange(start, stop, inclusive=(True, False)))
            pairs = [(key, items[key]) for key in keys]
        return iter(pairs)

    def _apply(self, ops: list[Op]) -> None:
        with self._contents.lock:
            items = self._contents.items
            for key, value in ops:
                if value is None:
                    items.pop(key, None)
                else:
                    items[key] = value

    def _close(self) -> None:
        pass  # the contents stay for reopen(); only this handle stops working

    def reopen(self) -> MemoryStore:
        """Close this handle and return a new one over the same committed contents.

        Like restarting a process on its LevelDB directory: whatever was committed is there,
        and batches still open on the old handle can no longer commit.
        """
        self.close()
        return MemoryStore(self._contents)

    def snapshot(self) -> MemoryStore:
        """An independent store holding a copy of the committed contents."""
        self._check_open()
        with self._contents.lock:
            return MemoryStore(_Contents(self._contents.items.copy()))

    copy = snapshot

    def __len__(self) -> int:
        """Number of raw keys (all families), for tests and metrics."""
        with self._contents.lock:
            return len(self._contents.items)
