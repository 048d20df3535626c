"""SHA-256 helpers: the only hash in huzhu."""

from __future__ import annotations

import hashlib
from typing import Any

from ledger import codec

HASH_BYTES = 32
ZERO_HASH = bytes(HASH_BYTES)


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def hash_value(value: Any) -> bytes:
    """SHA-256 of the canonical encoding of a plain value."""
    return sha256(codec.encode(value))


def is_hash(value: Any) -> bool:
    return isinstance(value, bytes) and len(value) == HASH_BYTES
