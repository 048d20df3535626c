"""Clients that keep a consortium busy with plan transactions and remember what they were told.

Each client owns one registrar key (NET/keys/bench/registrarNNN.json, from ``huzhu testnet
--bench-keys``) and enrolls one new member after another with consecutive nonces, one
transaction at a time, through ``POST /txs?wait=commit``. A transaction whose fate is unknown
(a node killed, stopped or restarted under it, a commit wait that timed out) is sent again, the
same signed bytes, to the next node until some node says it is committed; a resend is safe,
the nodes deduplicate by tx id and the plan by nonce. Everything a node acknowledged as
committed (200 committed, 409 already_committed, GET /txs/{id} committed) is recorded, so the
campaign can check that each of them is in the chain exactly once.

Every request has a timeout, every client stops when asked, and a client that is stopped with
a transaction still unresolved resumes with that very transaction when started again.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field

from e2e_helpers import Net
from ledger.keys import KeyPair
from ledger.types import Transaction

REQUEST_TIMEOUT_S = 8.0  # below the node's own commit wait (15 s), so a stopped node is left
RETRY_PAUSE_S = 0.1
POLL_S = 3.0  # how long a client polls a node that holds its transaction before resending
YEAR_MS = 365 * 86_400_000
MSGPACK = "application/msgpack"


@dataclass(slots=True)
class Client:
    index: int
    key: KeyPair
    nonce: int = 0
    pending: Transaction | None = None  # signed, fate unknown
    target: int = 0


@dataclass(slots=True)
class Ack:
    tx_id: str
    how: str  # "200", "409", "poll"
    node: int


@dataclass(slots=True)
class Outcomes:
    acked: dict[str, Ack] = field(default_factory=dict)
    answers: Counter = field(default_factory=Counter)  # "status code" -> count
    unexpected: list[str] = field(default_factory=list)  # answers that should never come


class PlanLoad:
    def __init__(self, net: Net, clients: int) -> None:
        self.net = net
        self.birth_ms = net.genesis["genesis_time_ms"] - 30 * YEAR_MS
        bench_dir = net.directory / "keys" / "bench"
        self.clients = [Client(index, KeyPair.load(bench_dir / f"registrar{index:03d}.json"),
                               target=index % len(net.homes))
                        for index in range(clients)]
        self.outcomes = Outcomes()
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.threads: list[threading.Thread] = []

    # --- running ------------------------------------------------------------------------

    def __enter__(self) -> PlanLoad:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        assert not self.threads, "already running"
        self.stop_event.clear()
        self.threads = [threading.Thread(target=self._run, args=(client,), daemon=True,
                                         name=f"plan-client-{client.index}")
                        for client in self.clients]
        for thread in self.threads:
            thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        for thread in self.threads:
            thread.join(timeout=REQUEST_TIMEOUT_S * 3)
            assert not thread.is_alive(), f"{thread.name} did not stop"
        self.threads = []

    def acked_count(self) -> int:
        with self.lock:
            return len(self.outcomes.acked)

    # --- one client -----------------------------------------------------------------------

    def _next_tx(self, client: Client) -> Transaction:
        if client.pending is None:
            seed = b"fault campaign member %d %d" % (client.index, client.nonce)
            member_key = hashlib.sha256(seed).digest()
            client.pending = Transaction.create(
                client.key, self.net.chain_id, client.nonce, "member.enroll",
                {"public_key": member_key, "identity": hashlib.sha256(b"id" + seed).digest(),
                 "birth_ms": self.birth_ms})
        return client.pending

    def _run(self, client: Client) -> None:
        while not self.stop_event.is_set():
            tx = self._next_tx(client)
            how = self._send(client, tx)
            if how is None:
                continue  # unknown fate: the same transaction again (another node perhaps)
            with self.lock:
                self.outcomes.acked[tx.tx_id.hex()] = Ack(tx.tx_id.hex(), how, client.target)
            client.pending = None
            client.nonce += 1

    def _count(self, answer: str, unexpected: str | None = None) -> None:
        with self.lock:
            self.outcomes.answers[answer] += 1
            if unexpected is not None:
                self.outcomes.unexpected.append(unexpected)

    def _rotate(self, client: Client) -> None:
        client.target = (client.target + 1) % len(self.net.homes)
        self.stop_event.wait(RETRY_PAUSE_S)

    def _send(self, client: Client, tx: Transaction) -> str | None:
        """How the commit of ``tx`` was acknowledged, or None when it is still unknown."""
        status, body = self._request("POST", client.target, "/txs?wait=commit", tx.encode())
        error = body.get("error")
        code = error.get("code") if isinstance(error, dict) else None
        self._count(f"{status} {code or body.get('status', '')}")
        if status == 200 and body.get("status") == "committed":
            return "200"
        if status == 409 and code == "already_committed":
            return "409"
        if (status == 409 and code in ("duplicate", "nonce_taken")) or status == 202:
            # The node holds it: ask it for a while, then send it again.
            return self._poll(client, tx)
        if status in (0, 429):
            self._rotate(client)  # down, stopped, full, restarting or not ready
            return None
        self._count("unexpected", f"node{client.target}: {status} {body!r}")
        self._rotate(client)
        return None

    def _poll(self, client: Client, tx: Transaction) -> str | None:
        deadline = time.monotonic() + POLL_S
        while not self.stop_event.is_set() and time.monotonic() < deadline:
            status, body = self._request("GET", client.target, f"/txs/{tx.tx_id.hex()}")
            if status == 200 and body.get("status") == "committed":
                return "poll"
            if status != 200:
                break
            self.stop_event.wait(RETRY_PAUSE_S * 2)
        self._rotate(client)
        return None

    def _request(self, method: str, index: int, path: str,
                 data: bytes | None = None) -> tuple[int, dict]:
        request = urllib.request.Request(self.net.url(index, path), data=data, method=method,
                                         headers={"Content-Type": MSGPACK} if data else {})
        try:
            with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_S) as reply:
                return reply.status, _object(reply.read())
        except urllib.error.HTTPError as exc:
            try:
                return exc.code, _object(exc.read())
            except OSError:
                return exc.code, {}
        except (urllib.error.URLError, OSError, ValueError):
            return 0, {}


def _object(raw: bytes) -> dict:
    try:
        value = json.loads(raw or b"{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


# --- what must hold after every fault -----------------------------------------------------------

def settled(net: Net, indexes) -> int | None:
    """The common height once the nodes report the same height and state root."""
    statuses = []
    for index in indexes:
        code, body = net.get(index, "/status")
        if code != 200:
            return None
        statuses.append(body)
    heights = {status["height"] for status in statuses}
    roots = {status["core"]["app_hash"] for status in statuses}
    return heights.pop() if len(heights) == 1 and len(roots) == 1 else None


def chain_transactions(net: Net, index: int, up_to: int) -> tuple[list[str], Counter, dict]:
    """Block hashes 1..up_to of one node, how often each tx id occurs, and each receipt code."""
    hashes: list[str] = []
    occurrences: Counter = Counter()
    receipts: dict[str, str] = {}
    for height in range(1, up_to + 1):
        code, block = net.get(index, f"/blocks/{height}?full=true")
        assert code == 200, (index, height, code, block)
        hashes.append(block["block_hash"])
        occurrences.update(block["tx_ids"])
        for receipt in block["receipts"] or []:
            receipts[receipt["tx_id"]] = receipt["code"]
    return hashes, occurrences, receipts


def check_consortium(net: Net, load: PlanLoad) -> int:
    """All nodes settle on one chain and state root; every acknowledged commit is in it once.

    Returns the settled height."""
    indexes = range(len(net.homes))
    height = net.wait_until(lambda: settled(net, indexes), "every node at one height and root")
    hashes, occurrences, receipts = chain_transactions(net, 0, height)
    for index in indexes[1:]:
        other = [net.get(index, f"/blocks/{h}")[1]["block_hash"] for h in range(1, height + 1)]
        assert other == hashes, f"node{index}'s chain differs from node0's"
    repeated = [tx_id for tx_id, count in occurrences.items() if count > 1]
    assert not repeated, f"transactions in the chain more than once: {repeated[:5]}"
    outcomes = load.outcomes
    assert not outcomes.unexpected, outcomes.unexpected[:5]
    missing = [tx_id for tx_id in outcomes.acked if occurrences[tx_id] != 1]
    assert not missing, f"{len(missing)} acknowledged commits are not in the chain: {missing[:5]}"
    failed = {tx_id: receipts[tx_id] for tx_id in outcomes.acked if receipts[tx_id] != "ok"}
    assert not failed, f"acknowledged enrollments with failed receipts: {list(failed.items())[:5]}"
    return height
