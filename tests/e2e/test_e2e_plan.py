"""End to end with the mutual-aid plan (the default application) on 4 real node processes.

The registrar enrolls a member and the treasurer records a deposit through different nodes;
every node then shows the same member through the domain view and ends at the same state
root, which is what running the contracts deterministically in separate processes means.
"""

from __future__ import annotations

import hashlib
import json

import pytest

from e2e_helpers import Net
from ledger.keys import KeyPair
from ledger.types import Transaction
from node.api import OpenApiDocument

pytestmark = pytest.mark.e2e

OPENAPI = OpenApiDocument()
DAY_MS = 86_400_000


def post(net: Net, index: int, tx: Transaction) -> dict:
    status, body = net.post(index, "/txs?wait=commit",
                            json.dumps({"tx": tx.encode().hex()}).encode())
    OPENAPI.validate("POST", "/txs", status, body)
    assert status == 200, body
    return body


def test_plan_transactions_through_different_nodes(tmp_path) -> None:
    net = Net(tmp_path / "net", app="plan", time_scale=1000)
    try:
        net.start_all()
        registrar = net.role_key("registrar")
        treasurer = net.role_key("treasurer")
        member = KeyPair.generate()
        now_ms = net.genesis["genesis_time_ms"]
        enroll = Transaction.create(registrar, net.chain_id, 0, "member.enroll", {
            "public_key": member.public_key,
            "identity": hashlib.sha256(b"salt" + b"110101199001011234").digest(),
            "birth_ms": now_ms - 30 * 365 * DAY_MS,
        })
        receipt = post(net, 1, enroll)["receipt"]
        assert receipt["ok"] is True, receipt
        member_id = receipt["result"]["member_id"]
        deposit = Transaction.create(treasurer, net.chain_id, 0, "member.deposit", {
            "member_id": bytes.fromhex(member_id), "amount_fen": 1_000,
            "reference": "bank-ref-1"})
        assert post(net, 3, deposit)["receipt"]["ok"] is True

        views = []
        for index in range(4):
            net.wait_until(lambda index=index: net.get(index, f"/members/{member_id}")[0] == 200,
                           f"member visible on node{index}")
            status, body = net.get(index, f"/members/{member_id}?prove=true")
            OPENAPI.validate("GET", "/members/{member_id}", status, body)
            views.append(body["value"])
        assert all(view == views[0] for view in views)

        def settled() -> int | None:
            statuses = [net.status(index) for index in range(4)]
            heights = {status["height"] for status in statuses}
            roots = {status["core"]["app_hash"] for status in statuses}
            return heights.pop() if len(heights) == 1 and len(roots) == 1 else None

        height = net.wait_until(settled, "same height and state root on all nodes")
        hashes = [net.block_hashes(index, height) for index in range(4)]
        assert all(chain == hashes[0] for chain in hashes)
        # An unauthorized enrollment (signed by the member, not the registrar) is committed
        # with a failed receipt, not applied.
        stranger = KeyPair.generate()
        forged = Transaction.create(member, net.chain_id, 0, "member.enroll", {
            "public_key": stranger.public_key,
            "identity": hashlib.sha256(b"other").digest(),
            "birth_ms": now_ms - 30 * 365 * DAY_MS,
        })
        status, body = net.post(0, "/txs?wait=commit",
                                json.dumps({"tx": forged.encode().hex()}).encode())
        OPENAPI.validate("POST", "/txs", status, body)
        assert status == 422 or (status == 200 and body["receipt"]["ok"] is False), body
    finally:
        net.close()
