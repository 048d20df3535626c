"""Node storage: the Store interface with LevelDB (plyvel) and in-memory implementations."""

from node.storage.base import LATEST_HEIGHT_META, Store, StoreError, WriteBatch, prefix_end
from node.storage.leveldb import LevelDBStore
from node.storage.memory import MemoryStore

__all__ = [
    "LATEST_HEIGHT_META",
    "LevelDBStore",
    "MemoryStore",
    "Store",
    "StoreError",
    "WriteBatch",
    "prefix_end",
]
