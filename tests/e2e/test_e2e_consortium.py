"""End to end: a 4-node consortium of real processes (LevelDB, mutual TLS, REST API).

- transactions submitted to any node are committed, and every node holds the same blocks;
- kill -9 of a replica while transactions keep flowing: the other three keep committing; the
  killed node restarts from its store, catches up and ends with the same block hashes and
  state root;
- kill -9 of the primary: a view change follows and the others commit again;
- a peer with a certificate from another CA, or a CA certificate for the wrong key, is refused;
- bad requests over HTTP get their documented 4xx and change nothing on any node.
"""

from __future__ import annotations

import hashlib
import json
import ssl
import threading
from pathlib import Path

import aiohttp
import pytest

from e2e_helpers import Net
from ledger.keys import KeyPair
from ledger.types import Transaction
from node import tls
from node.api import OpenApiDocument
from node.transport import CHAIN_HEADER, NODE_HEADER, P2P_PATH

pytestmark = pytest.mark.e2e

OPENAPI = OpenApiDocument()


def kv_tx(chain_id: str, key: str, value: bytes) -> Transaction:
    # A fresh sender per transaction (nonce 0): a transaction lost with a killed node's
    # mempool can never leave a later one stuck behind a nonce gap.
    return Transaction.create(KeyPair.generate(), chain_id, 0, "kv.set",
                              {"key": key, "value": value})


def submit(net: Net, index: int, tx: Transaction, wait: bool = False) -> tuple[int, dict]:
    path = "/txs?wait=commit" if wait else "/txs"
    status, body = net.post(index, path, json.dumps({"tx": tx.encode().hex()}).encode())
    OPENAPI.validate("POST", "/txs", status, body)
    return status, body


def committed_everywhere(net: Net, tx: Transaction, indexes) -> bool:
    for index in indexes:
        status, body = net.get(index, f"/txs/{tx.tx_id.hex()}")
        if status != 200 or body["status"] != "committed":
            return False
    return True


def assert_same_chain(net: Net, indexes, up_to: int) -> None:
    chains = {index: net.block_hashes(index, up_to) for index in indexes}
    first = chains[indexes[0]]
    for index in indexes[1:]:
        assert chains[index] == first, f"node{index} differs from node{indexes[0]}"


def primary(net: Net, index: int) -> int:
    return net.status(index)["primary"]


class Load:
    """Submit transactions round-robin to a set of nodes from a background thread."""

    def __init__(self, net: Net, targets: list[int]) -> None:
        self.net = net
        self.targets = list(targets)
        self.accepted: list[Transaction] = []
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        count = 0
        while not self.stop_event.is_set():
            target = self.targets[count % len(self.targets)]
            tx = kv_tx(self.net.chain_id, f"load{count}", b"x")
            try:
                status, _ = submit(self.net, target, tx)
            except OSError:
                status = 0
            if status == 202:
                self.accepted.append(tx)
            count += 1
            self.stop_event.wait(0.05)

    def __enter__(self) -> "Load":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_event.set()
        self.thread.join(timeout=30)


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory):
    net = Net(tmp_path_factory.mktemp("e2e") / "net")
    try:
        net.start_all()
        yield net
    finally:
        net.close()


# --- normal operation ---------------------------------------------------------------------

def test_transactions_submitted_to_any_node_commit_everywhere(net: Net) -> None:
    txs = []
    for index in range(4):
        tx = kv_tx(net.chain_id, f"from-node{index}", b"%d" % index)
        status, body = submit(net, index, tx, wait=True)
        assert status == 200, body
        assert body["receipt"]["ok"] is True, body
        txs.append(tx)
    for tx in txs:
        net.wait_until(lambda tx=tx: committed_everywhere(net, tx, range(4)),
                       f"{tx.tx_id.hex()[:8]} committed on all nodes")
    height = min(net.height(index) for index in range(4))
    assert height >= 1
    assert_same_chain(net, list(range(4)), height)
    for index in range(4):
        status, body = net.get(index, "/status")
        OPENAPI.validate("GET", "/status", status, body)
        assert body["peers_connected"] == 3


def test_bad_requests_get_documented_errors_and_change_nothing(net: Net) -> None:
    user = KeyPair.generate()
    honest = Transaction.create(user, net.chain_id, 0, "kv.set", {"key": "h", "value": b"1"})
    forged = Transaction(honest.chain_id, honest.sender, honest.nonce, honest.kind,
                         {"key": "h", "value": b"2"}, honest.signature)
    cases = [
        (b'{"tx": ', "application/json", 400, "bad_json"),
        (b'{"tx": 7}', "application/json", 400, "wrong_type"),
        (b'{"tx": "00", "priority": "high"}', "application/json", 400, "unknown_field"),
        (json.dumps({"tx": forged.encode().hex()}).encode(), "application/json", 400, None),
        (forged.encode(), "application/msgpack", 400, None),
        (json.dumps({"tx": "ab" * 300_000}).encode(), "application/json", 413,
         "body_too_large"),
    ]
    before = [net.status(index)["mempool_txs"] for index in range(4)]
    for body, content_type, status, code in cases:
        got_status, got = net.post(1, "/txs", body, content_type)
        OPENAPI.validate("POST", "/txs", got_status, got)
        assert got_status == status, (body[:40], got)
        if code is not None:
            assert got["error"]["code"] == code
    forged_id = hashlib.sha256(forged.encode()).hexdigest()
    for index in range(4):
        status, body = net.get(index, f"/txs/{forged_id}")
        assert body["status"] == "unknown"
    assert [net.status(index)["mempool_txs"] for index in range(4)] == before

    # A replayed transaction: committed once, refused after.
    status, body = submit(net, 2, honest, wait=True)
    assert status == 200
    for index in range(4):
        status, body = submit(net, index, honest)
        assert status == 409 and body["error"]["code"] == "already_committed", (index, body)


def _rogue_dial(port: int, client_ssl: ssl.SSLContext, claimed: int) -> int:
    import asyncio

    async def dial() -> int:
        async with aiohttp.ClientSession() as session:
            try:
                async with session.ws_connect(
                        f"https://127.0.0.1:{port}{P2P_PATH}", ssl=client_ssl,
                        headers={NODE_HEADER: str(claimed), CHAIN_HEADER: "huzhu-local"}) as ws:
                    await ws.close()
                    return 101
            except aiohttp.WSServerHandshakeError as exc:
                return exc.status
            except (aiohttp.ClientError, ssl.SSLError, ConnectionError):
                return -1  # refused during the TLS handshake
    return asyncio.run(dial())


def test_peers_with_foreign_or_wrong_certificates_are_refused(net: Net, tmp_path: Path) -> None:
    target = net.configs[0]
    node1_key = KeyPair.load(net.homes[1] / "node_key.json")
    # 1. node 1's real key, certified by a CA the consortium does not trust
    rogue_ca = tls.make_ca("rogue CA")
    cert = tmp_path / "rogue.crt"
    key = tmp_path / "rogue.key"
    cert.write_bytes(tls.certificate_pem(tls.issue_certificate(rogue_ca, node1_key.public_key,
                                                                "node1")))
    tls.write_private(key, tls.private_key_pem(tls.node_private_key(node1_key)))
    assert _rogue_dial(target.p2p.port, tls.client_context(cert, key, target.paths.ca_cert),
                       claimed=1) == -1
    # 2. a certificate from the consortium CA, for a key that is not node 1's
    ca = tls.load_ca(target.paths.ca_cert, net.directory / "ca" / "ca.key")
    stranger = KeyPair.generate()
    cert2 = tmp_path / "stranger.crt"
    key2 = tmp_path / "stranger.key"
    cert2.write_bytes(tls.certificate_pem(tls.issue_certificate(ca, stranger.public_key,
                                                                 "node1")))
    tls.write_private(key2, tls.private_key_pem(tls.node_private_key(stranger)))
    assert _rogue_dial(target.p2p.port, tls.client_context(cert2, key2, target.paths.ca_cert),
                       claimed=1) == 403
    status = net.status(0)
    peer1 = next(peer for peer in status["peers"] if peer["id"] == 1)
    assert peer1["refusals"] >= 1
    # the genuine connection from node 1 is untouched
    assert peer1["connected"] is True and status["peers_connected"] == 3


# --- crashes ---------------------------------------------------------------------------------

def settled(net: Net, indexes) -> int | None:
    """The common height once the given nodes all report the same height and state root."""
    statuses = [net.status(index) for index in indexes]
    heights = {status["height"] for status in statuses}
    roots = {status["core"]["app_hash"] for status in statuses}
    return heights.pop() if len(heights) == 1 and len(roots) == 1 else None


def test_killed_replica_restarts_and_catches_up(net: Net) -> None:
    leader = primary(net, 0)
    victim = next(index for index in (3, 2, 1) if index != leader)
    others = [index for index in range(4) if index != victim]
    with Load(net, others) as load:
        net.wait_until(lambda: len(load.accepted) >= 5, "load running")
        net.kill9(victim)
        killed_at = max(net.height(index) for index in others)
        # The other three keep committing without it.
        net.wait_until(lambda: min(net.height(index) for index in others) >= killed_at + 3,
                       "three nodes commit without the fourth")
        net.start(victim)
        net.wait_ready([victim])
        # While transactions keep flowing it catches up by certified blocks from the peers.
        target = max(net.height(index) for index in others)
        net.wait_until(lambda: net.height(victim) >= target,
                       f"node{victim} caught up to {target}")
    for tx in load.accepted[-3:]:
        net.wait_until(lambda tx=tx: committed_everywhere(net, tx, range(4)),
                       "the last load transactions committed everywhere")
    # Once the load stops the chain settles: the same height and state root on all four,
    # the restarted node's re-derived from its own store and execution.
    height = net.wait_until(lambda: settled(net, range(4)), "all four nodes settled")
    assert height > target
    assert_same_chain(net, list(range(4)), height)
    # It takes part again: a transaction submitted to it commits everywhere.
    tx = kv_tx(net.chain_id, "after-restart", b"ok")
    status, body = submit(net, victim, tx, wait=True)
    assert status == 200, body
    net.wait_until(lambda: committed_everywhere(net, tx, range(4)), "post-restart tx everywhere")


def test_killed_primary_triggers_a_view_change(net: Net) -> None:
    leader = primary(net, 0)
    view_before = net.status(leader)["view"]
    others = [index for index in range(4) if index != leader]
    # Transactions keep arriving at every surviving node, as they would from many clients:
    # each survivor then waits on work the dead primary never orders, and they change view.
    with Load(net, others) as load:
        net.wait_until(lambda: len(load.accepted) >= 3, "load running")
        net.kill9(leader)
        killed_at = max(net.height(index) for index in others)
        net.wait_until(lambda: all(net.status(index)["view"] > view_before
                                   and not net.status(index)["core"]["view_changing"]
                                   for index in others), "a new view on the survivors")
        net.wait_until(lambda: min(net.height(index) for index in others) >= killed_at + 3,
                       "commits in the new view")
        views = {net.status(index)["view"] for index in others}
        assert len(views) == 1 and views.pop() > view_before
        assert all(primary(net, index) != leader for index in others)
        net.start(leader)
        net.wait_ready([leader])
        target = max(net.height(index) for index in others)
        net.wait_until(lambda: net.height(leader) >= target, "old primary caught up")
    height = net.wait_until(lambda: settled(net, range(4)), "all four nodes settled")
    assert_same_chain(net, list(range(4)), height)
    # The old primary follows the new view and its API accepts transactions again.
    net.wait_until(lambda: net.status(leader)["view"] > view_before, "old primary in new view")
    tx = kv_tx(net.chain_id, "after-view-change", b"ok")
    status, body = submit(net, leader, tx, wait=True)
    assert status == 200, body


def test_one_transaction_to_one_node_commits_after_the_primary_dies(net: Net) -> None:
    # No load: a single client sends a single transaction to a single surviving node. That
    # node re-forwards it to every replica, so all survivors wait on it and change view.
    leader = primary(net, 0)
    view_before = net.status(leader)["view"]
    others = [index for index in range(4) if index != leader]
    net.wait_until(lambda: settled(net, range(4)), "a quiet chain")
    net.kill9(leader)
    tx = kv_tx(net.chain_id, "lonely", b"1")
    status, body = submit(net, others[-1], tx)
    assert status == 202, body
    net.wait_until(lambda: committed_everywhere(net, tx, others), "the lonely tx committed")
    assert all(net.status(index)["view"] > view_before for index in others)
    net.start(leader)
    net.wait_ready([leader])
    net.wait_until(lambda: committed_everywhere(net, tx, [leader]), "old primary caught up")
