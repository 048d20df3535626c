"""`huzhu bench`: committed throughput and commit latency of a local consortium.

The benchmark drives a running local consortium of real node processes (`huzhu consortium
up`) with signed plan transactions and reports what a client sees:

- committed transactions per second: transactions whose commit the nodes announced, over
  the time from the first submission to the last commit of the timed phase;
- commit latency p50/p95/p99: from the start of a transaction's POST /txs to the moment the
  node it was sent to announces the block holding it on its /events WebSocket;
- this machine's single-core Ed25519 verify rate, measured in the same run with the same
  primitive the nodes use (``ledger.keys.verify_message``): the best of short samples taken
  before and after the load. And the ratio of committed tx/s to it. Absolute numbers say
  little on a shared 2-core machine; the ratio travels better.

Workload: ``member.enroll`` by registrar keys (a new member each time) and ``member.deposit``
by treasurer keys (to members enrolled in a warm-up phase), alternating. A testnet made with
``--bench-keys K`` has K extra keys per role in NET/keys/bench/; without them the bench uses
the testnet's one registrar and one treasurer key. Each sender belongs to one client, and a
client sends to one node in nonce order, so no transaction fails on a nonce. Everything is
signed before the clock starts: the bench measures the consortium, not its own signing.

Each client keeps at most ``window`` transactions submitted but not yet committed (closed
loop); ``--rate`` adds an open-loop pace for the whole run. A mempool that is full (429) is
retried after a short pause. ``--setup`` makes a 4-node testnet in a temporary directory,
starts it, runs, and stops it again.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from ledger.keys import KeyPair, signing_message, verify_message
from ledger.types import TX_DOMAIN, Transaction

DEFAULT_TXS = 5_000
DEFAULT_CLIENTS = 64
DEFAULT_WINDOW = 10  # uncommitted transactions per client
SETUP_NODES = 4
VERIFY_SAMPLE_S = 0.2
VERIFY_SAMPLES = 5  # before the load and again after it
STALL_TIMEOUT_S = 60.0  # give up when no transaction commits for this long
SWEEP_AFTER_S = 5.0  # no commit seen for this long: poll the pending transactions
SWEEP_MAX_TXS = 2_000
HTTP_TIMEOUT_S = 30.0
FULL_RETRY_S = 0.05  # pause after a 429 before sending the same transaction again
MAX_SUBMIT_ATTEMPTS = 200  # 429s and connection failures per transaction before giving up
DEPOSIT_FEN = 100
YEAR_MS = 365 * 86_400_000
MSGPACK = "application/msgpack"
BENCH_KEYS_DIR = ("keys", "bench")


class BenchError(Exception):
    """The bench cannot run (no consortium, wrong app, nodes not ready)."""


# --- the machine ------------------------------------------------------------------------------

def measure_verify_rate(duration_s: float = VERIFY_SAMPLE_S) -> float:
    """Ed25519 verifications per second on one core, of a typical transaction signature."""
    key = KeyPair.from_seed(hashlib.sha256(b"huzhu bench verify").digest())
    tx = Transaction.create(key, "huzhu-local", 7, "member.deposit",
                            {"member_id": bytes(16), "amount_fen": DEPOSIT_FEN,
                             "reference": "bench-verify"})
    message = signing_message(TX_DOMAIN, tx.chain_id, tx.signing_payload())
    public_key, signature = tx.sender, tx.signature
    count = 0
    start = time.perf_counter()
    deadline = start + duration_s
    while True:
        for _ in range(100):
            if not verify_message(public_key, message, signature):
                raise AssertionError("the reference signature does not verify")
        count += 100
        now = time.perf_counter()
        if now >= deadline:
            return count / (now - start)


def sample_verify_rate(samples: int = VERIFY_SAMPLES) -> list[float]:
    return [measure_verify_rate() for _ in range(samples)]


def machine_info() -> dict:
    return {"cpus": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(terse=True), "processor": _cpu_model()}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


# --- the consortium and its keys ------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Consortium:
    chain_id: str
    genesis_time_ms: int
    api_urls: tuple[str, ...]
    registrars: tuple[KeyPair, ...]
    treasurers: tuple[KeyPair, ...]
    pids: tuple[int, ...] = ()  # the running node processes, when all are known


def load_consortium(directory: Path) -> Consortium:
    from node.config import load_config
    from node.testnet import GENESIS_FILE_NAME, list_node_homes

    directory = Path(directory)
    try:
        genesis = json.loads((directory / GENESIS_FILE_NAME).read_text())
        homes = list_node_homes(directory)
    except (OSError, ValueError) as exc:
        raise BenchError(f"{directory} is not a testnet directory: {exc}") from None
    except Exception as exc:  # TestnetError
        raise BenchError(str(getattr(exc, "message", exc))) from None
    app = genesis.get("app") or {}
    if app.get("name") != "plan":
        raise BenchError("huzhu bench drives the plan application; this testnet runs "
                         f"{app.get('name')!r}")
    urls = tuple(load_config(home).api_url for home in homes)
    keys_dir = directory / "keys"
    bench_dir = directory.joinpath(*BENCH_KEYS_DIR)
    registrars = [KeyPair.load(path) for path in sorted(bench_dir.glob("registrar*.json"))]
    treasurers = [KeyPair.load(path) for path in sorted(bench_dir.glob("treasurer*.json"))]
    registrars.insert(0, KeyPair.load(keys_dir / "registrar.json"))
    treasurers.insert(0, KeyPair.load(keys_dir / "treasurer.json"))
    from node.consortium import node_pid

    pids = tuple(pid for pid in (node_pid(home) for home in homes) if pid is not None)
    return Consortium(genesis["chain_id"], int(genesis["genesis_time_ms"]), urls,
                      tuple(registrars), tuple(treasurers),
                      pids if len(pids) == len(homes) else ())


# --- the workload ---------------------------------------------------------------------------

@dataclass(slots=True)
class ClientPlan:
    """One client: its node, its senders, and its transactions in the order it sends them."""

    index: int
    node: int
    registrar: KeyPair
    treasurer: KeyPair
    warmup: list[tuple[str, bytes]] = field(default_factory=list)  # (tx id hex, raw)
    timed: list[tuple[str, bytes]] = field(default_factory=list)


def _identity(run_tag: bytes, client: int, number: int) -> bytes:
    return hashlib.sha256(b"huzhu bench identity\0%s\0%d\0%d" % (run_tag, client, number)).digest()


def _member_key(run_tag: bytes, client: int, number: int) -> bytes:
    # Members do not sign in the bench, so any 32 bytes will do as their public key.
    return hashlib.sha256(b"huzhu bench member\0%s\0%d\0%d" % (run_tag, client, number)).digest()


def build_plans(consortium: Consortium, txs: int, clients: int, nonces: dict[bytes, int],
                run_tag: bytes) -> list[ClientPlan]:
    """Sign the warm-up (one enrollment per client) and ``txs`` timed transactions, from each
    sender's next nonce in ``nonces``, which is advanced past the signed ones."""
    from contracts.records import member_id_of

    clients = max(1, min(clients, len(consortium.registrars), len(consortium.treasurers)))
    birth_ms = consortium.genesis_time_ms - 30 * YEAR_MS
    plans = []
    for index in range(clients):
        plan = ClientPlan(index, index % len(consortium.api_urls),
                          consortium.registrars[index], consortium.treasurers[index])
        plans.append(plan)
    next_nonce = nonces

    def sign(key: KeyPair, kind: str, body: dict) -> tuple[str, bytes]:
        nonce = next_nonce[key.public_key]
        next_nonce[key.public_key] = nonce + 1
        tx = Transaction.create(key, consortium.chain_id, nonce, kind, body)
        raw = tx.encode()
        return hashlib.sha256(raw).hexdigest(), raw

    def enroll(plan: ClientPlan, number: int) -> tuple[str, bytes]:
        return sign(plan.registrar, "member.enroll", {
            "public_key": _member_key(run_tag, plan.index, number),
            "identity": _identity(run_tag, plan.index, number),
            "birth_ms": birth_ms})

    for plan in plans:
        plan.warmup.append(enroll(plan, 0))
    for number in range(txs):
        plan = plans[number % clients]
        turn = number // clients
        if turn % 2 == 0:
            plan.timed.append(enroll(plan, turn + 1))
        else:
            member_id = member_id_of(_member_key(run_tag, plan.index, 0))
            plan.timed.append(sign(plan.treasurer, "member.deposit", {
                "member_id": member_id, "amount_fen": DEPOSIT_FEN,
                "reference": f"bench-{run_tag.hex()}-{plan.index}-{turn}"}))
    return plans


# --- running a phase ------------------------------------------------------------------------

@dataclass(slots=True)
class PhaseResult:
    submitted: int = 0
    committed: int = 0
    refused: dict[str, int] = field(default_factory=dict)  # reason code -> count
    full_retries: int = 0
    latencies_s: list[float] = field(default_factory=list)
    submit_s: list[float] = field(default_factory=list)  # POST /txs round trips (202 or error)
    first_submit: float = 0.0
    last_commit: float = 0.0
    tx_ids: list[str] = field(default_factory=list)  # committed, in commit order
    uncommitted: int = 0
    total: int = 0
    found_by_polling: int = 0  # commits the event stream missed (a reconnect)


class Phase:
    """Submit every client's transactions, each client in order, and follow the commits."""

    def __init__(self, session: Any, urls: Sequence[str], plans: Sequence[ClientPlan],
                 which: str, window: int, rate: float, on_commit: Callable[[], None]) -> None:
        self.session = session
        self.urls = urls
        self.plans = plans
        self.which = which
        self.window = window
        self.rate = rate
        self.on_commit = on_commit
        self.result = PhaseResult()
        # tx id hex -> (submit start, client, node): registered before the POST is sent, so
        # an event that beats the POST's own answer is not missed.
        self.pending: dict[str, tuple[float, int, int]] = {}
        self.slots = [asyncio.Semaphore(window) for _ in plans]
        self.total = sum(len(getattr(plan, which)) for plan in plans)
        self.result.total = self.total
        self.done = asyncio.Event()
        self._paced = 0
        self._pace_start = 0.0
        self._submitting = len(plans)
        if self.total == 0:
            self.done.set()

    def on_block(self, node: int | None, tx_ids: list[str], now: float) -> None:
        """Commits announced by ``node`` (None: found by polling, any node)."""
        pending = self.pending
        before = self.result.committed
        for tx_id in tx_ids:
            entry = pending.get(tx_id)
            if entry is None or (node is not None and entry[2] != node):
                continue
            del pending[tx_id]
            started, client, _ = entry
            result = self.result
            result.committed += 1
            result.latencies_s.append(now - started)
            result.last_commit = now
            result.tx_ids.append(tx_id)
            self.slots[client].release()
        if self.result.committed != before:
            self.on_commit()
        self._check_done()

    async def sweep(self) -> None:
        """Ask the nodes about pending transactions the event streams may have missed."""
        found = []
        for tx_id, (_, _, node) in list(self.pending.items())[:SWEEP_MAX_TXS]:
            try:
                async with self.session.get(f"{self.urls[node]}/txs/{tx_id}") as reply:
                    answer = await reply.json() if reply.status == 200 else {}
            except Exception:  # a node that is down answers nothing; try again later
                continue
            if answer.get("status") == "committed":
                found.append(tx_id)
        if found:
            self.result.found_by_polling += len(found)
            self.on_block(None, found, time.perf_counter())

    def _check_done(self) -> None:
        # ``pending``: accepted (or being submitted) and not yet committed
        if self._submitting == 0 and not self.pending:
            self.done.set()

    async def _pace(self) -> None:
        if self.rate <= 0:
            return
        if self._paced == 0:
            self._pace_start = time.perf_counter()
        due = self._pace_start + self._paced / self.rate
        self._paced += 1
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)

    async def run_client(self, plan: ClientPlan) -> None:
        url = self.urls[plan.node] + "/txs"
        slot = self.slots[plan.index]
        result = self.result
        for tx_id, raw in getattr(plan, self.which):
            await slot.acquire()
            await self._pace()
            started = time.perf_counter()
            if result.first_submit == 0.0:
                result.first_submit = started
            self.pending[tx_id] = (started, plan.index, plan.node)
            code = await self._submit(url, raw)
            result.submit_s.append(time.perf_counter() - started)
            result.submitted += 1
            if code in ("ok", "duplicate", "already_committed"):
                # A duplicate is our own earlier attempt whose answer was lost.
                continue
            result.refused[code] = result.refused.get(code, 0) + 1
            if self.pending.pop(tx_id, None) is not None:
                slot.release()
        self._submitting -= 1
        self._check_done()

    async def _submit(self, url: str, raw: bytes) -> str:
        import aiohttp

        for _ in range(MAX_SUBMIT_ATTEMPTS):
            try:
                async with self.session.post(url, data=raw,
                                             headers={"Content-Type": MSGPACK}) as reply:
                    body = await reply.read()
                    if reply.status in (200, 202):
                        return "ok"
                    code = _error_code(body, reply.status)
                    if reply.status == 429:
                        self.result.full_retries += 1
                        await asyncio.sleep(FULL_RETRY_S)
                        continue
                    return code
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
                await asyncio.sleep(FULL_RETRY_S)
        return "gave_up"


def _error_code(body: bytes, status: int) -> str:
    try:
        return str(json.loads(body)["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return f"http_{status}"


async def _follow_events(session: Any, node: int, url: str, phases: list[Phase],
                         connected: asyncio.Event) -> None:
    """Hand every block the node announces to the phase that is running."""
    import aiohttp

    ws_url = url.replace("http://", "ws://", 1) + "/events"
    while True:
        try:
            async with session.ws_connect(ws_url, heartbeat=30, max_msg_size=0) as ws:
                connected.set()
                async for message in ws:
                    if message.type != aiohttp.WSMsgType.TEXT:
                        break
                    now = time.perf_counter()
                    event = json.loads(message.data)
                    if event.get("type") == "block" and phases:
                        phases[-1].on_block(node, event.get("tx_ids") or [], now)
        except asyncio.CancelledError:
            raise
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError, ValueError):
            pass
        # The node closed the stream (it was restarted, or we fell behind): reconnect. Commits
        # announced in between are found by the final sweep over the blocks.
        await asyncio.sleep(0.2)


@dataclass(slots=True)
class Measurement:
    nodes: int
    clients: int
    window: int
    rate: float
    warmup: PhaseResult
    timed: PhaseResult
    heights: tuple[int, int]  # committed height (node 0) before and after the timed phase
    receipts: dict[str, int]  # receipt code -> count among the timed transactions
    node_cpu_s: float | None = None  # CPU time the node processes used in the timed phase
    client_cpu_s: float = 0.0  # and this process


def process_cpu_s(pids: Sequence[int]) -> float | None:
    """User + system CPU seconds of these processes so far (Linux /proc; None elsewhere)."""
    total = 0
    try:
        for pid in pids:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    except (OSError, IndexError, ValueError):
        return None
    return total / os.sysconf("SC_CLK_TCK")


async def _get_json(session: Any, url: str) -> Any:
    async with session.get(url) as reply:
        if reply.status != 200:
            raise BenchError(f"GET {url}: HTTP {reply.status}")
        return await reply.json()


async def _next_nonces(session: Any, url: str, keys: Sequence[KeyPair]) -> dict[bytes, int]:
    nonces = {}
    for key in keys:
        answer = await _get_json(session, f"{url}/state/nonce/{key.public_key.hex()}")
        nonces[key.public_key] = int(answer["value"]["next_nonce"])
    return nonces


async def _receipt_codes(session: Any, url: str, low: int, high: int,
                         tx_ids: set[str]) -> dict[str, int]:
    """The receipt codes of ``tx_ids`` in the blocks ``low+1 .. high`` of one node."""
    codes: dict[str, int] = {}
    for height in range(low + 1, high + 1):
        block = await _get_json(session, f"{url}/blocks/{height}?full=true")
        for receipt in block.get("receipts") or []:
            if receipt["tx_id"] in tx_ids:
                codes[receipt["code"]] = codes.get(receipt["code"], 0) + 1
    return codes


async def measure(consortium: Consortium, txs: int, clients: int, window: int, rate: float,
                  progress: Callable[[str, int, int], None] | None = None) -> Measurement:
    import aiohttp

    progress = progress or (lambda phase, done, total: None)
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=HTTP_TIMEOUT_S)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        urls = consortium.api_urls
        for url in urls:
            await _wait_ready(session, url)
        senders = [*consortium.registrars, *consortium.treasurers]
        nonces = await _next_nonces(session, urls[0], senders)
        plans = build_plans(consortium, txs, clients, nonces, os.urandom(8))
        phases: list[Phase] = []
        listeners = []
        for node, url in enumerate(urls):
            connected = asyncio.Event()
            listeners.append((asyncio.create_task(
                _follow_events(session, node, url, phases, connected)), connected))
        try:
            for _, connected in listeners:
                await asyncio.wait_for(connected.wait(), HTTP_TIMEOUT_S)
            warmup = await _run_phase(session, urls, plans, "warmup", window, 0.0, phases,
                                      progress)
            start_height = (await _get_json(session, f"{urls[0]}/status"))["height"]
            cpu_before = process_cpu_s(consortium.pids) if consortium.pids else None
            client_before = time.process_time()
            timed = await _run_phase(session, urls, plans, "timed", window, rate, phases,
                                     progress)
            cpu_after = process_cpu_s(consortium.pids) if consortium.pids else None
            client_cpu_s = time.process_time() - client_before
            end_height = await _settle_height(session, urls[0], timed)
        finally:
            for task, _ in listeners:
                task.cancel()
            await asyncio.gather(*(task for task, _ in listeners), return_exceptions=True)
        receipts = await _receipt_codes(session, urls[0], start_height, end_height,
                                        set(timed.tx_ids))
    node_cpu_s = cpu_after - cpu_before if cpu_before is not None and cpu_after is not None \
        else None
    return Measurement(len(urls), len(plans), window, rate, warmup, timed,
                       (start_height, end_height), receipts, node_cpu_s, client_cpu_s)


async def _wait_ready(session: Any, url: str, timeout_s: float = HTTP_TIMEOUT_S) -> None:
    import aiohttp

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            async with session.get(url + "/readyz") as reply:
                if reply.status == 200:
                    return
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError):
            pass
        if time.monotonic() > deadline:
            raise BenchError(f"the node at {url} is not ready (is the consortium up?)")
        await asyncio.sleep(0.2)


async def _settle_height(session: Any, url: str, timed: PhaseResult) -> int:
    """Node 0's height once it holds every block of the timed phase."""
    height = (await _get_json(session, f"{url}/status"))["height"]
    if not timed.tx_ids:
        return height
    last = timed.tx_ids[-1]
    deadline = time.monotonic() + STALL_TIMEOUT_S
    while time.monotonic() < deadline:
        answer = await _get_json(session, f"{url}/txs/{last}")
        if answer.get("status") == "committed":
            return max(height, int(answer["height"]))
        await asyncio.sleep(0.1)
        height = (await _get_json(session, f"{url}/status"))["height"]
    return height


async def _run_phase(session: Any, urls: Sequence[str], plans: Sequence[ClientPlan], which: str,
                     window: int, rate: float, phases: list[Phase],
                     progress: Callable[[str, int, int], None]) -> PhaseResult:
    def on_commit() -> None:
        progress(which, phase.result.committed, phase.total)

    phase = Phase(session, urls, plans, which, window, rate, on_commit)
    phases.append(phase)
    progress(which, 0, phase.total)
    clients = [asyncio.create_task(phase.run_client(plan)) for plan in plans]
    try:
        last_seen = -1
        quiet_s = 0.0
        while not phase.done.is_set():
            try:
                await asyncio.wait_for(phase.done.wait(), SWEEP_AFTER_S)
            except asyncio.TimeoutError:
                if phase.result.committed != last_seen:
                    last_seen = phase.result.committed
                    quiet_s = 0.0
                    continue
                quiet_s += SWEEP_AFTER_S
                await phase.sweep()
                if phase.result.committed == last_seen and quiet_s >= STALL_TIMEOUT_S:
                    break  # nothing committed for a whole stall timeout
    finally:
        for task in clients:
            task.cancel()
        await asyncio.gather(*clients, return_exceptions=True)
    phase.result.uncommitted = len(phase.pending)
    return phase.result


# --- the report -----------------------------------------------------------------------------

def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted values (0 for none)."""
    if not sorted_values:
        return 0.0
    rank = max(1, min(len(sorted_values), int(-(-fraction * len(sorted_values) // 1))))
    return sorted_values[rank - 1]


def report(measurement: Measurement, verify_samples: Sequence[float], setup: bool) -> dict:
    """The run's numbers. The verify rate is the best of short samples taken before and
    after the load: other work on a shared machine only ever slows a sample down, so the best
    is the closest to what one core can do (the median is reported too)."""
    from node.runtime import event_loop_name

    verify_per_s = max(verify_samples, default=0.0)
    timed = measurement.timed
    elapsed_s = max(timed.last_commit - timed.first_submit, 1e-9) if timed.committed else 0.0
    tx_per_s = timed.committed / elapsed_s if elapsed_s else 0.0
    latencies = sorted(timed.latencies_s)
    low, high = measurement.heights
    blocks = max(high - low, 0)
    failed = sum(count for code, count in measurement.receipts.items() if code != "ok")
    node_cpu_ms_per_tx = measurement.node_cpu_s * 1000 / timed.committed \
        if measurement.node_cpu_s and timed.committed else None
    return {
        "tx_per_s": round(tx_per_s, 1),
        "latency_ms": {name: round(percentile(latencies, fraction) * 1000, 1)
                       for name, fraction in (("p50", 0.50), ("p95", 0.95), ("p99", 0.99))}
        | {"max": round(latencies[-1] * 1000, 1) if latencies else 0.0},
        # How long a POST /txs took to be answered: when it grows, clients (not the
        # consortium) limit the offered load.
        "submit_ms": {name: round(percentile(sorted(timed.submit_s), fraction) * 1000, 1)
                      for name, fraction in (("p50", 0.50), ("p99", 0.99))},
        "verify_per_s": round(verify_per_s, 1),
        "verify_per_s_median": round(statistics.median(verify_samples), 1)
        if verify_samples else 0.0,
        "ratio": round(tx_per_s / verify_per_s, 4) if verify_per_s else 0.0,
        "nodes": measurement.nodes,
        "txs": timed.total,
        "committed": timed.committed,
        "uncommitted": timed.uncommitted,
        "refused": dict(sorted(timed.refused.items())),
        "failed_receipts": failed,
        "receipt_codes": dict(sorted(measurement.receipts.items())),
        "mempool_full_retries": timed.full_retries,
        "found_by_polling": timed.found_by_polling,
        "duration_s": round(elapsed_s, 3),
        "clients": measurement.clients,
        "window": measurement.window,
        "rate": measurement.rate or None,
        "blocks": blocks,
        "txs_per_block": round(timed.committed / blocks, 1) if blocks else 0.0,
        # CPU the nodes spent per committed transaction, all nodes together, and what that
        # would allow if they had every core of this machine to themselves (an estimate for a
        # machine that is not shared; contention makes it pessimistic, not optimistic).
        "node_cpu_ms_per_tx": round(node_cpu_ms_per_tx, 3) if node_cpu_ms_per_tx else None,
        "cpu_bound_tx_per_s": round((os.cpu_count() or 1) * 1000 / node_cpu_ms_per_tx, 1)
        if node_cpu_ms_per_tx else None,
        "client_cpu_s": round(measurement.client_cpu_s, 3),
        "event_loop": event_loop_name(),
        "setup": setup,
        "machine": machine_info(),
    }


def render(result: dict) -> str:
    latency = result["latency_ms"]
    lines = [
        f"committed      {result['committed']} of {result['txs']} txs on {result['nodes']} nodes "
        f"in {result['duration_s']} s ({result['blocks']} blocks, "
        f"{result['txs_per_block']} txs/block)",
        f"throughput     {result['tx_per_s']} tx/s",
        f"latency        p50 {latency['p50']} ms  p95 {latency['p95']} ms  "
        f"p99 {latency['p99']} ms  max {latency['max']} ms",
        f"verify rate    {result['verify_per_s']} Ed25519 verifies/s on one core "
        f"(best sample; median {result['verify_per_s_median']})",
        f"ratio          {result['ratio']} (committed tx/s per single-core verify/s)",
        f"node CPU       {result['node_cpu_ms_per_tx']} ms per tx, all nodes together: "
        f"CPU-bound at {result['cpu_bound_tx_per_s']} tx/s on {result['machine']['cpus']} "
        f"cores",
        f"clients        {result['clients']} x window {result['window']}"
        + (f", paced at {result['rate']} tx/s" if result["rate"] else ""),
    ]
    if result["refused"] or result["failed_receipts"] or result["uncommitted"]:
        lines.append(f"problems       refused {result['refused']}, failed receipts "
                     f"{result['failed_receipts']} {result['receipt_codes']}, "
                     f"uncommitted {result['uncommitted']}")
    return "\n".join(lines)


# --- --setup: a testnet of its own ------------------------------------------------------------

def free_base_port(count: int) -> int:
    """A base port with ``count`` consecutive free ports on 127.0.0.1."""
    from node.testnet import free_port_block

    try:
        return free_port_block(count)
    except OSError as exc:
        raise BenchError(str(exc)) from None


class OwnTestnet:
    """``--setup``: make, start and afterwards stop (and delete) a testnet."""

    def __init__(self, nodes: int, bench_keys: int, directory: Path | None) -> None:
        self.nodes = nodes
        self.bench_keys = bench_keys
        self.temporary = directory is None
        self.directory = Path(tempfile.mkdtemp(prefix="huzhu-bench-")) / "net" \
            if directory is None else Path(directory)

    def __enter__(self) -> Path:
        from node import consortium
        from node.testnet import PORTS_PER_NODE, create_testnet

        create_testnet(self.directory, self.nodes, app="plan", bench_keys=self.bench_keys,
                       base_port=free_base_port(PORTS_PER_NODE * self.nodes))
        consortium.up(self.directory)
        return self.directory

    def __exit__(self, *exc: object) -> None:
        from node import consortium

        try:
            consortium.down(self.directory)
        finally:
            if self.temporary:
                shutil.rmtree(self.directory.parent, ignore_errors=True)


# --- the command ----------------------------------------------------------------------------

def run_bench(directory: Path, txs: int, clients: int, window: int, rate: float,
              show_progress: bool = True) -> dict:
    consortium = load_consortium(directory)
    verify_samples = sample_verify_rate()
    progress, finish = _progress_bar(show_progress)
    try:
        from node.runtime import run_event_loop

        measurement = run_event_loop(measure(consortium, txs, clients, window, rate, progress))
    finally:
        finish()
    verify_samples += sample_verify_rate()
    return report(measurement, verify_samples, setup=False)


def _progress_bar(enabled: bool) -> tuple[Callable[[str, int, int], None], Callable[[], None]]:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, \
        TimeElapsedColumn

    console = Console(stderr=True)
    if not enabled or not console.is_terminal:
        return (lambda phase, done, total: None), (lambda: None)
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), console=console, transient=True)
    tasks: dict[str, Any] = {}
    bar.start()

    def update(phase: str, done: int, total: int) -> None:
        if phase not in tasks:
            label = "warm-up" if phase == "warmup" else "committed"
            tasks[phase] = bar.add_task(label, total=total)
        bar.update(tasks[phase], completed=done, total=total)

    return update, bar.stop


@click.command("bench")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="The running testnet (NET); with --setup, where to make one "
                                 "(default: a temporary directory).")
@click.option("--txs", type=click.IntRange(1, 1_000_000), default=DEFAULT_TXS,
              show_default=True, help="Transactions in the timed phase.")
@click.option("--clients", type=click.IntRange(1, 256), default=DEFAULT_CLIENTS,
              show_default=True, help="Concurrent clients (each with its own senders; at most "
                                      "the number of registrar keys).")
@click.option("--window", type=click.IntRange(1, 10_000), default=DEFAULT_WINDOW,
              show_default=True, help="Uncommitted transactions per client.")
@click.option("--rate", type=click.FloatRange(min=0), default=0.0,
              help="Offered load in tx/s for the whole run (default: as fast as the windows "
                   "allow).")
@click.option("--setup", is_flag=True, help="Make, start and afterwards stop a 4-node testnet.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object on stdout.")
def bench_command(directory: Path | None, txs: int, clients: int, window: int, rate: float,
                  setup: bool, as_json: bool) -> None:
    """Committed tx/s and commit latency of a local consortium, against this machine's
    Ed25519 verify rate. Exit 0 when every transaction committed, 1 otherwise."""
    if directory is None and not setup:
        raise click.UsageError("give --dir NET (a running testnet) or --setup")
    try:
        if setup:
            if directory is not None and directory.exists() and any(directory.iterdir()):
                raise BenchError(f"--setup makes a new testnet; {directory} is not empty")
            with OwnTestnet(SETUP_NODES, min(clients, 255), directory) as net:
                result = run_bench(net, txs, clients, window, rate)
            result["setup"] = True
        else:
            result = run_bench(directory, txs, clients, window, rate)
    except BenchError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(result))
    else:
        click.echo(render(result))
    if result["committed"] != result["txs"] or result["failed_receipts"]:
        sys.exit(1)


__all__ = ["bench_command", "measure_verify_rate", "percentile", "run_bench"]
