"""A sender's transactions commit in nonce order however they arrive, and the mempool bounds
what one sender can hold (quota, nonce gap) with a defined refusal at each bound."""

from __future__ import annotations

import pytest
from node_harness import NodeCluster, client_key, kv_tx

from node.api import SUBMIT_STATUS
from node.core import NodeParams

ARRIVAL = [5, 3, 4, 0, 2, 1]


def receipts_in_chain_order(cluster: NodeCluster, txs) -> list[tuple[tuple[int, int], int, str]]:
    store = cluster.stores[0]
    found = []
    for item in txs:
        location = store.get_tx_location(item.tx_id)
        assert location is not None, f"nonce {item.nonce} was not committed"
        receipt = store.get_receipts(location[0])[location[1]]
        found.append((location, item.nonce, receipt.code))
    return sorted(found)


@pytest.mark.parametrize("targets", [(0, 1, 2, 3), (0,), (2,)],
                         ids=["different_nodes", "primary", "backup"])
def test_out_of_order_submissions_commit_ok_in_nonce_order(targets) -> None:
    cluster = NodeCluster()
    client = client_key(0)
    txs = [kv_tx(client, nonce, f"k{nonce}") for nonce in ARRIVAL]
    for position, item in enumerate(txs):
        result = cluster.submit(targets[position % len(targets)], item)
        assert result.ok, result
        cluster.tick(3)  # each one has time to reach the primary and be proposed alone
    cluster.tick(60)
    chain = receipts_in_chain_order(cluster, txs)
    assert [nonce for _, nonce, _ in chain] == sorted(ARRIVAL)
    assert all(code == "ok" for _, _, code in chain), chain
    assert all(len(core.mempool) == 0 for core in cluster.cores)


def test_a_flooding_sender_is_held_to_its_quota_and_others_still_get_in() -> None:
    cluster = NodeCluster(params=NodeParams(mempool_max_txs_per_sender=4))
    flooder, other = client_key(0), client_key(1)
    results = [cluster.submit(1, kv_tx(flooder, nonce, "f")) for nonce in range(6)]
    assert [result.code for result in results] == ["ok"] * 4 + ["sender_quota"] * 2
    assert SUBMIT_STATUS[results[-1].category] == 429
    assert cluster.submit(1, kv_tx(other, 0, "o")).ok
    cluster.tick(60)
    assert cluster.submit(1, kv_tx(flooder, 4, "f")).ok  # committed ones free the quota


def test_a_nonce_too_far_ahead_is_refused() -> None:
    cluster = NodeCluster(params=NodeParams(mempool_max_nonce_ahead=8))
    client = client_key(0)
    refused = cluster.submit(0, kv_tx(client, 9, "k"))
    assert refused.code == "nonce_too_high" and SUBMIT_STATUS[refused.category] == 422
    assert cluster.submit(0, kv_tx(client, 8, "k")).ok


def test_a_held_transaction_is_not_waited_on_and_causes_no_view_change() -> None:
    cluster = NodeCluster()
    client = client_key(0)
    assert cluster.submit(1, kv_tx(client, 3, "gap")).ok
    cluster.tick(200)  # several view-change timeouts
    assert all(core.status()["view"] == 0 for core in cluster.cores)
    for nonce in (0, 1, 2):
        assert cluster.submit(2, kv_tx(client, nonce, "gap")).ok
    cluster.tick(60)
    chain = receipts_in_chain_order(cluster, [kv_tx(client, n, "gap") for n in range(4)])
    assert [code for _, _, code in chain] == ["ok"] * 4


def test_many_senders_submitting_concurrently_in_any_order_all_commit_ok() -> None:
    # The outside attack that found the nonce gaps: 24 concurrent submissions per sender.
    import random

    shuffle = random.Random(15)
    cluster = NodeCluster(consensus={"max_block_txs": 16})
    txs = [kv_tx(client_key(sender), nonce, f"s{sender}n{nonce}")
           for sender in range(4) for nonce in range(24)]
    arrival = list(txs)
    shuffle.shuffle(arrival)
    for position, item in enumerate(arrival):
        assert cluster.submit(shuffle.randrange(cluster.n), item).ok
        if position % 8 == 7:
            cluster.tick()
    cluster.tick(100)
    for sender in range(4):
        chain = receipts_in_chain_order(cluster, txs[sender * 24:(sender + 1) * 24])
        assert [nonce for _, nonce, _ in chain] == list(range(24))
        assert all(code == "ok" for _, _, code in chain), chain
