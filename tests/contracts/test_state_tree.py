"""The state tree: roots match a from-scratch reference, proofs verify and fail when tampered,
the journal rolls back without a trace, and a restart over the persisted writes finds the
same root."""

from __future__ import annotations

import random

import pytest
from contract_helpers import DictReader
from hypothesis import given
from hypothesis import strategies as st

from contracts.state import EMPTY_HASH, TREE_PREFIX, State, _position_key, verify_proof
from ledger.hashing import sha256


def reference_root(entries: dict[bytes, bytes]) -> bytes:
    """The compact sparse Merkle root computed from scratch, straight from the definition."""
    items = sorted((int.from_bytes(sha256(k), "big"), sha256(k), sha256(v))
                   for k, v in entries.items())

    def build(depth: int, items: list) -> bytes:
        if not items:
            return EMPTY_HASH
        if len(items) == 1:
            return sha256(b"\x00" + items[0][1] + items[0][2])
        left = [item for item in items if not (item[0] >> (255 - depth)) & 1]
        right = [item for item in items if (item[0] >> (255 - depth)) & 1]
        return sha256(b"\x01" + build(depth + 1, left) + build(depth + 1, right))

    return build(0, items)


def reachable_positions(reader: DictReader) -> set[bytes]:
    found = set()

    def walk(depth: int, path: int) -> None:
        key = _position_key(depth, path)
        content = reader.data.get(key)
        if content is None:
            return
        found.add(key)
        if content[0] == 1:
            walk(depth + 1, path)
            walk(depth + 1, path | (1 << (255 - depth)))

    walk(0, 0)
    return found


def test_empty_state_has_the_empty_root() -> None:
    state = State(DictReader())
    assert state.commit_root() == EMPTY_HASH
    proof = state.prove(b"anything")
    assert verify_proof(EMPTY_HASH, b"anything", None, proof)
    assert not verify_proof(EMPTY_HASH, b"anything", b"v", proof)


def test_single_entry_root_is_its_leaf() -> None:
    state = State(DictReader())
    state.set(b"k", b"v")
    assert state.commit_root() == sha256(b"\x00" + sha256(b"k") + sha256(b"v"))


@given(st.lists(st.tuples(st.integers(0, 60), st.one_of(st.none(), st.binary(max_size=8))),
                max_size=120),
       st.integers(0, 2**32))
def test_incremental_root_matches_reference_and_keeps_no_stale_nodes(ops, seed) -> None:
    rng = random.Random(seed)
    reader = DictReader()
    state = State(reader)
    model: dict[bytes, bytes] = {}
    for index, (number, value) in enumerate(ops):
        key = b"k/" + str(number).encode()
        if value is None:
            state.delete(key)
            model.pop(key, None)
        else:
            state.set(key, value)
            model[key] = value
        if rng.random() < 0.3 or index == len(ops) - 1:
            assert state.commit_root() == reference_root(model)
            if rng.random() < 0.5:
                reader.apply(state.take_writes())
                state = State(reader)
    state.commit_root()
    reader.apply(state.take_writes())
    stored = {key for key in reader.data if key.startswith(TREE_PREFIX)}
    assert stored == reachable_positions(reader)
    assert {key for key in reader.data if not key.startswith(TREE_PREFIX)} == set(model)


def test_root_is_independent_of_write_order() -> None:
    entries = {f"key{i}".encode(): f"value{i}".encode() for i in range(200)}
    roots = set()
    for seed in range(3):
        order = list(entries)
        random.Random(seed).shuffle(order)
        state = State(DictReader())
        for batch_start in range(0, len(order), 37):
            for key in order[batch_start:batch_start + 37]:
                state.set(key, entries[key])
            state.commit_root()
        roots.add(state.root())
    assert roots == {reference_root(entries)}


def _populated(count: int = 300) -> tuple[State, DictReader, dict[bytes, bytes]]:
    reader = DictReader()
    state = State(reader)
    model = {f"m/{i}".encode(): f"v{i}".encode() for i in range(count)}
    for key, value in model.items():
        state.set(key, value)
    state.commit_root()
    reader.apply(state.take_writes())
    return State(reader), reader, model


def test_proofs_of_presence_and_absence_verify() -> None:
    state, _, model = _populated()
    root = state.root()
    for key in list(model)[:50]:
        proof = state.prove(key)
        assert verify_proof(root, key, model[key], proof)
        assert not verify_proof(root, key, model[key] + b"x", proof)
        assert not verify_proof(root, key, None, proof)
    for number in range(50):
        key = f"absent/{number}".encode()
        proof = state.prove(key)
        assert verify_proof(root, key, None, proof)
        assert not verify_proof(root, key, b"v0", proof)


def test_tampered_proofs_fail() -> None:
    state, _, model = _populated()
    root = state.root()
    key = b"m/7"
    proof = state.prove(key)
    assert verify_proof(root, key, model[key], proof)
    assert proof["siblings"], "a 300-entry tree has interior nodes"
    # A flipped bit in any sibling.
    for index in range(len(proof["siblings"])):
        bad = dict(proof, siblings=list(proof["siblings"]))
        raw = bytearray(bytes.fromhex(bad["siblings"][index]))
        raw[0] ^= 1
        bad["siblings"][index] = raw.hex()
        assert not verify_proof(root, key, model[key], bad)
    # A sibling dropped or added, another root, another key, a leaf swapped in.
    assert not verify_proof(root, key, model[key], dict(proof, siblings=proof["siblings"][1:]))
    assert not verify_proof(root, key, model[key],
                            dict(proof, siblings=proof["siblings"] + [EMPTY_HASH.hex()]))
    assert not verify_proof(sha256(b"other root"), key, model[key], proof)
    assert not verify_proof(root, b"m/8", model[key], proof)
    other = state.prove(b"m/8")
    assert not verify_proof(root, key, model[key], dict(proof, leaf=other["leaf"]))
    # An absence proof built from someone else's leaf does not prove a present key absent.
    assert not verify_proof(root, key, None, other)
    # Garbage never raises.
    for junk in (None, {}, {"siblings": "x", "leaf": None}, {"siblings": [1], "leaf": None},
                 {"siblings": [], "leaf": {"path": "zz", "value_hash": "00"}}):
        assert not verify_proof(root, key, model[key], junk)
    assert not verify_proof(b"short", key, model[key], proof)


def test_rollback_leaves_no_trace() -> None:
    state, _, model = _populated(50)
    root = state.root()
    state.begin()
    state.set(b"m/1", b"changed")
    state.set(b"new", b"value")
    state.delete(b"m/2")
    assert state.get(b"m/1") == b"changed" and state.get(b"m/2") is None
    state.rollback()
    assert state.get(b"m/1") == model[b"m/1"] and state.get(b"new") is None
    assert state.get(b"m/2") == model[b"m/2"]
    assert not state.uncommitted
    assert state.commit_root() == root
    assert state.take_writes() == []


def test_rollback_keeps_earlier_writes_of_the_block() -> None:
    state, _, model = _populated(50)
    state.set(b"m/1", b"first")
    state.begin()
    state.set(b"m/1", b"second")
    state.rollback()
    assert state.get(b"m/1") == b"first"
    model[b"m/1"] = b"first"
    assert state.commit_root() == reference_root(model)


def test_range_reads_merge_store_and_pending_writes() -> None:
    reader = DictReader()
    state = State(reader, ordered_prefixes=[b"q/"])
    for number in (1, 3, 5, 7):
        state.set(b"q/" + bytes([number]), b"stored")
    state.commit_root()
    reader.apply(state.take_writes())
    state = State(reader, ordered_prefixes=[b"q/"])
    state.set(b"q/" + bytes([4]), b"new")
    state.delete(b"q/" + bytes([5]))
    state.set(b"q/" + bytes([7]), b"changed")
    state.begin()
    state.set(b"q/" + bytes([2]), b"rolled back")
    state.rollback()
    got = [(key[2], value) for key, value in state.iterate(b"q/", b"q/\x07")]
    assert got == [(1, b"stored"), (3, b"stored"), (4, b"new")]
    assert [key[2] for key, _ in state.iterate(b"q/", b"q0")] == [1, 3, 4, 7]
    assert state.first(b"q/\x06", b"q0") == (b"q/\x07", b"changed")


def test_restart_over_persisted_writes_gives_same_root_and_proofs() -> None:
    state, reader, model = _populated(120)
    root = state.root()
    state.set(b"m/1", b"after")
    state.delete(b"m/3")
    new_root = state.commit_root()
    reader.apply(state.take_writes())
    restarted = State(reader)
    assert restarted.root() == new_root != root
    assert restarted.commit_root() == new_root
    assert verify_proof(new_root, b"m/1", b"after", restarted.prove(b"m/1"))
    assert verify_proof(new_root, b"m/3", None, restarted.prove(b"m/3"))


def test_take_writes_is_sorted_and_requires_a_commit() -> None:
    state = State(DictReader())
    state.set(b"b", b"1")
    state.set(b"a", b"2")
    with pytest.raises(AssertionError):
        state.take_writes()
    state.commit_root()
    writes = state.take_writes()
    assert writes == sorted(writes)
    assert (b"a", b"2") in writes and (b"b", b"1") in writes
    assert any(key.startswith(TREE_PREFIX) for key, _ in writes)
