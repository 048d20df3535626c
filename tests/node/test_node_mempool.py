"""Mempool bounds, dedup by id and (sender, nonce), FIFO selection, forwarding order."""

from __future__ import annotations

from ledger.keys import KeyPair
from ledger.types import Transaction
from node.mempool import Mempool

KEYS = [KeyPair.from_seed(bytes([0x20 + i]) * 32) for i in range(3)]


def tx(sender: int, nonce: int) -> Transaction:
    return Transaction.create(KEYS[sender], "mp", nonce, "kv.set", {"key": "k", "value": b"v"})


def add(pool: Mempool, item: Transaction, tick: int = -1) -> str:
    return pool.add(item, item.tx_id, len(item.encode()), tick)


def test_bounds_and_dedup():
    pool = Mempool(max_txs=3, max_bytes=10**6)
    assert add(pool, tx(0, 0)) == "ok"
    assert add(pool, tx(0, 0)) == "duplicate"
    rival = Transaction.create(KEYS[0], "mp", 0, "kv.set", {"key": "other", "value": b""})
    assert add(pool, rival) == "nonce_taken"
    assert add(pool, tx(0, 1)) == "ok"
    assert add(pool, tx(1, 0)) == "ok"
    assert add(pool, tx(2, 0)) == "mempool_full"
    assert len(pool) == 3
    pool.remove([tx(0, 0).tx_id])
    assert add(pool, rival) == "ok"  # the slot is free again
    size = len(tx(0, 0).encode())
    small = Mempool(max_txs=100, max_bytes=size)
    assert add(small, tx(0, 0)) == "ok"
    assert add(small, tx(0, 1)) == "mempool_full"
    assert small.total_bytes == size


def test_fifo_selection_skips_and_limits():
    pool = Mempool(max_txs=10, max_bytes=10**6)
    items = [tx(0, n) for n in range(5)]
    for item in items:
        add(pool, item)
    assert pool.select(3, 10**6) == tuple(items[:3])
    skip = {items[0].tx_id, items[2].tx_id}
    assert pool.select(2, 10**6, skip=skip.__contains__) == (items[1], items[3])
    size = len(items[0].encode())
    assert pool.select(10, 2 * size) == tuple(items[:2])
    assert pool.of_senders([KEYS[0].public_key, KEYS[1].public_key]) == items


def test_forwarding_is_least_recently_forwarded_first():
    pool = Mempool(max_txs=10, max_bytes=10**6)
    a, b, c = tx(0, 0), tx(0, 1), tx(0, 2)
    add(pool, a, tick=0)
    add(pool, b, tick=5)
    add(pool, c, tick=9)
    assert pool.due_for_forwarding(10, 10, 10) == [(a, 0)]
    assert pool.due_for_forwarding(15, 10, 10) == [(b, 5)]
    assert pool.due_for_forwarding(15, 10, 10) == []
    pool.mark_all_unforwarded()
    assert pool.due_for_forwarding(16, 10, 2) == [(a, -1), (b, -1)]
    assert pool.due_for_forwarding(16, 10, 2) == [(c, -1)]
