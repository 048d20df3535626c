"""Mempool bounds, dedup by id and (sender, nonce), nonce-ordered fair selection, forwarding."""

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
    skip = {items[0].tx_id, items[1].tx_id}  # in flight: the next nonces come after them
    assert pool.select(2, 10**6, skip=skip.__contains__) == (items[2], items[3])
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


def test_only_a_senders_next_nonces_are_selected_in_nonce_order():
    pool = Mempool(max_txs=20, max_bytes=10**6)
    for nonce in (2, 0, 3, 5):
        assert add(pool, tx(0, nonce)) == "ok"
    assert pool.select(10, 10**6) == (tx(0, 0),)  # nonce 1 is missing: 2, 3 and 5 wait
    assert pool.ready_count == 1
    assert add(pool, tx(0, 1)) == "ok"
    assert pool.select(10, 10**6) == tuple(tx(0, n) for n in range(4))
    assert pool.ready_count == 4
    in_flight = {tx(0, 0).tx_id, tx(0, 1).tx_id}
    assert pool.select(10, 10**6, skip=in_flight.__contains__) == (tx(0, 2), tx(0, 3))
    # In flight after a transaction that is not: offering past it would reorder the sender.
    assert pool.select(10, 10**6, skip={tx(0, 1).tx_id}.__contains__) == (tx(0, 0),)


def test_committed_nonces_move_the_senders_start():
    pool = Mempool(max_txs=20, max_bytes=10**6)
    for nonce in (1, 2, 4):
        add(pool, tx(0, nonce))
    assert pool.select(10, 10**6) == ()  # nonce 0 is not here (sent elsewhere, or in flight)
    pool.set_next_nonces({KEYS[0].public_key: 1})
    assert pool.select(10, 10**6) == (tx(0, 1), tx(0, 2))
    pool.remove([tx(0, 1).tx_id, tx(0, 2).tx_id])
    pool.set_next_nonces({KEYS[0].public_key: 3})
    assert pool.select(10, 10**6) == () and pool.ready_count == 0
    pool.set_next_nonces({KEYS[0].public_key: 5})  # nonce 4 was spent by another tx
    assert len(pool) == 0  # a spent nonce leaves the pool


def test_each_sender_gets_a_fair_share_of_a_block_while_others_wait():
    pool = Mempool(max_txs=100, max_bytes=10**6)
    for nonce in range(10):
        add(pool, tx(0, nonce))
    for sender in (1, 2):
        for nonce in range(2):
            add(pool, tx(sender, nonce))
    block = pool.select(6, 10**6)
    assert [item.sender for item in block].count(KEYS[0].public_key) == 2
    assert block == (tx(0, 0), tx(1, 0), tx(2, 0), tx(0, 1), tx(1, 1), tx(2, 1))
    alone = pool.select(10, 10**6)  # what the others leave goes to the one still waiting
    assert [item.sender for item in alone].count(KEYS[0].public_key) == 6


def test_per_sender_quota_and_nonce_gap_are_bounded():
    pool = Mempool(max_txs=100, max_bytes=10**6, max_txs_per_sender=3, max_nonce_ahead=5)
    for nonce in (0, 1, 2):
        assert add(pool, tx(0, nonce)) == "ok"
    assert add(pool, tx(0, 3)) == "sender_quota"
    assert add(pool, tx(1, 6)) == "nonce_too_high"  # more than 5 past its next nonce, 0
    assert add(pool, tx(1, 5)) == "ok"
    pool.remove([tx(0, 0).tx_id])
    assert add(pool, tx(0, 3)) == "ok"


def test_senders_served_by_a_block_go_to_the_back_of_the_line():
    pool = Mempool(max_txs=100, max_bytes=10**6)
    for sender in range(3):
        for nonce in range(3):
            add(pool, tx(sender, nonce))
    first = pool.select(2, 10**6)
    assert first == (tx(0, 0), tx(1, 0))
    pool.remove([item.tx_id for item in first])
    pool.set_next_nonces({KEYS[0].public_key: 1, KEYS[1].public_key: 1})
    assert pool.select(2, 10**6) == (tx(2, 0), tx(0, 1))  # sender 2 waited longest
