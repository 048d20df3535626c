"""NodeCore: four nodes over MemoryStores commit kv transactions submitted to any node."""

from __future__ import annotations

from node_harness import CHAIN_ID, NodeCluster, client_key, kv_tx

from consensus.messages import BlockRequest, BlockResponse, decode_message, encode_message
from ledger.keys import KeyPair
from ledger.types import Block, Transaction
from node.core import NodeParams
from node.kvapp import KV_PREFIX
from node.storage.base import block_key


def test_txs_submitted_to_any_node_commit_everywhere_identically():
    cluster = NodeCluster()
    submitted = []
    for number in range(12):
        # one client per node, so forwarding order cannot reorder a client's nonces
        node = number % 4
        tx = kv_tx(client_key(node), number // 4, f"key{number}", bytes([number]))
        result = cluster.submit(node, tx)
        assert result.ok and result.code == "ok" and result.tx_id == tx.tx_id
        submitted.append(tx.tx_id)
    cluster.deliver_all()
    cluster.tick(20)
    heights = cluster.heights()
    assert len(set(heights)) == 1 and heights[0] >= 1
    committed_ids = [tx_id for entry in cluster.committed[0] for tx_id in entry.tx_ids]
    assert sorted(committed_ids) == sorted(submitted)
    # identical blocks, certificates' blocks and app hashes at every height on every node
    for height in range(1, heights[0] + 1):
        blocks = {store.get_block_raw(height) for store in cluster.stores}
        assert len(blocks) == 1
        hashes = {entry.app_hash for node in cluster.committed for entry in node if entry.height == height}
        assert len(hashes) == 1
        certificate = cluster.stores[1].get_certificate(height)
        certificate.verify(CHAIN_ID, [key.public_key for key in cluster.keys])
    statuses = [core.status() for core in cluster.cores]
    assert len({status["app_hash"] for status in statuses}) == 1
    assert len({status["last_block_hash"] for status in statuses}) == 1
    assert all(status["mempool_txs"] == 0 for status in statuses)
    for store in cluster.stores:
        assert store.get_state(KV_PREFIX + b"key5") == bytes([5])
    # receipts: every transaction succeeded
    for height in range(1, heights[0] + 1):
        for receipt in cluster.stores[2].get_receipts(height):
            assert receipt.ok


def test_committed_blocks_chain_by_hash_and_carry_pipelined_state():
    cluster = NodeCluster()
    client = client_key()
    for nonce in range(3):
        cluster.submit(0, kv_tx(client, nonce, "k"))
        cluster.tick(3)
    cluster.tick(10)
    store = cluster.stores[3]
    height = store.latest_height()
    assert height >= 3
    previous = cluster.genesis.genesis_hash
    for h in range(1, height + 1):
        block = store.get_block(h)
        assert block.header.prev_hash == previous
        previous = block.block_hash
    # header h carries the state root after h - 2
    app_hashes = {entry.height: entry.app_hash for entry in cluster.committed[3]}
    for h in range(3, height + 1):
        assert store.get_block(h).header.app_hash == app_hashes[h - 2]


def test_submit_rejections():
    cluster = NodeCluster()
    client = client_key()
    tx = kv_tx(client, 0, "a")
    assert cluster.submit(1, tx).ok
    again = cluster.submit(1, tx)
    assert (again.ok, again.code, again.category) == (False, "duplicate", "duplicate")
    other_value = kv_tx(client, 0, "a", b"other")
    taken = cluster.submit(1, other_value)
    assert (taken.code, taken.category) == ("nonce_taken", "duplicate")
    forged = Transaction(CHAIN_ID, client.public_key, 1, "kv.set", {"key": "b", "value": b"x"},
                         b"\x01" * 64)
    bad = cluster.submit(1, forged)
    assert (bad.code, bad.category) == ("bad_signature", "bad_signature")
    foreign = kv_tx(client, 1, "b", chain_id="other-chain")
    assert cluster.submit(1, foreign).code == "wrong_chain"
    result, out = cluster.core(1).submit_tx(b"\x93garbage", cluster.now_ms)
    assert (result.ok, result.category) == (False, "malformed") and not out.send
    bad_body = Transaction.create(client, CHAIN_ID, 1, "kv.set", {"key": "b"})
    rejected = cluster.submit(1, bad_body)
    assert (rejected.code, rejected.category) == ("bad_body", "rejected")
    cluster.deliver_all()
    cluster.tick(10)
    # after commit the same bytes are refused as already committed, a stale nonce by the app
    assert cluster.submit(2, tx).code == "already_committed"
    assert cluster.submit(2, kv_tx(client, 0, "z")).code == "nonce_too_low"


def test_mempool_full_is_refused_with_mempool_full():
    cluster = NodeCluster(params=NodeParams(mempool_max_txs=3))
    client = client_key()
    results = [cluster.submit(2, kv_tx(client, nonce, f"k{nonce}")) for nonce in range(4)]
    assert [result.ok for result in results] == [True, True, True, False]
    assert (results[3].code, results[3].category) == ("mempool_full", "full")
    assert cluster.core(2).status()["mempool_txs"] == 3
    cluster.deliver_all()
    cluster.tick(10)
    assert cluster.core(2).status()["mempool_txs"] == 0
    assert cluster.submit(2, kv_tx(client, 3, "k3")).ok


def test_mempool_byte_bound():
    client = client_key()
    size = len(kv_tx(client, 0, "k0").encode())
    cluster = NodeCluster(params=NodeParams(mempool_max_bytes=2 * size + size // 2))
    results = [cluster.submit(0, kv_tx(client, nonce, f"k{nonce}")) for nonce in range(3)]
    assert [result.code for result in results] == ["ok", "ok", "mempool_full"]
    assert cluster.core(0).status()["mempool_bytes"] == 2 * size


def test_a_transaction_queued_ahead_waits_for_its_predecessor_instead_of_failing():
    cluster = NodeCluster()
    client = client_key()
    # nonce 1 is admitted (clients may queue ahead) but nonce 0 has not arrived yet
    assert cluster.submit(0, kv_tx(client, 1, "ahead")).ok
    cluster.tick(10)
    store = cluster.stores[0]
    receipts = [receipt for h in range(1, store.latest_height() + 1)
                for receipt in store.get_receipts(h)]
    assert receipts == [] and cluster.core(0).mempool_contains(kv_tx(client, 1, "ahead").tx_id)
    assert cluster.submit(0, kv_tx(client, 0, "first")).ok
    cluster.tick(10)
    receipts = [receipt for h in range(1, store.latest_height() + 1)
                for receipt in store.get_receipts(h)]
    assert [receipt.code for receipt in receipts] == ["ok", "ok"]
    assert store.get_state(KV_PREFIX + b"ahead") == b"v"


def test_waiting_txs_of_the_same_sender_are_rechecked_after_commit():
    cluster = NodeCluster()
    client = client_key()
    first = kv_tx(client, 0, "a")
    cluster.submit(0, first)
    # the same nonce, different body, waits at node 3 (it never saw the first)
    rival = kv_tx(client, 0, "b")
    result, _ = cluster.core(3).submit_tx(rival.encode(), cluster.now_ms)  # not forwarded
    assert result.ok
    cluster.deliver_all()
    cluster.tick(10)
    # node 3 dropped its rival once nonce 0 was spent
    assert not cluster.core(3).mempool_contains(rival.tx_id)
    assert cluster.core(3).status()["stats"].get("mempool_rechecked_out") == 1


def test_restart_from_store_continues_the_chain():
    cluster = NodeCluster()
    client = client_key()
    for nonce in range(4):
        cluster.submit(nonce % 4, kv_tx(client, nonce, f"k{nonce}"))
    cluster.tick(10)
    before = cluster.heights()
    cluster.crash(1)
    cluster.boot(1)
    assert cluster.core(1).status()["height"] == before[1]
    for nonce in range(4, 8):
        cluster.submit(1, kv_tx(client, nonce, f"k{nonce}"))
        cluster.tick(2)
    cluster.tick(20)
    after = cluster.heights()
    assert len(set(after)) == 1 and after[0] > before[0]
    assert len({core.status()["app_hash"] for core in cluster.cores}) == 1


def test_key_must_match_genesis():
    cluster = NodeCluster()
    import pytest

    from node.core import NodeCore
    with pytest.raises(ValueError):
        NodeCore(cluster.genesis, 0, KeyPair.from_seed(b"\x01" * 32), cluster.stores[0])


def test_primary_crash_view_change_and_rejoin():
    cluster = NodeCluster()
    client = client_key()
    cluster.submit(1, kv_tx(client, 0, "before"))
    cluster.tick(5)
    assert cluster.heights() == [cluster.heights()[0]] * 4 and cluster.heights()[0] >= 1
    cluster.crash(0)  # the primary of view 0
    # submitted while the primary is down: forwarded to a dead primary, then re-forwarded
    for nonce in range(1, 4):
        assert cluster.submit(2, kv_tx(client, nonce, f"during{nonce}")).ok
    cluster.tick(200)
    statuses = [cluster.core(i).status() for i in (1, 2, 3)]
    assert all(status["view"] >= 1 and not status["view_changing"] for status in statuses)
    assert all(status["mempool_txs"] == 0 for status in statuses)
    assert cluster.stores[3].get_state(KV_PREFIX + b"during3") == b"v"
    assert len({status["app_hash"] for status in statuses}) == 1
    # the old primary restarts from its store, rejoins the view and catches up
    cluster.boot(0)
    cluster.submit(3, kv_tx(client, 4, "after"))
    cluster.tick(60)
    everyone = [core.status() for core in cluster.cores]
    assert len({status["height"] for status in everyone}) == 1
    assert len({status["app_hash"] for status in everyone}) == 1
    assert everyone[0]["view"] == everyone[1]["view"]
    assert cluster.stores[0].get_state(KV_PREFIX + b"after") == b"v"


def test_block_requests_are_served_from_the_store():
    cluster = NodeCluster()
    client = client_key()
    cluster.isolated = {3}
    for nonce in range(6):
        cluster.submit(0, kv_tx(client, nonce, f"k{nonce}"))
        cluster.tick(3)
    cluster.tick(10)
    assert cluster.heights()[3] == 0 and cluster.heights()[0] >= 8
    cluster.isolated = set()
    # it learns it is behind from the next checkpoints (an idle chain sends none)
    for nonce in range(6, 10):
        cluster.submit(0, kv_tx(client, nonce, f"k{nonce}"))
        cluster.tick(3)
    cluster.tick(30)
    assert len(set(cluster.heights())) == 1
    served = sum(core.status()["stats"].get("served_blocks", 0) for core in cluster.cores)
    assert served >= 8
    assert cluster.core(3).status()["app_hash"] == cluster.core(0).status()["app_hash"]


def test_idle_chain_makes_empty_blocks_at_the_interval_so_block_time_moves():
    interval_ms = 500
    idle = NodeCluster()
    timed = NodeCluster(consensus={"empty_block_interval_ms": interval_ms})
    for cluster in (idle, timed):
        cluster.tick(100)
    idle_before, timed_before = idle.heights(), timed.heights()
    for cluster in (idle, timed):
        cluster.tick(200)  # 2 s of block time with no transaction
    # Without the interval an idle chain stops once its genesis state is certified.
    assert idle.heights() == idle_before
    heights = timed.heights()
    assert len(set(heights)) == 1 and heights[0] >= timed_before[0] + 3
    store = timed.stores[0]
    later_heights = range(timed_before[0] + 1, heights[0] + 1)
    assert all(store.get_block(h).header.tx_count == 0 for h in later_heights)
    times = [store.get_block(h).header.timestamp_ms for h in later_heights]
    # consecutive idle blocks are at least the interval apart, never more often
    assert all(later - earlier >= interval_ms for earlier, later in zip(times, times[1:]))


def test_an_idle_chain_replaces_a_dead_primary():
    """Bug: the view-change timer ran only with pending work, so with idle blocks on nobody
    noticed that the expected empty blocks stopped when the primary died; the height stayed
    put for good. Backups expect a block every empty-block interval."""
    cluster = NodeCluster(consensus={"empty_block_interval_ms": 200})
    cluster.tick(100)
    assert cluster.core(1).status()["view"] == 0
    cluster.crash(0)
    before = cluster.heights()[1]
    cluster.tick(400)  # no transaction anywhere: 4 s of block time
    views = [cluster.core(index).status()["view"] for index in (1, 2, 3)]
    assert min(views) >= 1 and len(set(views)) == 1
    heights = cluster.heights()[1:]
    assert len(set(heights)) == 1 and heights[0] >= before + 3


def test_a_damaged_block_is_never_served_to_a_peer():
    cluster = NodeCluster()
    client = client_key()
    for nonce in range(4):
        cluster.submit(0, kv_tx(client, nonce, f"k{nonce}"))
        cluster.tick(3)
    cluster.tick(10)
    assert cluster.heights()[0] >= 4
    store = cluster.stores[0]
    stored = store.get_block(3)
    other = Block(stored.header, (kv_tx(client, 99, "forged"),))  # same header, same block hash
    with store.batch() as batch:
        batch._add(block_key(3), other.encode())
    out = cluster.core(0).on_message(1, encode_message(BlockRequest(1, 1, 10)))
    responses = [decode_message(data) for _, data in out.send]
    responses = [message for message in responses if isinstance(message, BlockResponse)]
    assert len(responses) == 1
    assert [block.height for block, _ in responses[0].entries] == [1, 2]
    assert cluster.core(0).status()["stats"]["store_corrupt"] == 1
