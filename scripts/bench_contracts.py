#!/usr/bin/env python3
"""Benchmark of the mutual-aid contracts (PlanApp), outside any node.

1. Scale: the cost of one settlement block (execute_block + commit, with one claim paid) and
   of one member's balance query, with 10,000 and with 1,000,000 members. Members are created
   in bulk by calling the real enroll and deposit handlers in a loop (no signatures, no
   blocks), committed to the state tree in chunks and persisted into an in-memory store, so
   the state is exactly what that many enrollments would leave. Both costs must stay flat.
2. Throughput: executed transactions per second of execute_block + commit on a mixed plan
   workload (enrollments, deposits, claims, reviews, evidence anchors, objections, exits),
   with signature verification on (as a node with a cold cache) and off, next to this
   machine's Ed25519 verify rate.

    .venv/bin/python scripts/bench_contracts.py                 # both parts, 10k and 1M
    .venv/bin/python scripts/bench_contracts.py --sizes 10000 --json
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import statistics
import sys
import time
from pathlib import Path

from sortedcontainers import SortedList

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from contracts import PlanApp, members  # noqa: E402
from contracts.env import BlockEnv, TxEnv  # noqa: E402
from contracts.genesis import DAY_MS, YEAR_MS, default_app_genesis  # noqa: E402
from contracts.layout import ORDERED_PREFIXES  # noqa: E402
from contracts.records import member_id_of  # noqa: E402
from ledger import keys, merkle  # noqa: E402
from ledger.hashing import ZERO_HASH, sha256  # noqa: E402
from ledger.types import BlockHeader, Transaction, results_hash, tx_root  # noqa: E402

CHAIN_ID = "huzhu-bench"
GENESIS_MS = 1_700_000_000_000
PERIOD_MS = YEAR_MS // 24
CHUNK_MEMBERS = 50_000


class BenchStore:
    """A StateReader over a dict, with sorted keys for the two range-read prefixes only."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}
        self.ordered = SortedList()

    def get_state(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def iterate_state(self, start: bytes, stop: bytes):
        for key in self.ordered.irange(start, stop, inclusive=(True, False)):
            yield key, self.data[key]

    def apply(self, writes) -> None:
        for key, value in writes:
            ordered = key.startswith(ORDERED_PREFIXES)
            if value is None:
                if self.data.pop(key, None) is not None and ordered:
                    self.ordered.remove(key)
            else:
                if ordered and key not in self.data:
                    self.ordered.add(key)
                self.data[key] = value


def key(name: str) -> keys.KeyPair:
    return keys.KeyPair.from_seed(sha256(name.encode()))


ORGS = [key(f"org{i}") for i in range(4)]
REGISTRAR, TREASURER, REVIEWER, HOSPITAL = (key(n) for n in
                                            ("registrar", "treasurer", "reviewer", "hospital"))


def genesis() -> dict:
    return default_app_genesis(
        orgs=[{"name": f"org{i}", "gov_key": o.public_key} for i, o in enumerate(ORGS)],
        roles={"registrar": [REGISTRAR.public_key], "treasurer": [TREASURER.public_key],
               "reviewer": [REVIEWER.public_key], "hospital": [HOSPITAL.public_key]},
        params_overrides={"jury_size": 5, "jury_quorum": 3}, genesis_time_ms=GENESIS_MS)


class Driver:
    """Plays the node: blocks in, commit, writes persisted."""

    def __init__(self, verify_signatures: bool = True) -> None:
        self.store = BenchStore()
        self.app = PlanApp(genesis(), CHAIN_ID, self.store, verify_signatures=verify_signatures)
        self.root = self.app.commit()
        self.store.apply(self.app.take_writes())
        self.height = 0
        self.time_ms = GENESIS_MS
        self.prev_hash = ZERO_HASH
        self.results = merkle.EMPTY_ROOT
        self.nonces: dict[bytes, int] = {}

    def tx(self, pair: keys.KeyPair, kind: str, body: dict) -> Transaction:
        nonce = self.nonces.get(pair.public_key, 0)
        self.nonces[pair.public_key] = nonce + 1
        return Transaction.create(pair, CHAIN_ID, nonce, kind, body)

    def block(self, txs=(), at_ms: int | None = None) -> tuple[list, float, float]:
        """Execute and commit one block; returns (receipts, execute seconds, commit seconds)."""
        self.time_ms = at_ms if at_ms is not None else self.time_ms + 1_000
        self.height += 1
        txs = list(txs)
        header = BlockHeader(CHAIN_ID, self.height, 0, self.prev_hash, self.time_ms, 0,
                             tx_root([t.tx_id for t in txs]), len(txs), self.root, self.results)
        start = time.perf_counter()
        receipts = self.app.execute_block(header, txs)
        middle = time.perf_counter()
        self.root = self.app.commit()
        end = time.perf_counter()
        self.store.apply(self.app.take_writes())
        self.prev_hash, self.results = header.block_hash, results_hash(receipts)
        return receipts, middle - start, end - middle

    def bulk_members(self, count: int, deposit_fen: int) -> list[bytes]:
        """Enroll and fund ``count`` members through the real handlers, in chunks."""
        plan = self.app._plan  # the bench calls handlers directly, as execute_block would
        state = self.app._state
        member_ids = []
        self.height += 1
        self.time_ms += 1_000
        block = BlockEnv(CHAIN_ID, self.height, self.time_ms, sha256(b"bulk"))
        enroll_env = TxEnv(block, ZERO_HASH, REGISTRAR.public_key)
        deposit_env = TxEnv(block, ZERO_HASH, TREASURER.public_key)
        birth_ms = self.time_ms - 30 * YEAR_MS
        for index in range(count):
            public_key = sha256(b"member-key-%d" % index)
            members.enroll(plan, enroll_env, {"public_key": public_key,
                                              "identity": sha256(b"identity-%d" % index),
                                              "birth_ms": birth_ms - index % 5_000 * DAY_MS})
            member_id = member_id_of(public_key)
            members.deposit(plan, deposit_env, {"member_id": member_id,
                                                "amount_fen": deposit_fen,
                                                "reference": f"bulk-{index}"})
            member_ids.append(member_id)
            if (index + 1) % CHUNK_MEMBERS == 0 or index + 1 == count:
                self.root = state.commit_root()
                self.store.apply(state.take_writes())
        return member_ids


def measure_scale(count: int, rounds: int = 7) -> dict:
    gc.collect()
    driver = Driver()
    start = time.perf_counter()
    member_ids = driver.bulk_members(count, deposit_fen=100_000)
    build_seconds = time.perf_counter() - start
    # A real member with a real claim, past the waiting period and the notice.
    claimant = key("claimant")
    receipts, _, _ = driver.block([driver.tx(REGISTRAR, "member.enroll", {
        "public_key": claimant.public_key, "identity": sha256(b"claimant"),
        "birth_ms": driver.time_ms - 35 * YEAR_MS})])
    assert receipts[0].ok, receipts
    driver.block(at_ms=GENESIS_MS + 92 * DAY_MS)  # six empty settlements on the way
    receipts, _, _ = driver.block([driver.tx(claimant, "claim.submit", {
        "condition": "CI001", "diagnosis_ms": driver.time_ms, "amount_fen": 30_000_000,
        "evidence_root": sha256(b"docs")})])
    assert receipts[0].ok, receipts
    receipts, _, _ = driver.block([driver.tx(REVIEWER, "claim.review", {
        "claim_id": 1, "decision": "approve", "amount_fen": 30_000_000})])
    assert receipts[0].ok, receipts
    driver.block(at_ms=driver.time_ms + 3 * DAY_MS + 1)
    totals = driver.app.query("plan/totals")[0]
    assert totals["pending_payouts_fen"] == 30_000_000 and totals["active_members"] == count + 1

    settle_execute, settle_commit = [], []
    boundary = GENESIS_MS + totals["next_period"] * PERIOD_MS
    for round_index in range(rounds):
        _, execute_s, commit_s = driver.block(at_ms=boundary + round_index * PERIOD_MS)
        settle_execute.append(execute_s)
        settle_commit.append(commit_s)
    settlement = driver.app.query(f"settlement/{totals['next_period']}")[0]
    assert settlement["members"] == count + 1 and settlement["payouts_fen"] == 30_000_000

    samples = [member_ids[(i * 7919) % count] for i in range(1_000)]
    balance_s = min(_per_query(driver, samples[batch::5], False) for batch in range(5))
    proof_s = min(_per_query(driver, samples[batch:200:5], True) for batch in range(5))
    return {
        "members": count,
        "build_seconds": round(build_seconds, 1),
        "state_entries": len(driver.store.data),
        # The first boundary also pays the claim; the later ones only settle.
        "settlement_with_payment_execute_ms": round(settle_execute[0] * 1e3, 3),
        "settlement_with_payment_commit_ms": round(settle_commit[0] * 1e3, 3),
        # Min over the rounds: the machine's own cost, least disturbed by other processes.
        "settlement_execute_ms": round(min(settle_execute[1:]) * 1e3, 3),
        "settlement_commit_ms": round(min(settle_commit[1:]) * 1e3, 3),
        "settlement_execute_median_ms": round(statistics.median(settle_execute[1:]) * 1e3, 3),
        "balance_query_us": round(balance_s * 1e6, 1),
        "balance_query_with_proof_us": round(proof_s * 1e6, 1),
        "share_fen": settlement["share_fen"],
    }


def _per_query(driver: Driver, member_ids: list[bytes], prove: bool) -> float:
    """Mean seconds per balance query over ``member_ids`` (distinct members: no warm cache)."""
    start = time.perf_counter()
    for member_id in member_ids:
        driver.app.query(f"balance/{member_id.hex()}", prove=prove)
    return (time.perf_counter() - start) / len(member_ids)


def mixed_blocks(driver: Driver, blocks: int, block_txs: int) -> list[list[Transaction]]:
    """Pre-signed blocks of a mixed plan workload (signing is not measured)."""
    plan_blocks = []
    counter = 0
    claims = 0
    pending_review: list[int] = []
    noticed: list[int] = []
    for _ in range(blocks):
        txs = []
        while len(txs) < block_txs:
            counter += 1
            choice = counter % 10
            new = key(f"mixed-{counter}")
            if choice in (0, 1, 2):
                txs.append(driver.tx(REGISTRAR, "member.enroll", {
                    "public_key": new.public_key, "identity": sha256(new.public_key),
                    "birth_ms": driver.time_ms - 30 * YEAR_MS}))
            elif choice in (3, 4, 5):
                txs.append(driver.tx(TREASURER, "member.deposit", {
                    "member_id": member_id_of(key(f"base-{counter % 2_000}").public_key),
                    "amount_fen": 500, "reference": f"mixed-{counter}"}))
            elif choice == 6:
                claims += 1
                claimant = key(f"base-{claims}")
                txs.append(driver.tx(claimant, "claim.submit", {
                    "condition": "CI002", "diagnosis_ms": driver.time_ms,
                    "amount_fen": 100_000, "evidence_root": sha256(b"%d" % claims)}))
                pending_review.append(claims)
            elif choice == 7 and pending_review:
                claim_id = pending_review.pop(0)
                txs.append(driver.tx(REVIEWER, "claim.review", {
                    "claim_id": claim_id, "decision": "approve", "amount_fen": 100_000}))
                noticed.append(claim_id)
            elif choice == 8 and noticed:
                claim_id = noticed[-1]
                txs.append(driver.tx(HOSPITAL, "evidence.anchor", {"claim_id": claim_id,
                           "documents": [{"digest": sha256(b"doc%d" % counter),
                                          "kind": "diagnosis"}]}))
            elif choice == 9 and noticed:
                objector = key(f"base-{1_000 + counter % 900}")
                txs.append(driver.tx(objector, "claim.object", {
                    "claim_id": noticed[-1], "reason": "other",
                    "evidence_digest": sha256(b"o%d" % counter)}))
            else:
                txs.append(driver.tx(key(f"base-{1_900 + counter % 100}"), "member.exit", {}))
        plan_blocks.append(txs)
    return plan_blocks


def measure_throughput(blocks: int, block_txs: int, verify: bool) -> dict:
    driver = Driver(verify_signatures=verify)
    base = [key(f"base-{i}") for i in range(2_000)]
    for start in range(0, len(base), 500):
        receipts, _, _ = driver.block([driver.tx(REGISTRAR, "member.enroll", {
            "public_key": pair.public_key, "identity": sha256(pair.public_key),
            "birth_ms": driver.time_ms - 30 * YEAR_MS}) for pair in base[start:start + 500]])
        assert all(r.ok for r in receipts)
    driver.block(at_ms=GENESIS_MS + 92 * DAY_MS)
    workload = mixed_blocks(driver, blocks, block_txs)
    execute_s = commit_s = 0.0
    executed = failed = 0
    for txs in workload:
        receipts, e, c = driver.block(txs)
        execute_s += e
        commit_s += c
        executed += len(receipts)
        failed += sum(not r.ok for r in receipts)
    return {"verify_signatures": verify, "blocks": blocks, "block_txs": block_txs,
            "txs": executed, "failed_txs": failed,
            "execute_tx_per_s": round(executed / execute_s),
            "execute_and_commit_tx_per_s": round(executed / (execute_s + commit_s))}


def ed25519_verify_rate(count: int = 2_000) -> int:
    pair = key("rate")
    message = b"x" * 200
    signature = pair.sign_message(message)
    start = time.perf_counter()
    for _ in range(count):
        keys.verify_message(pair.public_key, message, signature)
    return round(count / (time.perf_counter() - start))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,1000000",
                        help="comma-separated member counts for the scale part")
    parser.add_argument("--blocks", type=int, default=20)
    parser.add_argument("--block-txs", type=int, default=500)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = {"python": platform.python_version(), "machine": platform.machine(),
              "ed25519_verify_per_s": ed25519_verify_rate(), "scale": [], "throughput": []}
    for size in (int(s) for s in args.sizes.split(",") if s):
        result["scale"].append(measure_scale(size))
        if not args.json:
            print(json.dumps(result["scale"][-1]), flush=True)
    for verify in (True, False):
        result["throughput"].append(measure_throughput(args.blocks, args.block_txs, verify))
        if not args.json:
            print(json.dumps(result["throughput"][-1]), flush=True)
    print(json.dumps(result, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
