"""ledger.merkle against the published RFC 6962 vectors and a literal reference implementation.

The vectors (8 leaves, the root of every prefix, inclusion and consistency proofs) are the
certificate-transparency reference test data, as published in transparency-dev/merkle
proof/verify_test.go (`leaves`, `roots`, `inclusionProofs`, `consistencyProofs`; that file's
inclusion vectors give 1-based leaf numbers, converted to 0-based indexes here). The reference
implementation below is RFC 9162 section 2.1 transcribed: MTH, PATH and SUBPROOF over slices.
"""

from __future__ import annotations

import functools
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger import merkle
from ledger.hashing import sha256

# --- published vectors ------------------------------------------------------------------

LEAVES = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    b"\x50\x51\x52\x53\x54\x55\x56\x57",
    b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
]

ROOTS = [  # ROOTS[i] is the root of LEAVES[: i + 1]
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]

INCLUSION_VECTORS = [  # (index, size, proof)
    (0, 1, []),
    (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (1, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]

CONSISTENCY_VECTORS = [  # (old_size, new_size, proof)
    (1, 1, []),
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
    (6, 7, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
]

SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")


def hexes(proof: list[bytes]) -> list[str]:
    return [item.hex() for item in proof]


def unhex(proof: list[str]) -> list[bytes]:
    return [bytes.fromhex(item) for item in proof]


def test_empty_tree_root_is_hash_of_nothing():
    assert merkle.EMPTY_ROOT.hex() == (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    assert merkle.root([]) == merkle.EMPTY_ROOT
    assert merkle.root_from_leaf_hashes([]) == merkle.EMPTY_ROOT


@pytest.mark.parametrize("size", range(1, 9))
def test_published_roots(size):
    assert merkle.root(LEAVES[:size]).hex() == ROOTS[size - 1]


@pytest.mark.parametrize("index, size, proof", INCLUSION_VECTORS)
def test_published_inclusion_proofs(index, size, proof):
    leaves = LEAVES[:size]
    assert hexes(merkle.inclusion_proof(leaves, index)) == proof
    root = bytes.fromhex(ROOTS[size - 1])
    assert merkle.verify_inclusion(LEAVES[index], index, size, unhex(proof), root)
    for probe in corrupt_inclusion(index, size, unhex(proof), root, merkle.leaf_hash(LEAVES[index])):
        assert not merkle.verify_inclusion_hash(*probe[:5]), probe[5]


@pytest.mark.parametrize("old_size, new_size, proof", CONSISTENCY_VECTORS)
def test_published_consistency_proofs(old_size, new_size, proof):
    assert hexes(merkle.consistency_proof(LEAVES[:new_size], old_size)) == proof
    old_root, new_root = bytes.fromhex(ROOTS[old_size - 1]), bytes.fromhex(ROOTS[new_size - 1])
    assert merkle.verify_consistency(old_size, new_size, old_root, new_root, unhex(proof))
    if proof:
        for probe in corrupt_consistency(old_size, new_size, old_root, new_root, unhex(proof)):
            assert not merkle.verify_consistency(*probe[:5]), probe[5]


# --- tampering probes (after transparency-dev/merkle's corruptInclusionProof and
# corruptConsistencyProof) ---------------------------------------------------------------

def flip(proof: list[bytes], position: int, mask: int) -> list[bytes]:
    changed = list(proof)
    changed[position] = bytes([changed[position][0] ^ mask]) + changed[position][1:]
    return changed


def corrupt_inclusion(index, size, proof, root, leaf_hash):
    """(leaf_hash, index, size, proof, root, why) tuples that must all fail to verify."""
    probes = [
        (leaf_hash, index - 1, size, proof, root, "index - 1"),
        (leaf_hash, index + 1, size, proof, root, "index + 1"),
        (leaf_hash, index ^ 2, size, proof, root, "index ^ 2"),
        (leaf_hash, index, size * 2, proof, root, "size * 2"),
        (leaf_hash, index, size // 2, proof, root, "size / 2"),
        (sha256(b"wrong leaf"), index, size, proof, root, "wrong leaf"),
        (leaf_hash, index, size, proof, merkle.EMPTY_ROOT, "empty root"),
        (leaf_hash, index, size, proof, SOME_HASH, "random root"),
        (leaf_hash, index, size, proof + [b""], root, "trailing garbage"),
        (leaf_hash, index, size, proof + [root], root, "trailing root"),
        (leaf_hash, index, size, [b""] + proof, root, "preceding garbage"),
        (leaf_hash, index, size, [root] + proof, root, "preceding root"),
    ]
    for position in range(len(proof)):
        probes.append((leaf_hash, index, size, flip(proof, position, 8), root,
                       f"proof[{position}] bit 3"))
    if proof:
        probes.append((leaf_hash, index, size, proof[:-1], root, "removed last"))
    if len(proof) > 1:
        probes.append((leaf_hash, index, size, [proof[0], SOME_HASH] + proof[1:], root,
                       "inserted component"))
    return probes


def corrupt_consistency(old_size, new_size, old_root, new_root, proof):
    """(old_size, new_size, old_root, new_root, proof, why) tuples that must all fail."""
    probes = [
        (old_size - 1, new_size, old_root, new_root, proof, "old_size - 1"),
        (old_size + 1, new_size, old_root, new_root, proof, "old_size + 1"),
        (old_size ^ 2, new_size, old_root, new_root, proof, "old_size ^ 2"),
        (old_size, new_size * 2, old_root, new_root, proof, "new_size * 2"),
        (old_size, new_size // 2, old_root, new_root, proof, "new_size / 2"),
        (old_size, new_size, SOME_HASH, new_root, proof, "wrong old root"),
        (old_size, new_size, old_root, SOME_HASH, proof, "wrong new root"),
        (old_size, new_size, new_root, old_root, proof, "swapped roots"),
        (old_size, new_size, old_root, new_root, [], "empty proof"),
        (old_size, new_size, old_root, new_root, proof + [b""], "trailing garbage"),
        (old_size, new_size, old_root, new_root, proof + [old_root], "trailing old root"),
        (old_size, new_size, old_root, new_root, proof + [new_root], "trailing new root"),
        (old_size, new_size, old_root, new_root, [b""] + proof, "preceding garbage"),
        (old_size, new_size, old_root, new_root, [old_root] + proof, "preceding old root"),
        (old_size, new_size, old_root, new_root, [new_root] + proof, "preceding new root"),
        (old_size, new_size, old_root, new_root, [proof[0]] + proof, "preceding proof[0]"),
        (old_size, new_size, old_root, new_root, proof[:-1], "truncated"),
    ]
    for position in range(len(proof)):
        probes.append((old_size, new_size, old_root, new_root, flip(proof, position, 16),
                       f"proof[{position}] bit 4"))
    return probes


# --- the RFC's definitions, literally ---------------------------------------------------

def largest_power_of_two_below(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


@functools.lru_cache(maxsize=None)
def ref_mth(entries: tuple[bytes, ...]) -> bytes:
    n = len(entries)
    if n == 0:
        return sha256(b"")
    if n == 1:
        return sha256(b"\x00" + entries[0])
    k = largest_power_of_two_below(n)
    return sha256(b"\x01" + ref_mth(entries[:k]) + ref_mth(entries[k:]))


def ref_path(m: int, entries: tuple[bytes, ...]) -> list[bytes]:
    n = len(entries)
    if n == 1:
        return []
    k = largest_power_of_two_below(n)
    if m < k:
        return ref_path(m, entries[:k]) + [ref_mth(entries[k:])]
    return ref_path(m - k, entries[k:]) + [ref_mth(entries[:k])]


def ref_subproof(m: int, entries: tuple[bytes, ...], complete: bool) -> list[bytes]:
    n = len(entries)
    if m == n:
        return [] if complete else [ref_mth(entries)]
    k = largest_power_of_two_below(n)
    if m <= k:
        return ref_subproof(m, entries[:k], complete) + [ref_mth(entries[k:])]
    return ref_subproof(m - k, entries[k:], False) + [ref_mth(entries[:k])]


def ref_proof(m: int, entries: tuple[bytes, ...]) -> list[bytes]:
    return ref_subproof(m, entries, True) if 0 < m < len(entries) else []


ENTRIES = tuple(b"entry-%d" % i for i in range(300))


def test_reference_matches_published_vectors():
    for size in range(1, 9):
        assert ref_mth(tuple(LEAVES[:size])).hex() == ROOTS[size - 1]
    for index, size, proof in INCLUSION_VECTORS:
        assert hexes(ref_path(index, tuple(LEAVES[:size]))) == proof
    for old_size, new_size, proof in CONSISTENCY_VECTORS:
        assert hexes(ref_proof(old_size, tuple(LEAVES[:new_size]))) == proof


@pytest.mark.parametrize("first_size", range(0, 301, 50))
def test_roots_and_every_inclusion_proof_match_reference(first_size):
    for size in range(first_size, min(first_size + 50, 301)):
        entries = ENTRIES[:size]
        hashes = [merkle.leaf_hash(entry) for entry in entries]
        expected_root = ref_mth(entries)
        assert merkle.root(entries) == expected_root
        assert merkle.root_from_leaf_hashes(hashes) == expected_root
        for index in range(size):
            proof = merkle.inclusion_proof_from_leaf_hashes(hashes, index)
            assert proof == ref_path(index, entries), (size, index)
            assert merkle.verify_inclusion(entries[index], index, size, proof, expected_root)
            assert merkle.verify_inclusion_hash(hashes[index], index, size, proof, expected_root)
            # The entry at another index, or another entry at this index, must not verify.
            other = (index + 1) % size
            if other != index:
                assert not merkle.verify_inclusion(entries[other], index, size, proof,
                                                   expected_root)
                assert not merkle.verify_inclusion(entries[index], other, size, proof,
                                                   expected_root)


def test_raw_and_hash_level_inclusion_proofs_agree():
    entries = ENTRIES[:37]
    hashes = [merkle.leaf_hash(entry) for entry in entries]
    for index in range(37):
        assert merkle.inclusion_proof(entries, index) == \
            merkle.inclusion_proof_from_leaf_hashes(hashes, index)


def check_consistency(old_size: int, new_size: int) -> None:
    entries = ENTRIES[:new_size]
    proof = merkle.consistency_proof(entries, old_size)
    assert proof == ref_proof(old_size, entries), (old_size, new_size)
    old_root, new_root = ref_mth(ENTRIES[:old_size]), ref_mth(entries)
    assert merkle.verify_consistency(old_size, new_size, old_root, new_root, proof)


def test_consistency_every_pair_up_to_64():
    for new_size in range(0, 65):
        for old_size in range(0, new_size + 1):
            check_consistency(old_size, new_size)


def test_consistency_random_pairs_up_to_300():
    rng = random.Random(6962)  # seeded: the same pairs on every run
    for _ in range(300):
        new_size = rng.randint(1, 300)
        check_consistency(rng.randint(0, new_size), new_size)


def test_large_tree_matches_reference():
    entries = tuple(b"tx-%d" % i for i in range(5003))
    hashes = [merkle.leaf_hash(entry) for entry in entries]
    expected_root = ref_mth(entries)
    assert merkle.root(entries) == expected_root
    for index in (0, 1, 2047, 2048, 4095, 4096, 5000, 5002):
        proof = merkle.inclusion_proof_from_leaf_hashes(hashes, index)
        assert proof == ref_path(index, entries)
        assert merkle.verify_inclusion(entries[index], index, 5003, proof, expected_root)
    for old_size in (1, 3, 1024, 4096, 4097, 5002):
        proof = merkle.consistency_proof_from_leaf_hashes(hashes, old_size)
        assert proof == ref_proof(old_size, entries)
        assert merkle.verify_consistency(old_size, 5003, ref_mth(entries[:old_size]),
                                         expected_root, proof)


# --- tampered, misplaced and malformed proofs -------------------------------------------

def test_tampered_inclusion_proofs_rejected_for_small_trees():
    for size in range(1, 41):
        entries = ENTRIES[:size]
        tree_root = ref_mth(entries)
        for index in range(size):
            proof = ref_path(index, entries)
            for probe in corrupt_inclusion(index, size, proof, tree_root,
                                           merkle.leaf_hash(entries[index])):
                assert not merkle.verify_inclusion_hash(*probe[:5]), (size, index, probe[5])


def test_tampered_consistency_proofs_rejected_for_small_trees():
    for new_size in range(2, 25):
        for old_size in range(1, new_size):
            proof = ref_proof(old_size, ENTRIES[:new_size])
            old_root, new_root = ref_mth(ENTRIES[:old_size]), ref_mth(ENTRIES[:new_size])
            for probe in corrupt_consistency(old_size, new_size, old_root, new_root, proof):
                assert not merkle.verify_consistency(*probe[:5]), (old_size, new_size, probe[5])


def test_consistency_edge_cases():
    root5 = ref_mth(ENTRIES[:5])
    # Equal sizes: equal roots and an empty proof only.
    assert merkle.verify_consistency(5, 5, root5, root5, [])
    assert not merkle.verify_consistency(5, 5, root5, SOME_HASH, [])
    assert not merkle.verify_consistency(5, 5, root5, root5, [root5])
    # The empty tree is a prefix of every tree, with an empty proof, and has one root.
    assert merkle.verify_consistency(0, 5, merkle.EMPTY_ROOT, root5, [])
    assert merkle.verify_consistency(0, 0, merkle.EMPTY_ROOT, merkle.EMPTY_ROOT, [])
    assert not merkle.verify_consistency(0, 5, SOME_HASH, root5, [])
    assert not merkle.verify_consistency(0, 5, merkle.EMPTY_ROOT, root5, [merkle.EMPTY_ROOT])
    # Trees do not shrink.
    assert not merkle.verify_consistency(5, 4, root5, ref_mth(ENTRIES[:4]), [])
    assert not merkle.verify_consistency(2, 1, root5, root5, [root5])
    # A non-empty gap needs a non-empty proof.
    assert not merkle.verify_consistency(1, 2, ref_mth(ENTRIES[:1]), ref_mth(ENTRIES[:2]), [])


def test_single_entry_tree():
    entry = b"data"
    leaf = merkle.leaf_hash(entry)
    assert merkle.root([entry]) == leaf
    assert merkle.inclusion_proof([entry], 0) == []
    assert merkle.verify_inclusion(entry, 0, 1, [], leaf)
    assert not merkle.verify_inclusion(entry, 0, 1, [], b"")
    assert not merkle.verify_inclusion_hash(b"", 0, 1, [], leaf)
    for index, size in ((0, 0), (1, 0), (1, 1), (2, 1)):
        assert not merkle.verify_inclusion(entry, index, size, [], leaf)
        assert not merkle.verify_inclusion(entry, index, size, [], merkle.EMPTY_ROOT)


def test_leaf_and_node_hashes_are_domain_separated():
    # An interior node's preimage is never taken for a leaf: the prefixes differ.
    left, right = merkle.leaf_hash(b"a"), merkle.leaf_hash(b"b")
    assert merkle.root([b"a", b"b"]) == merkle.node_hash(left, right)
    assert merkle.root([left + right]) != merkle.root([b"a", b"b"])


MALFORMED_SCALARS = [None, -1, True, 1.0, "1", b"\x01", [], 2**64, 2**70]
ROOT3 = ref_mth(ENTRIES[:3])
PROOF3_2 = ref_path(2, ENTRIES[:3])


def test_verify_inclusion_rejects_malformed_arguments_without_raising():
    good = (ENTRIES[2], 2, 3, PROOF3_2, ROOT3)
    assert merkle.verify_inclusion(*good)
    assert merkle.verify_inclusion(ENTRIES[2], 2, 3, tuple(PROOF3_2), ROOT3)
    bad_proofs = [None, b"", PROOF3_2[0], [PROOF3_2[0][:31]], [PROOF3_2[0] + b"\x00"],
                  [bytearray(PROOF3_2[0])], [PROOF3_2[0].hex()], [None], {0: PROOF3_2[0]},
                  [SOME_HASH] * 100]
    for position, values in enumerate([
        [None, "entry", 7, bytearray(ENTRIES[2])],
        MALFORMED_SCALARS + [3, 4],
        MALFORMED_SCALARS + [0, 2],
        bad_proofs,
        [None, b"", ROOT3[:31], ROOT3 + b"\x00", ROOT3.hex(), bytearray(ROOT3)],
    ]):
        for value in values:
            args = list(good)
            args[position] = value
            assert merkle.verify_inclusion(*args) is False, (position, value)


def test_verify_consistency_rejects_malformed_arguments_without_raising():
    old_root, new_root = ref_mth(ENTRIES[:2]), ref_mth(ENTRIES[:5])
    proof = ref_proof(2, ENTRIES[:5])
    good = (2, 5, old_root, new_root, proof)
    assert merkle.verify_consistency(*good)
    for position, values in enumerate([
        MALFORMED_SCALARS + [5, 6],
        MALFORMED_SCALARS + [1, 2],
        [None, b"", old_root[:31], old_root + b"\x00", old_root.hex()],
        [None, b"", new_root[:31], new_root + b"\x00", new_root.hex()],
        [None, b"", proof[0], [proof[0][:31]], [None], "proof", [SOME_HASH] * 100],
    ]):
        for value in values:
            args = list(good)
            args[position] = value
            assert merkle.verify_consistency(*args) is False, (position, value)


def test_huge_sizes_are_handled_without_raising():
    top = merkle.MAX_TREE_SIZE
    assert not merkle.verify_inclusion(b"x", top - 1, top, [SOME_HASH] * 64, SOME_HASH)
    assert not merkle.verify_inclusion(b"x", 0, top + 1, [SOME_HASH] * 64, SOME_HASH)
    assert not merkle.verify_consistency(top - 1, top, SOME_HASH, SOME_HASH, [SOME_HASH] * 65)
    assert not merkle.verify_consistency(3, top + 1, SOME_HASH, SOME_HASH, [SOME_HASH] * 3)


anything = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=4),
    st.binary(max_size=40), st.lists(st.binary(min_size=31, max_size=33), max_size=70),
)


@given(anything, anything, anything, anything, anything)
def test_verification_never_raises(a, b, c, d, e):
    assert merkle.verify_inclusion(a, b, c, d, e) in (True, False)
    assert merkle.verify_inclusion_hash(a, b, c, d, e) in (True, False)
    assert merkle.verify_consistency(a, b, c, d, e) in (True, False)


@given(st.integers(2, 70), st.data())
def test_random_hash_proofs_do_not_verify(size, data):
    # Proofs of the right shape made of unrelated hashes never verify.
    index = data.draw(st.integers(0, size - 1))
    length = len(ref_path(index, ENTRIES[:size]))
    proof = data.draw(st.lists(st.binary(min_size=32, max_size=32), min_size=length,
                               max_size=length))
    assert not merkle.verify_inclusion(ENTRIES[index], index, size, proof, ref_mth(ENTRIES[:size]))


def test_proof_generation_rejects_bad_arguments():
    with pytest.raises(ValueError):
        merkle.inclusion_proof([], 0)
    for index in (-1, 3, True, None, 1.0):
        with pytest.raises(ValueError):
            merkle.inclusion_proof(ENTRIES[:3], index)
    for old_size in (-1, 4, None, True):
        with pytest.raises(ValueError):
            merkle.consistency_proof(ENTRIES[:3], old_size)
    assert merkle.consistency_proof(ENTRIES[:3], 0) == []
    assert merkle.consistency_proof(ENTRIES[:3], 3) == []
