"""A node running the plan refuses a stranger's transaction of every kind before its mempool.

The client sees 422 (category "rejected"); nothing is forwarded, proposed or committed, and the
state holds no nonce record for the stranger. Cases per kind are in tests/contracts.
"""

from __future__ import annotations

from contract_helpers import GENESIS_MS, REGISTRAR, key, plan_genesis, sample_bodies
from node_harness import CHAIN_ID, GENESIS_TIME_MS, NodeCluster

from contracts import layout
from ledger.hashing import sha256
from ledger.types import Transaction
from node.api import SUBMIT_STATUS

STRANGER, CLAIMANT = key("stranger"), key("claimant")


def commit(cluster: NodeCluster, tx: Transaction, ticks: int = 60) -> None:
    result = cluster.submit(0, tx)
    assert result.ok, result
    for _ in range(ticks):
        cluster.tick()
        location = cluster.stores[0].get_tx_location(tx.tx_id)
        if location is not None:
            receipt = cluster.stores[0].get_receipts(location[0])[location[1]]
            assert receipt.ok, receipt
            return
    raise AssertionError(f"{tx.kind} did not commit")


def test_a_strangers_transaction_of_every_kind_is_refused_and_leaves_no_trace() -> None:
    assert GENESIS_MS == GENESIS_TIME_MS
    cluster = NodeCluster(app=plan_genesis())
    enroll = {"public_key": CLAIMANT.public_key, "identity": sha256(b"id-claimant"),
              "birth_ms": GENESIS_MS - 30 * 366 * 86_400_000}
    commit(cluster, Transaction.create(REGISTRAR, CHAIN_ID, 0, "member.enroll", enroll))
    claim = dict(sample_bodies(CLAIMANT)["claim.submit"], diagnosis_ms=cluster.now_ms)
    commit(cluster, Transaction.create(CLAIMANT, CHAIN_ID, 0, "claim.submit", claim))

    refused = []
    for index, (kind, body) in enumerate(sorted(sample_bodies(CLAIMANT).items())):
        tx = Transaction.create(STRANGER, CHAIN_ID, 0, kind, body)
        result = cluster.submit(index % cluster.n, tx)
        assert SUBMIT_STATUS[result.category] == 422, (kind, result)
        assert result.code in ("unauthorized", "not_member"), (kind, result)
        refused.append(tx.tx_id)
    cluster.tick(40)
    for index, store in enumerate(cluster.stores):
        assert not any(cluster.core(index).mempool_contains(tx_id) for tx_id in refused)
        assert all(store.get_tx_location(tx_id) is None for tx_id in refused)
        for height in range(1, store.latest_height() + 1):
            assert all(tx.sender != STRANGER.public_key for tx in store.get_block(height).txs)
        assert store.get_state(layout.nonce_key(STRANGER.public_key)) is None
