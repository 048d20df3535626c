"""The REST API of a real node runtime (NodeCore, LevelDB, key/value app), in-process.

A one-validator testnet commits on its own, so every endpoint can be exercised against a real
node without other processes. Every answer is checked against node/openapi.yaml; every bad
request is checked to change nothing (height, mempool, the tx unknown).
"""

from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest

from ledger import codec, merkle
from ledger.keys import KeyPair
from ledger.types import Block, CommitCertificate, Receipt, Transaction
from node.api import OpenApiDocument
from node.config import load_config
from node.runtime import NodeRuntime
from node.testnet import create_testnet

OPENAPI = OpenApiDocument()
WAIT_S = 20.0


def free_port_pair() -> int:
    """A base port such that base and base + 1 are free (peer port, API port)."""
    import random
    import socket

    for _ in range(200):
        base = random.randrange(20_000, 60_000, 2)
        with socket.socket() as first, socket.socket() as second:
            try:
                first.bind(("127.0.0.1", base))
                second.bind(("127.0.0.1", base + 1))
            except OSError:
                continue
        return base
    raise RuntimeError("no free port pair")


class Node:
    """A started runtime and an HTTP session to its API."""

    def __init__(self, runtime: NodeRuntime, session: aiohttp.ClientSession) -> None:
        self.runtime = runtime
        self.session = session
        self.base = runtime.config.api_url
        self.chain_id = runtime.chain_id
        self.user = KeyPair.generate()
        self.nonce = 0

    async def call(self, method: str, path: str, template: str, *, data: bytes | None = None,
                   content_type: str = "application/json") -> tuple[int, object]:
        headers = {"Content-Type": content_type} if data is not None else {}
        async with self.session.request(method, self.base + path, data=data,
                                        headers=headers) as reply:
            text = await reply.read()
            body = json.loads(text) if reply.content_type == "application/json" else text
            status = reply.status
        if reply.content_type == "application/json":
            OPENAPI.validate(method, template, status, body)
        return status, body

    def tx(self, key: str = "k", value: bytes = b"v", nonce: int | None = None,
           chain_id: str | None = None, signer: KeyPair | None = None) -> Transaction:
        signer = signer or self.user
        if nonce is None:
            nonce = self.nonce
            self.nonce += 1
        return Transaction.create(signer, chain_id or self.chain_id, nonce, "kv.set",
                                  {"key": key, "value": value})

    async def post_tx(self, tx_bytes: bytes, wait: bool = False) -> tuple[int, dict]:
        body = json.dumps({"tx": tx_bytes.hex()}).encode()
        return await self.call("POST", "/txs?wait=commit" if wait else "/txs", "/txs",
                               data=body)

    def snapshot(self) -> tuple[int, int]:
        """What a refused request must not change: committed height and mempool size."""
        status = self.runtime.status()
        return status["height"], status["mempool_txs"]


async def start_node(directory: Path, app: str = "kv", **runtime_overrides: int) -> NodeRuntime:
    base = free_port_pair()
    layout = create_testnet(directory, 1, base_port=base, app=app)
    config = load_config(layout.node_homes[0])
    if runtime_overrides:
        config = replace(config, node=replace(config.node, **runtime_overrides))
    runtime = NodeRuntime(config)
    await runtime.start()
    return runtime


@pytest.fixture
async def node(tmp_path: Path):
    runtime = await start_node(tmp_path / "net")
    async with aiohttp.ClientSession() as session:
        try:
            yield Node(runtime, session)
        finally:
            await runtime.stop()


async def wait_for(predicate, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


# --- happy paths -----------------------------------------------------------------------------

async def test_node_endpoints_answer_as_documented(node: Node) -> None:
    assert await node.call("GET", "/healthz", "/healthz") == (200, {"status": "ok"})
    status, ready = await node.call("GET", "/readyz", "/readyz")
    assert status == 200 and ready["ready"] is True and ready["quorum"] == 1
    status, body = await node.call("GET", "/status", "/status")
    assert status == 200
    assert body["node_id"] == 0 and body["chain_id"] == node.chain_id
    assert body["validators"] == 1 and body["peers"] == []
    status, genesis = await node.call("GET", "/genesis", "/genesis")
    assert genesis["chain_id"] == node.chain_id
    status, text = await node.call("GET", "/openapi.yaml", "/openapi.yaml")
    assert status == 200
    assert text == (Path(__file__).parents[2] / "node" / "openapi.yaml").read_bytes()
    status, metrics = await node.call("GET", "/metrics", "/metrics")
    assert status == 200 and b"huzhu_height " in metrics


async def test_committed_tx_has_receipt_proof_and_certificate(node: Node) -> None:
    tx = node.tx("color", b"blue")
    status, body = await node.post_tx(tx.encode(), wait=True)
    assert status == 200, body
    assert body["status"] == "committed" and body["tx_id"] == tx.tx_id.hex()
    assert body["receipt"]["tx_id"] == tx.tx_id.hex()
    height = body["height"]

    status, found = await node.call("GET", f"/txs/{tx.tx_id.hex()}", "/txs/{tx_id}")
    assert status == 200 and found["status"] == "committed" and found["height"] == height
    proof = found["proof"]
    assert merkle.verify_inclusion(tx.tx_id, proof["index"], proof["size"],
                                   [bytes.fromhex(h) for h in proof["path"]],
                                   bytes.fromhex(proof["tx_root"]))

    status, block = await node.call("GET", f"/blocks/{height}?full=true", "/blocks/{height}")
    assert status == 200
    raw_block = base64.b64decode(block["raw"]["block"])
    decoded = Block.decode(raw_block)
    assert decoded.encode() == raw_block
    assert decoded.block_hash.hex() == block["block_hash"] == found["block_hash"]
    assert decoded.header.tx_root.hex() == proof["tx_root"]
    assert tx.tx_id.hex() in block["tx_ids"]
    assert [t["tx_id"] for t in block["txs"]] == block["tx_ids"]
    certificate = CommitCertificate.decode(base64.b64decode(block["raw"]["certificate"]))
    certificate.verify(node.chain_id, node.runtime.validator_keys)
    assert certificate.block_hash == decoded.block_hash
    receipts = [Receipt.decode(base64.b64decode(r)) for r in block["raw"]["receipts"]]
    assert [r.tx_id for r in receipts] == [t.tx_id for t in decoded.txs]

    status, latest = await node.call("GET", "/blocks/latest", "/blocks/{height}")
    assert status == 200 and latest["height"] >= height and "txs" not in latest


async def test_msgpack_and_base64_bodies_are_accepted(node: Node) -> None:
    first = node.tx("a", b"1")
    status, body = await node.call("POST", "/txs", "/txs", data=first.encode(),
                                   content_type="application/msgpack")
    assert status == 202 and body == {"tx_id": first.tx_id.hex(), "status": "pending"}
    second = node.tx("b", b"2")
    encoded = json.dumps({"tx": base64.b64encode(second.encode()).decode()}).encode()
    status, body = await node.call("POST", "/txs", "/txs", data=encoded)
    assert status == 202 and body["tx_id"] == second.tx_id.hex()
    await wait_for(lambda: node.runtime.store.get_tx_location(second.tx_id) is not None,
                   "second tx committed")


async def test_events_stream_announces_committed_blocks(node: Node) -> None:
    async with node.session.ws_connect(node.base + "/events") as ws:
        tx = node.tx()
        status, _ = await node.post_tx(tx.encode())
        assert status == 202
        while True:
            event = await asyncio.wait_for(ws.receive_json(), WAIT_S)
            assert event["type"] == "block"
            if tx.tx_id.hex() in event["tx_ids"]:
                break


# --- refused requests change nothing ----------------------------------------------------------

def _signed_then_tampered(node: Node) -> bytes:
    tx = node.tx("k", b"honest")
    forged = Transaction(tx.chain_id, tx.sender, tx.nonce, tx.kind, {"key": "k", "value": b"evil"},
                         tx.signature)
    return forged.encode()


BAD_BODIES = [
    ("malformed json", b'{"tx": ', "application/json", 400, "bad_json"),
    ("not an object", b'["00"]', "application/json", 400, "wrong_type"),
    ("wrong type", b'{"tx": 12}', "application/json", 400, "wrong_type"),
    ("null tx", b'{"tx": null}', "application/json", 400, "wrong_type"),
    ("unknown field", b'{"tx": "00", "fee": 1}', "application/json", 400, "unknown_field"),
    ("missing field", b'{}', "application/json", 400, "missing_field"),
    ("duplicate key", b'{"tx": "00", "tx": "01"}', "application/json", 400, "duplicate_key"),
    ("not hex nor base64", b'{"tx": "zz!"}', "application/json", 400, "bad_encoding"),
    ("not msgpack", b'{"tx": "c1"}', "application/json", 400, "malformed"),
    ("wrong media type", b'tx=00', "text/plain", 415, "unsupported_media_type"),
]


@pytest.mark.parametrize("name, body, content_type, status, code", BAD_BODIES,
                         ids=[case[0] for case in BAD_BODIES])
async def test_bad_bodies_are_refused(node: Node, name: str, body: bytes, content_type: str,
                                      status: int, code: str) -> None:
    before = node.snapshot()
    got_status, got = await node.call("POST", "/txs", "/txs", data=body,
                                      content_type=content_type)
    assert got_status == status, got
    assert got["error"]["code"] == code
    assert node.snapshot() == before


async def test_bad_transactions_are_refused_and_change_nothing(node: Node) -> None:
    height_before, _ = node.snapshot()
    honest = node.tx("x", b"1")
    cases = {
        "bad_signature": _signed_then_tampered(node),
        "wrong_chain": node.tx("x", b"1", chain_id="another-chain").encode(),
    }
    # A non-canonical encoding of a valid transaction: the same map with its keys unsorted.
    plain = honest.to_plain()
    import msgpack

    unsorted = msgpack.packb(dict(reversed(list(plain.items()))), use_bin_type=True)
    assert unsorted != honest.encode() and msgpack.unpackb(unsorted) == msgpack.unpackb(
        honest.encode())
    cases["non_canonical"] = unsorted
    for name, raw in cases.items():
        status, body = await node.post_tx(raw)
        assert status == 400, (name, body)
        assert body["error"]["code"], name
        tx_id = __import__("hashlib").sha256(raw).hexdigest()
        status, found = await node.call("GET", f"/txs/{tx_id}", "/txs/{tx_id}")
        assert found["status"] == "unknown", name
    assert node.snapshot() == (height_before, 0)
    # None of them took the honest transaction's nonce: it still commits.
    status, body = await node.post_tx(honest.encode(), wait=True)
    assert status == 200 and body["receipt"]["ok"] is True


async def test_replayed_transaction_is_refused(node: Node) -> None:
    tx = node.tx("once", b"1")
    status, body = await node.post_tx(tx.encode(), wait=True)
    assert status == 200
    before = node.snapshot()
    status, body = await node.post_tx(tx.encode())
    assert status == 409 and body["error"]["code"] == "already_committed"
    # The same nonce again with a different body is refused by admission as well.
    rival = node.tx("once", b"2", nonce=tx.nonce)
    status, body = await node.post_tx(rival.encode())
    assert status in (409, 422), body
    assert node.snapshot() == before
    status, found = await node.call("GET", f"/txs/{rival.tx_id.hex()}", "/txs/{tx_id}")
    assert found["status"] == "unknown"


async def test_oversize_body_is_413(node: Node) -> None:
    before = node.snapshot()
    huge = json.dumps({"tx": "ab" * 200_000}).encode()
    status, body = await node.call("POST", "/txs", "/txs", data=huge)
    assert status == 413 and body["error"]["code"] == "body_too_large"
    status, body = await node.call("POST", "/txs", "/txs", data=b"\x00" * 300_000,
                                   content_type="application/msgpack")
    assert status == 413
    assert node.snapshot() == before


@pytest.mark.parametrize("method, path, template, status, code", [
    ("GET", "/txs/xyz", "/txs/{tx_id}", 400, "bad_tx_id"),
    ("GET", "/blocks/0", "/blocks/{height}", 400, "bad_height"),
    ("GET", "/blocks/-1", "/blocks/{height}", 400, "bad_height"),
    ("GET", "/blocks/%D9%A1", "/blocks/{height}", 400, "bad_height"),  # Arabic-Indic one
    ("GET", "/blocks/1%0A", "/blocks/{height}", 400, "bad_height"),  # "1" and a newline
    ("GET", "/blocks/99999", "/blocks/{height}", 404, "not_found"),
    ("GET", "/blocks/1?full=yes", "/blocks/{height}", 400, "bad_parameter"),
    ("GET", "/blocks/1?fields=all", "/blocks/{height}", 400, "unknown_parameter"),
    ("POST", "/txs?wait=forever", "/txs", 400, "bad_parameter"),
    ("GET", "/state/kv/no-such-key", "/state/{path}", 404, "not_found"),
    ("GET", "/state/no/such/thing", "/state/{path}", 400, "bad_query"),
    ("GET", "/state/bad%20path", "/state/{path}", 400, "bad_query"),
    ("GET", "/state/kv/x?prove=maybe", "/state/{path}", 400, "bad_parameter"),
    # the key/value application has no members: a malformed query for it
    ("GET", "/members/nobody", "/members/{member_id}", 400, "bad_query"),
])
async def test_documented_errors(node: Node, method: str, path: str, template: str,
                                 status: int, code: str) -> None:
    data = b'{"tx": "00"}' if method == "POST" else None
    got_status, body = await node.call(method, path, template, data=data)
    assert got_status == status, body
    assert body["error"]["code"] == code


async def test_unknown_routes_and_methods_answer_json(node: Node) -> None:
    async with node.session.get(node.base + "/nowhere") as reply:
        assert reply.status == 404
        assert (await reply.json())["error"]["code"] == "not_found"
    async with node.session.delete(node.base + "/txs") as reply:
        assert reply.status == 405
        assert (await reply.json())["error"]["code"] == "method_not_allowed"


async def test_full_mempool_is_429(tmp_path: Path) -> None:
    # Ticks far apart: nothing is proposed while the test fills the mempool.
    runtime = await start_node(tmp_path / "net", mempool_max_txs=2, tick_ms=600_000)
    try:
        async with aiohttp.ClientSession() as session:
            node = Node(runtime, session)
            for _ in range(2):
                status, _ = await node.post_tx(node.tx().encode())
                assert status == 202
            before = node.snapshot()
            status, body = await node.post_tx(node.tx().encode())
            assert status == 429 and body["error"]["code"] == "mempool_full"
            assert node.snapshot() == before
    finally:
        await runtime.stop()


def test_openapi_document_is_consistent() -> None:
    # Every operation documents its answers with JSON schemas that resolve.
    for template, operations in OPENAPI.document["paths"].items():
        for method, operation in operations.items():
            assert operation["responses"], (method, template)
            for status in operation["responses"]:
                OPENAPI.response_schema_pointer(method, template, int(status))
    with pytest.raises(Exception):
        OPENAPI.validate("GET", "/status", 200, {"node_id": "zero"})


async def test_state_queries_with_proofs(node: Node) -> None:
    tx = node.tx("fruit", b"apple")
    status, _ = await node.post_tx(tx.encode(), wait=True)
    assert status == 200
    status, body = await node.call("GET", "/state/kv/fruit?prove=true", "/state/{path}")
    assert status == 200 and body["path"] == "kv/fruit"
    assert body["value"] is not None and body["proof"] is not None
    status, plain = await node.call("GET", "/state/kv/fruit", "/state/{path}")
    assert plain["value"] == body["value"] and plain["proof"] is None


async def test_domain_views_of_the_plan(tmp_path: Path) -> None:
    runtime = await start_node(tmp_path / "net", app="plan")
    try:
        async with aiohttp.ClientSession() as session:
            node = Node(runtime, session)
            cases = [
                ("/members/" + "00" * 16, "/members/{member_id}", 404, "not_found"),
                ("/members/xyz", "/members/{member_id}", 400, "bad_query"),
                ("/claims/999", "/claims/{claim_id}", 404, "not_found"),
                ("/claims/x", "/claims/{claim_id}", 400, "bad_query"),
                ("/settlements/999", "/settlements/{period}", 404, "not_found"),
                ("/jury/999", "/jury/{claim_id}", 404, "not_found"),
            ]
            for path, template, status, code in cases:
                got_status, body = await node.call("GET", path, template)
                assert (got_status, body["error"]["code"]) == (status, code), path
            status, body = await node.call("GET", "/state/params", "/state/{path}")
            assert status == 200 and body["value"]["fee_bps"] == 800
            status, body = await node.call("GET", "/state/plan/totals?prove=true",
                                           "/state/{path}")
            assert status == 200 and body["value"]["active_members"] == 0
            assert body["proof"]["root"] == runtime.core.app_hash.hex()
    finally:
        await runtime.stop()


async def test_an_internal_failure_stops_the_node_instead_of_limping_on(node: Node) -> None:
    # NodeCore never raises on bad input; if it raises anyway an invariant is broken. The
    # runtime must stop taking work (the process then exits non-zero; see serve()).
    def broken(*args: object) -> None:
        raise AssertionError("invariant broken")

    node.runtime.core.submit_tx = broken
    status, body = await node.post_tx(node.tx().encode())
    assert status == 500 and body["error"]["code"] == "internal"
    assert node.runtime.fatal.is_set()
    assert isinstance(node.runtime.fatal_error, AssertionError)
    status, body = await node.call("GET", "/readyz", "/readyz")
    assert status == 503
