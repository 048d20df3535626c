"""Store tests: one suite run against MemoryStore and LevelDBStore, plus per-backend checks.

The shared suite pins the observable behaviour (values, order, atomicity, errors); the
hypothesis test applies random batch sequences to both stores and a plain model and demands
identical contents; the subprocess tests kill a writer process and reopen its database.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import plyvel
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.hashing import sha256
from ledger.keys import KeyPair
from ledger.types import Block, BlockHeader, CommitCertificate, Receipt, Transaction, tx_root
from node.storage import LATEST_HEIGHT_META, LevelDBStore, MemoryStore, Store, StoreError, prefix_end
from node.storage.base import block_key

CHAIN_ID = "huzhu-test"
REPO_ROOT = Path(__file__).resolve().parent.parent
_KEY = KeyPair.from_seed(bytes(range(32)))


def make_block(height: int, variant: int = 0, tx_count: int = 2) -> Block:
    txs = tuple(
        Transaction.create(_KEY, CHAIN_ID, nonce=height * 100 + variant * 10 + i, kind="kv.set",
                           body={"key": f"k{height}.{variant}.{i}", "value": i})
        for i in range(tx_count)
    )
    header = BlockHeader(
        chain_id=CHAIN_ID, height=height, view=0, prev_hash=sha256(b"prev%d" % height),
        timestamp_ms=1_700_000_000_000 + height * 1000 + variant, proposer=0,
        tx_root=tx_root([tx.tx_id for tx in txs]), tx_count=len(txs),
        app_hash=sha256(b"app"), results_hash=sha256(b"results"),
    )
    return Block(header, txs)


def make_certificate(block: Block) -> CommitCertificate:
    return CommitCertificate.build(block.height, 0, block.block_hash,
                                   {replica: bytes([replica + 1]) * 64 for replica in range(3)})


def make_receipts(block: Block) -> list[Receipt]:
    return [Receipt(tx.tx_id, "ok" if i % 2 == 0 else "nonce_gap", {"index": i})
            for i, tx in enumerate(block.txs)]


# --- backends ----------------------------------------------------------------------------

class MemoryBackend:
    name = "memory"

    def __init__(self, directory: Path) -> None:
        del directory

    def open(self) -> Store:
        return MemoryStore()

    def reopen(self, store: Store) -> Store:
        assert isinstance(store, MemoryStore)
        return store.reopen()


class LevelDBBackend:
    name = "leveldb"

    def __init__(self, directory: Path) -> None:
        self.path = directory / "db"

    def open(self) -> Store:
        return LevelDBStore(self.path)

    def reopen(self, store: Store) -> Store:
        store.close()
        return LevelDBStore(self.path)


@pytest.fixture(params=[MemoryBackend, LevelDBBackend], ids=lambda cls: cls.name)
def backend(request, tmp_path):
    return request.param(tmp_path)


@pytest.fixture
def store(backend):
    opened = backend.open()
    yield opened
    opened.close()


def state_items(store: Store) -> list[tuple[bytes, bytes]]:
    return list(store.iterate_state())


# --- the shared suite --------------------------------------------------------------------

def test_empty_store(store):
    assert store.latest_height() == 0
    assert store.get_block(1) is None
    assert store.get_block_raw(1) is None
    assert store.get_certificate(1) is None
    assert store.get_receipts(1) is None
    assert store.get_height_by_hash(b"\x00" * 32) is None
    assert store.get_tx_location(b"\x00" * 32) is None
    assert store.get_state(b"a") is None
    assert store.get_meta("view") is None
    assert list(store.iterate_state()) == []
    assert list(store.iterate_wal()) == []


def test_blocks_by_height_hash_and_tx_index(store):
    first, second = make_block(1), make_block(2, tx_count=3)
    with store.batch() as batch:
        batch.put_block(first)
        batch.put_block(second)
    assert store.get_block(1) == first
    assert store.get_block(2) == second
    assert store.get_block_raw(2) == second.encode()
    assert store.get_height_by_hash(first.block_hash) == 1
    assert store.get_height_by_hash(second.block_hash) == 2
    for index, tx in enumerate(second.txs):
        assert store.get_tx_location(tx.tx_id) == (2, index)
    assert store.get_tx_location(first.txs[1].tx_id) == (1, 1)
    assert store.get_block(3) is None
    assert store.latest_height() == 2


def test_reads_of_nonsense_heights_return_none(store):
    with store.batch() as batch:
        batch.put_block(make_block(1))
    for height in (0, -1, 2**64, "1", None, 1.0):
        assert store.get_block(height) is None
        assert store.get_block_raw(height) is None
        assert store.get_certificate(height) is None
        assert store.get_receipts(height) is None
    assert store.get_height_by_hash("not bytes") is None
    assert store.get_tx_location(None) is None


def test_certificates_and_receipts(store):
    block = make_block(1)
    certificate, receipts = make_certificate(block), make_receipts(block)
    with store.batch() as batch:
        batch.put_block(block)
        batch.put_certificate(certificate)
        batch.put_receipts(1, receipts)
        batch.put_receipts(2, [])
    assert store.get_certificate(1) == certificate
    assert store.get_receipts(1) == receipts
    assert store.get_receipts(2) == []  # stored but empty is not the same as missing
    assert store.get_receipts(3) is None
    assert store.get_certificate(2) is None


def test_latest_height_is_the_highest_stored(store):
    with store.batch() as batch:
        batch.put_block(make_block(3))
    assert store.latest_height() == 3
    with store.batch() as batch:
        batch.put_block(make_block(1))  # catch-up may fill a gap below
    assert store.latest_height() == 3
    with store.batch() as batch:
        batch.put_block(make_block(5))
        batch.put_block(make_block(4))
    assert store.latest_height() == 5
    assert store.get_meta(LATEST_HEIGHT_META) == (5).to_bytes(8, "big")
    with pytest.raises(StoreError) as error:
        store.batch().put_meta(LATEST_HEIGHT_META, b"\x00" * 8)
    assert error.value.code == "reserved_meta"


def test_a_different_block_at_a_stored_height_is_refused(store):
    with store.batch() as batch:
        batch.put_block(make_block(1))
    with store.batch() as batch:
        batch.put_block(make_block(1))  # the same block again is harmless
        with pytest.raises(StoreError) as error:
            batch.put_block(make_block(1, variant=1))
        assert error.value.code == "block_conflict"
    batch = store.batch()
    batch.put_block(make_block(2))
    with pytest.raises(StoreError) as error:
        batch.put_block(make_block(2, variant=1))
    assert error.value.code == "block_conflict"
    assert store.get_block(1) == make_block(1)


def test_conflict_detected_at_commit_between_two_open_batches(store):
    early, late = store.batch(), store.batch()
    early.put_block(make_block(1))
    late.put_block(make_block(1, variant=1))
    late.put_state(b"k", b"v")
    early.commit()
    with pytest.raises(StoreError) as error:
        late.commit()
    assert error.value.code == "block_conflict"
    assert store.get_block(1) == make_block(1)
    assert store.get_state(b"k") is None  # nothing of the refused batch was applied


STATE_KEYS = [b"", b"\x00", b"a", b"a\x00", b"ab", b"a\xff", b"a\xff\xff", b"b", b"\xff", b"\xff\xff"]


def test_state_get_and_ordered_ranges(store):
    with store.batch() as batch:
        for key in reversed(STATE_KEYS):
            batch.put_state(key, b"v:" + key)
        # Neighbours in other families must never leak into state ranges.
        batch.put_meta("a", b"meta")
        batch.put_wal(b"a", b"wal")
    assert store.get_state(b"a\xff") == b"v:a\xff"
    assert store.get_state(b"zz") is None
    assert [key for key, _ in store.iterate_state()] == STATE_KEYS
    assert all(value == b"v:" + key for key, value in store.iterate_state())
    assert [k for k, _ in store.iterate_state(b"a", b"b")] == [b"a", b"a\x00", b"ab", b"a\xff", b"a\xff\xff"]
    assert [k for k, _ in store.iterate_state(b"a", prefix_end(b"a\x00"))] == [b"a", b"a\x00"]
    assert [k for k, _ in store.iterate_state(b"a\x01", b"a\xff")] == [b"ab"]
    assert [k for k, _ in store.iterate_state(b"a\xff", prefix_end(b"a\xff"))] == [b"a\xff", b"a\xff\xff"]
    assert [k for k, _ in store.iterate_state(b"b")] == [b"b", b"\xff", b"\xff\xff"]
    assert [k for k, _ in store.iterate_state(b"", b"\x00")] == [b""]
    assert [k for k, _ in store.iterate_state(b"\xff\xff")] == [b"\xff\xff"]
    # Empty ranges: start == stop, start > stop, and a gap with no keys.
    assert list(store.iterate_state(b"a", b"a")) == []
    assert list(store.iterate_state(b"b", b"a")) == []
    assert list(store.iterate_state(b"c", b"d")) == []
    assert list(store.iterate_state(b"\xff\xff\x00")) == []


def test_prefix_end():
    assert prefix_end(b"a") == b"b"
    assert prefix_end(b"a\xff") == b"b"
    assert prefix_end(b"a\x00") == b"a\x01"
    assert prefix_end(b"\xff\xff") is None
    assert prefix_end(b"") is None


def test_state_delete_and_op_order_within_a_batch(store):
    with store.batch() as batch:
        batch.put_state(b"gone", b"1")
        batch.put_state(b"kept", b"1")
        batch.put_state(b"twice", b"1")
    with store.batch() as batch:
        batch.delete_state(b"gone")
        batch.put_state(b"twice", b"2")
        batch.put_state(b"fresh", b"1")
        batch.delete_state(b"fresh")  # put then delete: absent
        batch.delete_state(b"kept")
        batch.put_state(b"kept", b"3")  # delete then put: present
        batch.delete_state(b"never-existed")
    assert state_items(store) == [(b"kept", b"3"), (b"twice", b"2")]


def test_meta(store):
    with store.batch() as batch:
        batch.put_meta("view", b"\x07")
        batch.put_meta("视图", b"unicode names work")
    with store.batch() as batch:
        batch.put_meta("view", b"\x08")
    assert store.get_meta("view") == b"\x08"
    assert store.get_meta("视图") == b"unicode names work"
    assert store.get_meta("missing") is None
    with pytest.raises(StoreError):
        store.batch().put_meta("", b"x")


def test_wal_put_delete_and_iterate_in_key_order(store):
    keys = [(n).to_bytes(8, "big") + phase for n in (300, 2, 17) for phase in (b"p", b"c")]
    with store.batch() as batch:
        for key in keys:
            batch.put_wal(key, b"record " + key)
        batch.put_state(b"\x00", b"state is not wal")
    with store.batch() as batch:
        batch.delete_wal((17).to_bytes(8, "big") + b"p")
    expected = sorted(key for key in keys if key != (17).to_bytes(8, "big") + b"p")
    assert [key for key, _ in store.iterate_wal()] == expected
    assert dict(store.iterate_wal())[(300).to_bytes(8, "big") + b"c"] == b"record " + (300).to_bytes(8, "big") + b"c"


def test_reads_do_not_see_an_uncommitted_batch(store):
    batch = store.batch()
    batch.put_state(b"k", b"v")
    batch.put_block(make_block(1))
    batch.put_wal(b"w", b"x")
    assert store.get_state(b"k") is None
    assert store.get_block(1) is None
    assert store.latest_height() == 0
    assert list(store.iterate_wal()) == []
    batch.commit()
    assert store.get_state(b"k") == b"v"
    assert store.latest_height() == 1


def test_context_manager_commits_on_success_and_discards_on_exception(store):
    with store.batch() as batch:
        batch.put_state(b"ok", b"1")
    assert store.get_state(b"ok") == b"1"
    with pytest.raises(RuntimeError):
        with store.batch() as batch:
            batch.put_state(b"bad", b"1")
            batch.put_block(make_block(1))
            raise RuntimeError("boom")
    assert store.get_state(b"bad") is None
    assert store.get_block(1) is None
    assert store.latest_height() == 0


def test_a_finished_batch_cannot_be_reused(store):
    committed = store.batch()
    committed.put_state(b"a", b"1")
    committed.commit()
    discarded = store.batch()
    discarded.put_state(b"b", b"1")
    discarded.discard()
    with store.batch() as exited:
        exited.put_state(b"c", b"1")
    for batch in (committed, discarded, exited):
        for use in (lambda b: b.commit(), lambda b: b.discard(),
                    lambda b: b.put_state(b"x", b"y"), lambda b: b.put_block(make_block(9)),
                    lambda b: b.delete_wal(b"x")):
            with pytest.raises(StoreError) as error:
                use(batch)
            assert error.value.code == "batch_finished"
    assert store.get_state(b"b") is None
    assert store.get_state(b"x") is None


def test_explicit_commit_inside_context_manager_is_not_repeated(store):
    with store.batch() as batch:
        batch.put_state(b"a", b"1")
        batch.commit()
    assert store.get_state(b"a") == b"1"


def test_values_must_be_bytes(store):
    batch = store.batch()
    with pytest.raises(TypeError):
        batch.put_state("text", b"v")
    with pytest.raises(TypeError):
        batch.put_wal(b"k", "text")
    with pytest.raises(StoreError) as error:
        batch.put_state(b"k" * 5000, b"v")
    assert error.value.code == "bad_key"
    assert len(batch) == 0


def test_a_range_is_a_snapshot_of_the_moment_it_was_asked_for(store):
    with store.batch() as batch:
        batch.put_state(b"a", b"1")
        batch.put_state(b"c", b"1")
    pairs = store.iterate_state()
    first = next(pairs)
    with store.batch() as batch:
        batch.put_state(b"b", b"new")
        batch.put_state(b"c", b"2")
    assert [first, *pairs] == [(b"a", b"1"), (b"c", b"1")]
    assert state_items(store) == [(b"a", b"1"), (b"b", b"new"), (b"c", b"2")]


def test_committed_batches_survive_reopen_and_failed_ones_leave_nothing(backend):
    store = backend.open()
    block = make_block(1)
    with store.batch() as batch:
        batch.put_block(block)
        batch.put_certificate(make_certificate(block))
        batch.put_receipts(1, make_receipts(block))
        batch.put_state(b"s", b"1")
        batch.put_meta("view", b"\x01")
        batch.put_wal(b"w", b"1")
    with pytest.raises(ValueError):
        with store.batch() as batch:
            batch.put_block(make_block(2))
            batch.put_state(b"s", b"2")
            batch.put_state(b"t", b"2")
            batch.delete_wal(b"w")
            raise ValueError("execution failed")
    left_open = store.batch()
    left_open.put_state(b"u", b"never committed")
    store = backend.reopen(store)
    try:
        assert store.get_block(1) == block
        assert store.get_height_by_hash(block.block_hash) == 1
        assert store.get_tx_location(block.txs[0].tx_id) == (1, 0)
        assert store.get_certificate(1) == make_certificate(block)
        assert store.get_receipts(1) == make_receipts(block)
        assert state_items(store) == [(b"s", b"1")]
        assert store.get_meta("view") == b"\x01"
        assert list(store.iterate_wal()) == [(b"w", b"1")]
        assert store.latest_height() == 1
        assert store.get_block(2) is None
        with pytest.raises(StoreError) as error:
            left_open.commit()  # a batch from before the restart is dead
        assert error.value.code == "closed"
    finally:
        store.close()


def test_closed_store_refuses_reads_writes_and_running_iterations(backend):
    store = backend.open()
    with store.batch() as batch:
        batch.put_state(b"a", b"1")
        batch.put_state(b"b", b"1")
    pairs = store.iterate_state()
    assert next(pairs) == (b"a", b"1")
    pending = store.batch()
    pending.put_state(b"c", b"1")
    store.close()
    store.close()  # idempotent
    assert store.closed
    for read in (lambda: store.get_state(b"a"), lambda: store.get_block(1),
                 lambda: store.latest_height(), lambda: list(store.iterate_wal()),
                 lambda: store.batch(), lambda: next(pairs), lambda: pending.commit()):
        with pytest.raises(StoreError) as error:
            read()
        assert error.value.code == "closed"


def test_corrupt_stored_values_raise_a_typed_error(store):
    block = make_block(1)
    with store.batch() as batch:
        batch.put_block(block)
        batch.put_certificate(make_certificate(block))
        batch.put_receipts(1, make_receipts(block))
    tampered = block.encode()[:-1]  # truncated: no longer msgpack
    # Tamper below the batch layer, as an attacker editing the files would.
    store._apply([(block_key(1), tampered), (b"c/" + (1).to_bytes(8, "big"), b"\xc1"),
                  (b"r/" + (1).to_bytes(8, "big"), b"\x93\x01\x02\x03")])
    assert store.get_block_raw(1) == tampered
    for read in (lambda: store.get_block(1), lambda: store.get_certificate(1),
                 lambda: store.get_receipts(1)):
        with pytest.raises(StoreError) as error:
            read()
        assert error.value.code == "corrupt"


def test_block_stored_at_the_wrong_height_is_corrupt(store):
    with store.batch() as batch:
        batch.put_block(make_block(1))
    store._apply([(block_key(2), make_block(1).encode())])
    with pytest.raises(StoreError) as error:
        store.get_block(2)
    assert error.value.code == "corrupt"


# --- both stores against a model ---------------------------------------------------------

POOL = {(height, variant): make_block(height, variant, tx_count=1 + variant)
        for height in range(1, 5) for variant in range(2)}
POOL_TX_IDS = sorted(tx.tx_id for block in POOL.values() for tx in block.txs)
META_NAMES = ["view", "checkpoint", "v"]

_keys = st.one_of(st.sampled_from(STATE_KEYS), st.binary(max_size=3))
_values = st.binary(max_size=8)
_op = st.one_of(
    st.tuples(st.just("put_state"), _keys, _values),
    st.tuples(st.just("delete_state"), _keys),
    st.tuples(st.just("put_meta"), st.sampled_from(META_NAMES), _values),
    st.tuples(st.just("put_wal"), _keys, _values),
    st.tuples(st.just("delete_wal"), _keys),
    st.tuples(st.just("block"), st.sampled_from(sorted(POOL))),
)
_batch = st.tuples(st.lists(_op, max_size=8), st.sampled_from(["commit", "raise", "discard"]))


class _Model:
    def __init__(self) -> None:
        self.state: dict[bytes, bytes] = {}
        self.wal: dict[bytes, bytes] = {}
        self.meta: dict[str, bytes] = {}
        self.blocks: dict[int, Block] = {}


class _Abort(Exception):
    pass


def _run_batch(store: Store, ops, ending: str) -> list[str]:
    """Apply one batch; returns the error codes seen, which must match between stores."""
    codes = []
    try:
        with store.batch() as batch:
            for op in ops:
                try:
                    if op[0] == "block":
                        block = POOL[op[1]]
                        batch.put_block(block)
                        batch.put_certificate(make_certificate(block))
                        batch.put_receipts(block.height, make_receipts(block))
                    else:
                        getattr(batch, op[0])(*op[1:])
                except StoreError as error:
                    codes.append(error.code)
            if ending == "raise":
                raise _Abort()
            if ending == "discard":
                batch.discard()
    except _Abort:
        pass
    return codes


def _apply_model(model: _Model, ops, ending: str) -> list[str]:
    codes, pending = [], _Model()
    pending.state, pending.wal = dict(model.state), dict(model.wal)
    pending.meta, pending.blocks = dict(model.meta), dict(model.blocks)
    for op in ops:
        kind = op[0]
        if kind == "block":
            block = POOL[op[1]]
            if block.height in pending.blocks and pending.blocks[block.height] != block:
                codes.append("block_conflict")
            else:
                pending.blocks[block.height] = block
        elif kind == "put_state":
            pending.state[op[1]] = op[2]
        elif kind == "delete_state":
            pending.state.pop(op[1], None)
        elif kind == "put_wal":
            pending.wal[op[1]] = op[2]
        elif kind == "delete_wal":
            pending.wal.pop(op[1], None)
        elif kind == "put_meta":
            pending.meta[op[1]] = op[2]
    if ending == "commit":
        model.state, model.wal, model.meta, model.blocks = (
            pending.state, pending.wal, pending.meta, pending.blocks)
    return codes


def _observe(store: Store) -> dict:
    return {
        "state": list(store.iterate_state()),
        "wal": list(store.iterate_wal()),
        "meta": {name: store.get_meta(name) for name in META_NAMES},
        "blocks": {h: store.get_block(h) for h in range(1, 5)},
        "certificates": {h: store.get_certificate(h) for h in range(1, 5)},
        "receipts": {h: store.get_receipts(h) for h in range(1, 5)},
        "hashes": {block.block_hash: store.get_height_by_hash(block.block_hash)
                   for block in POOL.values()},
        "txs": {tx_id: store.get_tx_location(tx_id) for tx_id in POOL_TX_IDS},
        "latest": store.latest_height(),
    }


def _expected(model: _Model) -> dict:
    stored = model.blocks
    return {
        "state": sorted(model.state.items()),
        "wal": sorted(model.wal.items()),
        "meta": {name: model.meta.get(name) for name in META_NAMES},
        "blocks": {h: stored.get(h) for h in range(1, 5)},
        "certificates": {h: make_certificate(stored[h]) if h in stored else None for h in range(1, 5)},
        "receipts": {h: make_receipts(stored[h]) if h in stored else None for h in range(1, 5)},
        "hashes": {block.block_hash: (block.height if stored.get(block.height) == block else None)
                   for block in POOL.values()},
        "txs": {tx.tx_id: (block.height, index) if stored.get(block.height) == block else None
                for block in POOL.values() for index, tx in enumerate(block.txs)},
        "latest": max(stored, default=0),
    }


@settings(max_examples=100, deadline=None)
@given(batches=st.lists(_batch, max_size=6),
       ranges=st.lists(st.tuples(_keys, st.one_of(st.none(), _keys)), max_size=4))
def test_random_batches_give_identical_contents_in_both_stores(batches, ranges):
    model = _Model()
    with tempfile.TemporaryDirectory() as directory:
        memory, leveldb = MemoryStore(), LevelDBStore(Path(directory) / "db")
        try:
            for ops, ending in batches:
                expected_codes = _apply_model(model, ops, ending)
                assert _run_batch(memory, ops, ending) == expected_codes
                assert _run_batch(leveldb, ops, ending) == expected_codes
            expected = _expected(model)
            assert _observe(memory) == expected
            assert _observe(leveldb) == expected
            for start, stop in ranges:
                want = [(k, v) for k, v in sorted(model.state.items())
                        if k >= start and (stop is None or k < stop)]
                assert list(memory.iterate_state(start, stop)) == want
                assert list(leveldb.iterate_state(start, stop)) == want
            leveldb = _reopen_leveldb(leveldb)
            assert _observe(leveldb) == expected
        finally:
            memory.close()
            leveldb.close()


def _reopen_leveldb(store: LevelDBStore) -> LevelDBStore:
    store.close()
    return LevelDBStore(store.path)


# --- MemoryStore only ----------------------------------------------------------------------

def test_memory_snapshot_is_independent():
    store = MemoryStore()
    with store.batch() as batch:
        batch.put_state(b"a", b"1")
        batch.put_block(make_block(1))
    copy = store.snapshot()
    with store.batch() as batch:
        batch.put_state(b"a", b"2")
        batch.put_block(make_block(2))
    with copy.batch() as batch:
        batch.put_state(b"b", b"copy only")
    assert state_items(store) == [(b"a", b"2")]
    assert state_items(copy) == [(b"a", b"1"), (b"b", b"copy only")]
    assert copy.latest_height() == 1 and store.latest_height() == 2


def test_memory_store_object_survives_a_simulated_crash():
    """The simulator keeps the store and drops the node: only committed batches remain."""
    store = MemoryStore()
    with store.batch() as batch:
        batch.put_wal(b"vote", b"prepare")
    in_flight = store.batch()
    in_flight.put_wal(b"vote2", b"commit")
    in_flight.put_block(make_block(1))
    del in_flight  # the crashed node never committed it
    assert list(store.iterate_wal()) == [(b"vote", b"prepare")]
    assert store.latest_height() == 0
    restarted = store.reopen()
    assert list(restarted.iterate_wal()) == [(b"vote", b"prepare")]
    assert store.closed and not restarted.closed


# --- LevelDBStore only ---------------------------------------------------------------------

def test_leveldb_open_twice_is_a_locked_error(tmp_path):
    store = LevelDBStore(tmp_path / "db")
    try:
        with pytest.raises(StoreError) as error:
            LevelDBStore(tmp_path / "db")
        assert error.value.code == "locked"
    finally:
        store.close()
    LevelDBStore(tmp_path / "db").close()  # free again once closed


def test_leveldb_missing_directory_without_create(tmp_path):
    with pytest.raises(StoreError) as error:
        LevelDBStore(tmp_path / "absent", create_if_missing=False)
    assert error.value.code == "open_failed"


def test_leveldb_tampered_file_contents_are_seen_after_reopen(tmp_path):
    block = make_block(1)
    with LevelDBStore(tmp_path / "db") as store:
        with store.batch() as batch:
            batch.put_block(block)
    db = plyvel.DB(str(tmp_path / "db"))
    db.put(block_key(1), block.encode().replace(b"kv.set", b"kv.sex"))
    db.close()
    with LevelDBStore(tmp_path / "db") as store:
        assert store.get_block_raw(1) != block.encode()
        tampered = store.get_block(1)  # still decodes, but no longer hashes to the original
        assert tampered.txs[0].kind == "kv.sex"
        assert store.get_height_by_hash(block.block_hash) == 1


_CHILD = r"""
import dataclasses, os, signal, sys
from ledger.types import Block
from node.storage import LevelDBStore

path, block_hex, how = sys.argv[1], sys.argv[2], sys.argv[3]
block = Block.decode(bytes.fromhex(block_hex))
store = LevelDBStore(path)
with store.batch() as batch:
    batch.put_block(block)
    batch.put_state(b"member/1", b"enrolled")
    batch.put_wal(b"vote", b"commit")
    batch.put_meta("view", b"\x02")
never = store.batch()
never.put_state(b"member/2", b"uncommitted")
never.put_block(Block(dataclasses.replace(block.header, height=2, tx_count=0), ()))
print("committed", flush=True)
sys.stdin.readline()  # hold the database open until the parent has tried to open it
if how == "sigkill":
    os.kill(os.getpid(), signal.SIGKILL)
os._exit(3)
"""


@pytest.mark.parametrize("how", ["sigkill", "os_exit"])
def test_leveldb_reopens_after_the_writer_process_is_killed(tmp_path, how):
    path = tmp_path / "db"
    block = make_block(1)
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(path), block.encode().hex(), how],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
    )
    try:
        assert child.stdout.readline() == b"committed\n", child.stderr.read().decode()
        with pytest.raises(StoreError) as error:
            LevelDBStore(path)  # the live child holds the lock
        assert error.value.code == "locked"
        child.stdin.write(b"go\n")
        child.stdin.flush()
        child.wait(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == (-signal.SIGKILL if how == "sigkill" else 3)
    with LevelDBStore(path) as store:
        assert store.get_block(1) == block
        assert store.get_tx_location(block.txs[1].tx_id) == (1, 1)
        assert store.get_state(b"member/1") == b"enrolled"
        assert store.get_state(b"member/2") is None
        assert list(store.iterate_wal()) == [(b"vote", b"commit")]
        assert store.get_meta("view") == b"\x02"
        assert store.latest_height() == 1
        assert store.get_block(2) is None
