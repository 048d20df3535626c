"""RFC 6962 / RFC 9162 Merkle trees: roots, inclusion proofs and consistency proofs.

Leaves are raw entries, hashed as ``H(0x00 || entry)``; interior nodes are
``H(0x01 || left || right)``; the empty tree's root is ``H("")``. The tree over n leaves splits
at the largest power of two below n (RFC 9162 section 2.1.1). Building it bottom-up, pairing
neighbours and carrying a lone last node up a level unchanged, gives exactly the same tree, so
roots and proofs here are computed level by level in O(n) hashes and never by recursing on
slices. Proof generation raises ``ValueError`` for arguments that have no proof (a caller's
bug); verification follows RFC 9162 sections 2.1.3.2 and 2.1.4.2 step by step and returns
False, never raises, on any malformed input, since proofs arrive from peers and clients.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ledger.hashing import HASH_BYTES, sha256

EMPTY_ROOT = sha256(b"")

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"
# Sizes are bounded to 64 bits, so each verification loop runs at most 64 steps (every step
# halves sn < 2**64): a longer proof is rejected before any hashing, which bounds what a
# hostile proof can cost. A consistency proof may carry one hash more than its 64 steps.
MAX_TREE_SIZE = 2**64 - 1
MAX_PROOF_HASHES = 65


def leaf_hash(leaf: bytes) -> bytes:
    return sha256(_LEAF_PREFIX + leaf)


def node_hash(left: bytes, right: bytes) -> bytes:
    return sha256(_NODE_PREFIX + left + right)


# --- building ---------------------------------------------------------------------------

def _parent_level(level: list[bytes]) -> list[bytes]:
    """Pair neighbours; a lone last node moves up unchanged (RFC 6962's left-full tree)."""
    parents = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
    if len(level) % 2:
        parents.append(level[-1])
    return parents


def _levels(hashes: list[bytes]) -> list[list[bytes]]:
    """Every level of the tree over ``hashes``, leaves first, the root's level last.

    Node i of level L covers leaves [i * 2**L, min((i + 1) * 2**L, n)) and its hash is the
    RFC 6962 tree hash of exactly that range.
    """
    levels = [hashes]
    while len(levels[-1]) > 1:
        levels.append(_parent_level(levels[-1]))
    return levels


def root_from_leaf_hashes(hashes: Sequence[bytes]) -> bytes:
    """The tree hash over leaves already hashed with ``leaf_hash``."""
    level = list(hashes)
    if not level:
        return EMPTY_ROOT
    while len(level) > 1:
        level = _parent_level(level)
    return level[0]


def root(leaves: Sequence[bytes]) -> bytes:
    """MTH(leaves), the RFC 6962 tree hash of the raw entries ``leaves``."""
    return root_from_leaf_hashes([leaf_hash(leaf) for leaf in leaves])


def _check_index(index: Any, size: int, what: str) -> None:
    if type(index) is not int or not 0 <= index < size:
        raise ValueError(f"{what} {index!r} is not in [0, {size})")


def inclusion_proof_from_leaf_hashes(hashes: Sequence[bytes], index: int) -> list[bytes]:
    """The audit path PATH(index, D[n]) (RFC 9162 section 2.1.3.1), deepest sibling first."""
    hashes = list(hashes)
    _check_index(index, len(hashes), "leaf index")
    proof = []
    position = index
    for level in _levels(hashes)[:-1]:
        sibling = position ^ 1
        # A lone last node has no sibling on this level: it is carried up unchanged.
        if sibling < len(level):
            proof.append(level[sibling])
        position >>= 1
    return proof


def inclusion_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """The audit path proving ``leaves[index]`` is in the tree over ``leaves``."""
    return inclusion_proof_from_leaf_hashes([leaf_hash(leaf) for leaf in leaves], index)


def _subtree_hash(levels: list[list[bytes]], start: int, end: int) -> bytes:
    """MTH(D[start:end]) for a range that is one node of the tree (see ``_levels``)."""
    height = (end - start - 1).bit_length()
    assert start % (1 << height) == 0, "range is not a node of the tree"
    return levels[height][start >> height]


def consistency_proof_from_leaf_hashes(hashes: Sequence[bytes], old_size: int) -> list[bytes]:
    """PROOF(old_size, D[n]) (RFC 9162 section 2.1.4.1) over hashed leaves.

    Empty when ``old_size`` is 0 or n: the empty tree and the tree itself need no proof.
    """
    hashes = list(hashes)
    new_size = len(hashes)
    if type(old_size) is not int or not 0 <= old_size <= new_size:
        raise ValueError(f"old size {old_size!r} is not in [0, {new_size}]")
    if old_size in (0, new_size):
        return []
    levels = _levels(hashes)
    # SUBPROOF(m, D[start:end], complete) unrolled into a loop: each step descends into one
    # half and records the other half's hash; the recorded hashes are emitted deepest first.
    upper: list[bytes] = []
    start, end, m, complete = 0, new_size, old_size, True
    while m != end - start:
        k = 1 << ((end - start - 1).bit_length() - 1)  # largest power of two < end - start
        if m <= k:
            upper.append(_subtree_hash(levels, start + k, end))
            end = start + k
        else:
            upper.append(_subtree_hash(levels, start, start + k))
            start, m, complete = start + k, m - k, False
    proof = [] if complete else [_subtree_hash(levels, start, end)]
    proof.extend(reversed(upper))
    return proof


def consistency_proof(leaves: Sequence[bytes], old_size: int) -> list[bytes]:
    """Proof that the tree over ``leaves[:old_size]`` is a prefix of the tree over ``leaves``."""
    return consistency_proof_from_leaf_hashes([leaf_hash(leaf) for leaf in leaves], old_size)


# --- verifying --------------------------------------------------------------------------

def _is_hash(value: Any) -> bool:
    return type(value) is bytes and len(value) == HASH_BYTES


def _is_size(value: Any) -> bool:
    return type(value) is int and 0 <= value <= MAX_TREE_SIZE


def _proof_hashes(proof: Any) -> list[bytes] | None:
    """``proof`` as a list of hashes, or None when it is not a list/tuple of 32-byte strings."""
    if not isinstance(proof, (list, tuple)) or len(proof) > MAX_PROOF_HASHES:
        return None
    if not all(_is_hash(item) for item in proof):
        return None
    return list(proof)


def verify_inclusion_hash(leaf_hash: bytes, index: int, size: int, proof: Any,
                          root: bytes) -> bool:
    """RFC 9162 section 2.1.3.2: does ``proof`` place ``leaf_hash`` at ``index`` of ``root``?"""
    path = _proof_hashes(proof)
    if path is None or not (_is_hash(leaf_hash) and _is_hash(root)):
        return False
    if not (_is_size(index) and _is_size(size)) or index >= size:
        return False
    fn, sn = index, size - 1
    r = leaf_hash
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Any, root: bytes) -> bool:
    """Does ``proof`` show the raw entry ``leaf`` at ``index`` in the tree of ``size`` and ``root``?"""
    if not isinstance(leaf, bytes):
        return False
    return verify_inclusion_hash(leaf_hash(leaf), index, size, proof, root)


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes,
                       proof: Any) -> bool:
    """RFC 9162 section 2.1.4.2: is the tree (old_size, old_root) a prefix of (new_size, new_root)?

    Outside the RFC's 0 < old_size < new_size: equal sizes need equal roots and an empty
    proof; the empty tree (old_size 0, whose root must be ``EMPTY_ROOT``) is a prefix of every
    tree, with an empty proof.
    """
    path = _proof_hashes(proof)
    if path is None or not (_is_hash(old_root) and _is_hash(new_root)):
        return False
    if not (_is_size(old_size) and _is_size(new_size)) or old_size > new_size:
        return False
    if old_size == new_size:
        return not path and old_root == new_root
    if old_size == 0:
        return not path and old_root == EMPTY_ROOT
    # 1. An empty proof fails.
    if not path:
        return False
    # 2. When old_size is a power of two the old root is itself a node of the new tree.
    if old_size & (old_size - 1) == 0:
        path = [old_root] + path
    # 3., 4.
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # 5.
    fr = sr = path[0]
    # 6.
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    # 7.
    return fr == old_root and sr == new_root and sn == 0
