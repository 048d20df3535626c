"""Prometheus metrics of real node runtimes: four in one process, a real 4-node plan chain.

Every scrape goes through GET /metrics and prometheus-client's own parser. The numbers must
move with what happens: committed transactions and heights, peer frames by type in and out,
latency histograms, the plan's members and claims by state, invalid peer frames dropped by
reason, a view change when the primary stops, and the stopped peer's connection gauge.
Each runtime has its own registry, so four nodes in one process keep their numbers apart.
"""

from __future__ import annotations

import asyncio
import hashlib
import sys
import time
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from consensus.messages import Prepare, encode_message
from ledger.keys import KeyPair
from ledger.types import Transaction
from node.config import load_config
from node.metrics import ClaimStates, frame_summary
from node.runtime import NodeRuntime
from node.testnet import create_testnet

# tests/<dir> are not packages; the port helper lives with the e2e helpers.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
from e2e_helpers import free_port_block  # noqa: E402

WAIT_S = 60.0  # generous: four nodes share one event loop, on a possibly busy machine
STOP_TIMEOUT_S = 30.0
YEAR_MS = 365 * 24 * 3600 * 1000


class Metrics:
    """One scrape: {(name, sorted labels): value} and {family name: type}."""

    def __init__(self, text: str) -> None:
        self.samples: dict[tuple[str, tuple], float] = {}
        self.types: dict[str, str] = {}
        for family in text_string_to_metric_families(text):
            self.types[family.name] = family.type
            for sample in family.samples:
                self.samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value

    def get(self, name: str, **labels: str) -> float:
        return self.samples[(name, tuple(sorted(labels.items())))]

    def count(self, name: str, **labels: str) -> float:
        """A counter whose series appears with its first event: 0 until then."""
        return self.samples.get((name, tuple(sorted(labels.items()))), 0)


class Consortium:
    def __init__(self, runtimes: list[NodeRuntime], directory: Path,
                 session: aiohttp.ClientSession) -> None:
        self.runtimes = runtimes
        self.directory = directory
        self.session = session
        self.chain_id = runtimes[0].chain_id
        self.nonces: dict[bytes, int] = {}

    async def metrics(self, index: int) -> Metrics:
        async with self.session.get(self.runtimes[index].config.api_url + "/metrics") as reply:
            assert reply.status == 200
            assert reply.headers["Content-Type"].startswith("text/plain")
            return Metrics(await reply.text())

    async def send(self, index: int, key: KeyPair, kind: str, body: dict) -> dict:
        """Submit to node ``index`` and wait until that node has committed it."""
        nonce = self.nonces.get(key.public_key, 0)
        tx = Transaction.create(key, self.chain_id, nonce, kind, body)
        self.nonces[key.public_key] = nonce + 1
        base = self.runtimes[index].config.api_url
        async with self.session.post(base + "/txs", json={"tx": tx.encode().hex()}) as reply:
            answer = await reply.json()
        assert reply.status == 202, answer
        committed: dict = {}

        async def is_committed() -> bool:
            async with self.session.get(f"{base}/txs/{tx.tx_id.hex()}") as reply:
                committed.update(await reply.json())
            return committed.get("status") == "committed"
        await self.wait_for(is_committed, f"{kind} committed on node {index}")
        assert committed["receipt"]["ok"], committed["receipt"]
        return committed

    def role(self, name: str) -> KeyPair:
        return KeyPair.load(self.directory / "keys" / f"{name}.json")

    async def wait_for(self, predicate, what: str) -> None:
        deadline = time.monotonic() + WAIT_S
        while not await predicate():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            await asyncio.sleep(0.05)


@pytest.fixture
async def consortium(tmp_path: Path):
    layout = create_testnet(tmp_path / "net", 4, base_port=free_port_block(8), app="plan")
    runtimes = [NodeRuntime(load_config(home)) for home in layout.node_homes]
    started = []
    try:
        for runtime in runtimes:
            await runtime.start()
            started.append(runtime)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WAIT_S)) as session:
            net = Consortium(runtimes, layout.directory, session)

            async def all_ready() -> bool:
                return all(runtime.readiness()[0] for runtime in runtimes)
            await net.wait_for(all_ready, "four ready nodes")
            yield net
    finally:
        for runtime in started:
            await asyncio.wait_for(runtime.stop(), STOP_TIMEOUT_S)


def member_id(key: KeyPair) -> bytes:
    return hashlib.sha256(key.public_key).digest()[:16]


async def test_metrics_parse_and_move_when_transactions_commit(consortium: Consortium) -> None:
    net = consortium
    primary = net.runtimes[0].status()["primary"]
    replica = next(index for index in range(4) if index != primary)
    before = await net.metrics(replica)
    before_primary = await net.metrics(primary)
    assert before.types["huzhu_height"] == "gauge"
    assert before.types["huzhu_committed_txs"] == "counter"
    assert before.types["huzhu_block_execution_seconds"] == "histogram"
    assert before.get("huzhu_plan_members_active") == 0
    assert before.get("huzhu_peers_connected") == 3

    registrar, reviewer = net.role("registrar"), net.role("reviewer")
    alice, bob = KeyPair.generate(), KeyPair.generate()
    now_ms = int(time.time() * 1000)
    for person in (alice, bob):
        enrolled = await net.send(primary, registrar, "member.enroll",
                                  {"public_key": person.public_key,
                                   "identity": hashlib.sha256(person.public_key).digest(),
                                   "birth_ms": now_ms - 35 * YEAR_MS})

    async def replica_has_members() -> bool:  # the replica admits alice's claim only then
        return net.runtimes[replica].status()["height"] >= enrolled["height"]
    await net.wait_for(replica_has_members, "the replica at the enrollments' height")
    diagnosis_ms = int(time.time() * 1000)  # after the enrollment's block time
    claim = await net.send(replica, alice, "claim.submit",
                           {"condition": "ACCIDENT", "diagnosis_ms": diagnosis_ms,
                            "amount_fen": 1_000_000, "evidence_root": bytes(32)})
    middle = await net.metrics(replica)
    assert middle.get("huzhu_plan_claims", state="submitted") == 1
    # net.send waits until the node it was sent to (here the replica) has committed it.
    await net.send(replica, reviewer, "claim.review",
                   {"decision": "approve", "claim_id": claim["receipt"]["result"]["claim_id"],
                    "amount_fen": 900_000})
    after = await net.metrics(replica)
    after_primary = await net.metrics(primary)

    # Heights and committed transactions: exactly the four sent.
    assert after.get("huzhu_height") >= before.get("huzhu_height") + 1
    assert after.get("huzhu_committed_txs_total") == before.get("huzhu_committed_txs_total") + 4
    assert (after.get("huzhu_committed_blocks_total")
            > before.get("huzhu_committed_blocks_total"))
    # Every committed block was executed once, and timed.
    assert (after.get("huzhu_block_execution_seconds_count")
            == after.get("huzhu_committed_blocks_total"))
    # Consensus traffic by type: the replica received the primary's proposals and the votes,
    # the primary sent its proposals to all three peers.
    for kind in ("preprepare", "prepare", "commit"):
        received = (after.get("huzhu_messages_total", direction="in", type=kind)
                    - before.get("huzhu_messages_total", direction="in", type=kind))
        received_bytes = (after.get("huzhu_message_bytes_total", direction="in", type=kind)
                          - before.get("huzhu_message_bytes_total", direction="in", type=kind))
        assert received >= 1 and received_bytes > received * 32, kind
    sent = (after_primary.get("huzhu_messages_total", direction="out", type="preprepare")
            - before_primary.get("huzhu_messages_total", direction="out", type="preprepare"))
    assert sent >= 3  # each proposal goes to each of the three peers
    assert after.get("huzhu_messages_total", direction="in", type="unreadable") == 0
    # Latencies: blocks this replica saw proposed, transactions sent to it.
    assert (after.get("huzhu_block_commit_seconds_count")
            > before.get("huzhu_block_commit_seconds_count"))
    assert (after.get("huzhu_tx_commit_seconds_count")
            == before.get("huzhu_tx_commit_seconds_count") + 2)
    assert after.get("huzhu_txs_submitted_total", outcome="accepted") == 2
    # The plan's counters.
    assert after.get("huzhu_plan_members_active") == 2
    assert after.get("huzhu_plan_members_enrolled_total") == 2
    assert after.get("huzhu_plan_claims_submitted_total") == 1
    assert after.get("huzhu_plan_claims", state="submitted") == 0
    assert after.get("huzhu_plan_claims", state="notice") == 1
    assert after.get("huzhu_plan_settlements_total") == 0
    assert after.get("huzhu_plan_conservation_ok") == 1
    # Each node counts its own: the primary took the two enrollments, not the replica's two.
    assert after_primary.get("huzhu_txs_submitted_total", outcome="accepted") == 2


async def test_invalid_peer_frames_are_dropped_and_counted_by_reason(
        consortium: Consortium) -> None:
    net = consortium
    runtime = net.runtimes[1]
    before = await net.metrics(1)
    # Frames as the transport delivers them from peer 2: garbage, and a vote claiming to be
    # from replica 3.
    runtime._on_frame(2, b"\xc1 not msgpack")
    forged = Prepare(view=0, height=1, replica=3, block_hash=bytes(32), signature=bytes(64))
    runtime._on_frame(2, encode_message(forged))
    after = await net.metrics(1)
    for reason in ("malformed", "sender_mismatch"):
        assert (after.get("huzhu_messages_dropped_total", reason=reason)
                == before.count("huzhu_messages_dropped_total", reason=reason) + 1), reason
    assert (after.get("huzhu_messages_total", direction="in", type="unreadable")
            == before.get("huzhu_messages_total", direction="in", type="unreadable") + 1)
    assert runtime.readiness()[0]  # and the node carries on


async def test_a_stopped_primary_shows_as_a_view_change(consortium: Consortium) -> None:
    net = consortium
    primary = net.runtimes[0].status()["primary"]
    survivors = [index for index in range(4) if index != primary]
    await asyncio.wait_for(net.runtimes[primary].stop(), STOP_TIMEOUT_S)
    # A waiting transaction makes the survivors time out on the silent primary.
    target = survivors[0]
    await net.send(target, net.role("registrar"), "member.enroll",
                   {"public_key": KeyPair.generate().public_key, "identity": bytes(32),
                    "birth_ms": int(time.time() * 1000) - 40 * YEAR_MS})
    metrics = await net.metrics(target)
    assert metrics.get("huzhu_view") >= 1
    assert metrics.get("huzhu_view_changes_total") >= 1
    assert metrics.get("huzhu_primary") != primary
    assert metrics.get("huzhu_peer_connected", peer=str(primary)) == 0
    assert metrics.get("huzhu_peers_connected") == 2
    assert metrics.get("huzhu_plan_members_active") == 1


def test_frame_summary_reads_type_and_height_without_decoding_everything() -> None:
    vote = Prepare(view=2, height=17, replica=1, block_hash=bytes(32), signature=bytes(64))
    assert frame_summary(encode_message(vote)) == ("prepare", 17)
    import msgpack

    assert frame_summary(msgpack.packb({"type": "gossip", "height": 3})) == ("unknown", None)
    assert frame_summary(msgpack.packb({"type": 5})) == ("unreadable", None)
    assert frame_summary(msgpack.packb([1, 2])) == ("unreadable", None)
    assert frame_summary(b"") == ("unreadable", None)
    assert frame_summary(msgpack.packb({str(i): i for i in range(40)})) == ("unreadable", None)


def test_claim_states_reread_only_open_claims_within_a_budget(monkeypatch) -> None:
    import node.metrics

    monkeypatch.setattr(node.metrics, "MAX_CLAIM_READS_PER_SCRAPE", 2)
    states = {1: "submitted", 2: "notice", 3: "paid"}
    reads: list[int] = []

    def read_state(claim_id: int) -> str:
        reads.append(claim_id)
        return states[claim_id]

    tracker = ClaimStates()
    tracker.refresh(3, read_state)
    assert reads == [1, 2]  # the budget: claim 3 waits for the next scrape
    assert tracker.counts()["notice"] == 1 and tracker.counts()["submitted"] == 2
    tracker.refresh(3, read_state)
    assert reads[2:] == [3, 1]  # round robin: the one not read last time comes first
    assert tracker.counts()["paid"] == 1
    states[1] = "closed"
    tracker.refresh(3, read_state)
    counts = tracker.counts()
    assert (counts["closed"], counts["notice"], counts["paid"], counts["submitted"]) == (1, 1, 1, 0)
    reads.clear()
    tracker.refresh(3, read_state)
    assert reads == [2]  # final claims are never read again
    assert sum(tracker.counts().values()) == 3


def test_each_runtime_has_its_own_registry() -> None:
    from node.metrics import NodeMetrics

    first = NodeMetrics(lambda: {"height": 5, "peers": [], "core": {}})
    second = NodeMetrics(lambda: {"height": 9, "peers": [], "core": {}})
    first.block_committed(5, [b"a" * 32, b"b" * 32])
    one, two = Metrics(first.exposition().decode()), Metrics(second.exposition().decode())
    assert (one.get("huzhu_height"), two.get("huzhu_height")) == (5, 9)
    assert (one.get("huzhu_committed_txs_total"), two.get("huzhu_committed_txs_total")) == (2, 0)
