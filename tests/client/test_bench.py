"""`huzhu bench`: the workload it signs, its statistics, and one real run (--setup).

Nothing here asserts a speed: the run checks that the report is complete and consistent
(every transaction committed with an ok receipt, the ratio is tx/s over the verify rate), not
how fast the machine was.
"""

from __future__ import annotations

import json
from collections import defaultdict

import pytest
from click.testing import CliRunner

from client.bench import Consortium, build_plans, measure_verify_rate, percentile
from client.cli import main
from contracts.records import member_id_of
from ledger.keys import KeyPair
from ledger.types import Transaction

GENESIS_TIME_MS = 1_700_000_000_000


def consortium(keys: int) -> Consortium:
    registrars = tuple(KeyPair.from_seed(bytes([1, index]) + bytes(30)) for index in range(keys))
    treasurers = tuple(KeyPair.from_seed(bytes([2, index]) + bytes(30)) for index in range(keys))
    return Consortium("bench-test", GENESIS_TIME_MS, ("http://a", "http://b", "http://c"),
                      registrars, treasurers)


def test_each_sender_signs_consecutive_nonces_from_where_the_chain_is() -> None:
    net = consortium(4)
    nonces = {key.public_key: 7 for key in (*net.registrars, *net.treasurers)}
    plans = build_plans(net, txs=30, clients=4, nonces=nonces, run_tag=b"t1")
    assert len(plans) == 4 and sum(len(plan.timed) for plan in plans) == 30
    seen: dict[bytes, list[int]] = defaultdict(list)
    ids = set()
    for plan in plans:
        assert plan.node == plan.index % 3
        for tx_id, raw in [*plan.warmup, *plan.timed]:
            tx = Transaction.decode(raw)
            assert tx.verify_signature() and tx.tx_id.hex() == tx_id
            assert tx.sender in (plan.registrar.public_key, plan.treasurer.public_key)
            seen[tx.sender].append(tx.nonce)
            ids.add(tx_id)
            if tx.kind == "member.deposit":
                # Deposits go to the member this client enrolled in the warm-up.
                warmup = Transaction.decode(plan.warmup[0][1])
                assert tx.body["member_id"] == member_id_of(warmup.body["public_key"])
    for sender, nonce_list in seen.items():
        assert nonce_list == list(range(7, 7 + len(nonce_list)))
        assert nonces[sender] == 7 + len(nonce_list)  # advanced past what was signed
    assert len(ids) == 34  # 4 warm-up enrollments + 30, all distinct


def test_clients_are_capped_by_the_keys_there_are() -> None:
    plans = build_plans(consortium(2), txs=10, clients=16,
                        nonces={key.public_key: 0 for key in (*consortium(2).registrars,
                                                              *consortium(2).treasurers)},
                        run_tag=b"t2")
    assert len(plans) == 2


def test_percentile_is_nearest_rank() -> None:
    values = [float(value) for value in range(1, 101)]
    assert percentile(values, 0.50) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile(values, 1.0) == 100.0
    assert percentile([3.0], 0.99) == 3.0
    assert percentile([], 0.5) == 0.0


def test_verify_rate_is_measured() -> None:
    assert measure_verify_rate(0.05) > 0


def test_bench_needs_a_testnet_or_setup() -> None:
    result = CliRunner().invoke(main, ["bench"])
    assert result.exit_code == 2 and "--setup" in result.output


@pytest.mark.e2e
def test_bench_setup_runs_a_consortium_and_reports(tmp_path) -> None:
    result = CliRunner().invoke(main, ["bench", "--setup", "--dir", str(tmp_path / "net"),
                                       "--txs", "300", "--clients", "8", "--window", "8",
                                       "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.strip().splitlines()[-1])
    for field in ("tx_per_s", "latency_ms", "verify_per_s", "ratio", "nodes", "txs"):
        assert field in report
    assert report["nodes"] == 4 and report["txs"] == 300 and report["setup"] is True
    assert report["committed"] == 300 and report["failed_receipts"] == 0
    assert report["receipt_codes"] == {"ok": 300}
    latency = report["latency_ms"]
    assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"] <= latency["max"]
    assert report["tx_per_s"] > 0 and report["verify_per_s"] > 0
    assert report["ratio"] == pytest.approx(report["tx_per_s"] / report["verify_per_s"],
                                            rel=0.01, abs=1e-4)
    # --setup stops its nodes: no node process is left on the directory it made.
    from node.consortium import running_nodes

    assert running_nodes(tmp_path / "net") == []
