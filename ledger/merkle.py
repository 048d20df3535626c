"""RFC 6962 / RFC 9162 Merkle trees (placeholder root; proofs are being added)."""

from __future__ import annotations

from collections.abc import Sequence

from ledger.hashing import sha256

EMPTY_ROOT = sha256(b"")


def leaf_hash(leaf: bytes) -> bytes:
    return sha256(b"\x00" + leaf)


def node_hash(left: bytes, right: bytes) -> bytes:
    return sha256(b"\x01" + left + right)


def _root_of_hashes(hashes: list[bytes]) -> bytes:
    if not hashes:
        return EMPTY_ROOT
    while len(hashes) > 1:
        paired = [node_hash(hashes[i], hashes[i + 1]) for i in range(0, len(hashes) - 1, 2)]
        if len(hashes) % 2:
            paired.append(hashes[-1])
        hashes = paired
    return hashes[0]


def root(leaves: Sequence[bytes]) -> bytes:
    return _root_of_hashes([leaf_hash(leaf) for leaf in leaves])
