"""KVApp: deterministic execution, nonces, state root, writes, queries with proofs."""

from __future__ import annotations

import pytest

from ledger import merkle
from ledger.application import QueryError
from ledger.hashing import sha256
from ledger.keys import KeyPair
from ledger.types import BlockHeader, Transaction
from node.kvapp import KV_PREFIX, KVApp
from node.storage import MemoryStore

CHAIN = "kv-test"
ALICE = KeyPair.from_seed(b"\x0a" * 32)


def header(height: int) -> BlockHeader:
    zero = bytes(32)
    return BlockHeader(CHAIN, height, 0, zero, 1000 + height, 0, zero, 0, zero, zero)


def tx(nonce: int, kind: str = "kv.set", **body) -> Transaction:
    return Transaction.create(ALICE, CHAIN, nonce, kind, body)


def run(app: KVApp, store: MemoryStore, txs, height: int = 1):
    receipts = app.execute_block(header(height), txs)
    root = app.commit()
    with store.batch() as batch:
        for key, value in app.take_writes():
            batch.delete_state(key) if value is None else batch.put_state(key, value)
    return receipts, root


def test_execution_nonces_and_failed_receipts():
    store = MemoryStore()
    app = KVApp({"name": "kv"}, CHAIN, store)
    empty_root = app.commit()
    assert empty_root == merkle.EMPTY_ROOT
    receipts, root = run(app, store, [tx(0, key="a", value=b"1"), tx(0, key="b", value=b"2"),
                                      tx(1, key="c"), tx(2, "kv.delete", key="a")])
    assert [r.code for r in receipts] == ["ok", "bad_nonce", "bad_body", "ok"]
    assert store.get_state(KV_PREFIX + b"a") is None  # set then deleted
    assert app.query(f"nonce/{ALICE.public_key.hex()}")[0] == 3  # bad_body spent its nonce
    assert root != empty_root


def test_same_blocks_same_root_and_restart_from_store():
    stores = [MemoryStore(), MemoryStore()]
    apps = [KVApp({"name": "kv"}, CHAIN, store) for store in stores]
    blocks = [[tx(0, key="x", value=b"1")], [tx(1, key="y", value=b"2"), tx(2, key="x", value=b"3")]]
    roots = [[run(app, store, block, h + 1)[1] for h, block in enumerate(blocks)]
             for app, store in zip(apps, stores)]
    assert roots[0] == roots[1]
    reopened = KVApp({"name": "kv"}, CHAIN, stores[0])
    assert reopened.commit() == roots[0][-1]
    assert reopened.query("kv/x")[0] == b"3"


def test_check_tx():
    app = KVApp({"name": "kv", "max_value_bytes": 4}, CHAIN, MemoryStore())
    assert app.check_tx(tx(0, key="a", value=b"1234")).ok
    assert app.check_tx(tx(0, key="a", value=b"12345")).code == "bad_value"
    assert app.check_tx(tx(0, "kv.other", key="a")).code == "unknown_kind"
    assert app.check_tx(tx(5000, key="a", value=b"")).code == "nonce_too_high"
    assert app.check_tx(Transaction.create(ALICE, "elsewhere", 0, "kv.set",
                                           {"key": "a", "value": b""})).code == "wrong_chain"


def test_query_with_inclusion_proof():
    store = MemoryStore()
    app = KVApp({"name": "kv"}, CHAIN, store)
    _, root = run(app, store, [tx(0, key="a", value=b"1"), tx(1, key="b", value=b"2")])
    value, proof = app.query("kv/b", prove=True)
    assert value == b"2"
    assert merkle.verify_inclusion(bytes.fromhex(proof["leaf"]), proof["index"], proof["size"],
                                   [bytes.fromhex(p) for p in proof["proof"]], root)
    with pytest.raises(QueryError) as error:
        app.query("kv/missing")
    assert error.value.code == "not_found"
    with pytest.raises(QueryError):
        app.query("other/path")
    assert sha256(b"") == merkle.EMPTY_ROOT
