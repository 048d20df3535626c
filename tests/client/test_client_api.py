"""The HTTP client: typed errors from the API's error objects, retries, timeouts; keys CLI."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from click.testing import CliRunner

from client.api import ApiError, Busy, Client, NodeUnreachable, NotFound, Rejected
from client.cli import main
from ledger.keys import KeyPair
from ledger.types import Transaction


class _Handler(BaseHTTPRequestHandler):
    routes: dict = {}
    seen: list = []

    def log_message(self, *args: object) -> None:
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.seen.append((self.command, self.path, body))
        status, payload = self.routes.get((self.command, self.path.split("?")[0]),
                                          (404, {"error": {"code": "not_found",
                                                           "message": "no such thing"}}))
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = _answer
    do_POST = _answer


@pytest.fixture
def server():
    _Handler.routes = {}
    _Handler.seen = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_json_answer_and_error_objects_become_typed_errors(server):
    _, url = server
    _Handler.routes[("GET", "/status")] = (200, {"node_id": 0, "height": 7})
    _Handler.routes[("POST", "/txs")] = (400, {"error": {"code": "bad_signature",
                                                         "message": "signature does not verify"}})
    _Handler.routes[("GET", "/readyz")] = (503, {"error": {"code": "not_ready", "message": "x"}})
    _Handler.routes[("GET", "/members/ab")] = (429, {"error": {"code": "mempool_full",
                                                              "message": "full"}})
    client = Client(url)
    assert client.status() == {"node_id": 0, "height": 7}
    with pytest.raises(NotFound) as missing:
        client.block(99)
    assert missing.value.code == "not_found" and missing.value.status == 404
    key = KeyPair.from_seed(bytes(32))
    tx = Transaction.create(key, "huzhu-test", 0, "member.exit", {})
    with pytest.raises(Rejected) as rejected:
        client.submit(tx)
    assert rejected.value.code == "bad_signature"
    assert "signature does not verify" in str(rejected.value)
    with pytest.raises(Busy):
        client.member("ab")
    assert client.readyz() is False
    # the transaction went over the wire as the hex of its canonical encoding
    method, path, body = _Handler.seen[2]
    assert (method, path) == ("POST", "/txs")
    assert json.loads(body) == {"tx": tx.encode().hex()}


def test_wait_commit_is_a_query_parameter(server):
    _, url = server
    _Handler.routes[("POST", "/txs")] = (200, {"tx_id": "00", "status": "committed"})
    key = KeyPair.from_seed(bytes(32))
    tx = Transaction.create(key, "huzhu-test", 3, "member.exit", {})
    assert Client(url).submit(tx, wait=True)["status"] == "committed"
    assert _Handler.seen[-1][1] == "/txs?wait=commit"


def test_server_error_without_error_object_is_still_an_api_error(server):
    _, url = server
    _Handler.routes[("GET", "/status")] = (500, ["not an error object"])
    with pytest.raises(ApiError) as error:
        Client(url).status()
    assert error.value.status == 500 and error.value.code == "http_500"


def test_unreachable_node_is_retried_then_reported():
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = Client(f"127.0.0.1:{port}", timeout_s=1.0, retries=2)
    with pytest.raises(NodeUnreachable) as error:
        client.status()
    assert f"127.0.0.1:{port}" in str(error.value)


def test_keys_new_writes_a_private_key_file_and_refuses_to_overwrite(tmp_path):
    runner = CliRunner()
    path = tmp_path / "alice.json"
    result = runner.invoke(main, ["keys", "new", "--out", str(path), "--json"])
    assert result.exit_code == 0, result.output
    public_key = json.loads(result.output)["public_key"]
    assert KeyPair.load(path).public_key.hex() == public_key
    assert path.stat().st_mode & 0o777 == 0o600
    again = runner.invoke(main, ["keys", "new", "--out", str(path)])
    assert again.exit_code == 1
    assert "already exists" in again.output
    assert KeyPair.load(path).public_key.hex() == public_key


def test_usage_errors_exit_1_not_2():
    result = CliRunner().invoke(main, ["keys", "new"])
    assert result.exit_code == 1
    assert "--out" in result.output


def test_resent_transaction_already_at_the_node_is_waited_for_not_refused(server):
    from client.txs import TxSender

    _, url = server
    key = KeyPair.from_seed(bytes([7]) * 32)
    _Handler.routes[("GET", "/status")] = (200, {"chain_id": "huzhu-test", "height": 3})
    _Handler.routes[("GET", f"/state/nonce/{key.public_key.hex()}")] = (
        200, {"path": "nonce", "height": 3, "proof": None,
              "value": {"sender": key.public_key.hex(), "next_nonce": 5}})
    # As after a retried POST whose first attempt got through: the node knows this tx.
    _Handler.routes[("POST", "/txs")] = (409, {"error": {"code": "duplicate",
                                                         "message": "already pending"}})
    tx = Transaction.create(key, "huzhu-test", 5, "member.exit", {})
    _Handler.routes[("GET", f"/txs/{tx.tx_id.hex()}")] = (200, {
        "tx_id": tx.tx_id.hex(), "status": "committed", "height": 4, "index": 0,
        "receipt": {"tx_id": tx.tx_id.hex(), "code": "ok", "ok": True, "result": {}}})
    outcome = TxSender(Client(url), key).send("member.exit", {})
    assert outcome.tx_id == tx.tx_id and outcome.nonce == 5
    assert outcome.ok and outcome.height == 4
    # a different transaction holding the same nonce is a real conflict
    _Handler.routes[("POST", "/txs")] = (409, {"error": {"code": "nonce_taken", "message": "x"}})
    with pytest.raises(ApiError) as error:
        TxSender(Client(url), key).send("member.exit", {})
    assert error.value.code == "nonce_taken"
