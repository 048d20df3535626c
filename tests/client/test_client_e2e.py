"""End to end: the README demo against real node processes, then the CLI's evidence proof
and the audit on the chain it leaves behind, including tampered copies of a node's LevelDB.

One module-scoped run of ``scripts/demo.sh --keep`` (a 4-node consortium on free ports in a
temporary directory) feeds every test; the finalizer always stops the nodes.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import plyvel
import pytest

from ledger.types import Block, CommitCertificate
from node import consortium
from node.storage.base import block_key, certificate_key, state_key
from node.testnet import list_node_homes
from tests.e2e.e2e_helpers import free_port_block

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
DEMO_TIMEOUT_S = 540
CLI_TIMEOUT_S = 120


def huzhu(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "client.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=CLI_TIMEOUT_S)


def stop_all(net: Path) -> None:
    if not (net / "genesis.json").exists():
        return
    try:
        subprocess.run([sys.executable, "-m", "client.cli", "consortium", "down", "--dir",
                        str(net)], capture_output=True, timeout=60)
    except subprocess.TimeoutExpired:
        pass
    for home in list_node_homes(net):
        pid = consortium.node_pid(home)
        if pid is not None:
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


class Demo:
    def __init__(self, directory: Path, base_port: int, result: subprocess.CompletedProcess):
        self.directory = directory
        self.net = directory / "net"
        self.base_port = base_port
        self.result = result
        self.output = result.stdout + result.stderr
        self.urls = [f"http://127.0.0.1:{base_port + 2 * i + 1}" for i in range(4)]


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Demo:
    directory = tmp_path_factory.mktemp("demo")
    base_port = free_port_block(8)
    env = dict(os.environ, DEMO_DIR=str(directory), DEMO_BASE_PORT=str(base_port),
               DEMO_NO_INSTALL="1")
    process = subprocess.Popen([str(REPO / "scripts" / "demo.sh"), "--keep"], cwd=REPO,
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    try:
        try:
            stdout, stderr = process.communicate(timeout=DEMO_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            stdout, stderr = process.communicate()
        result = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
        yield Demo(directory, base_port, result)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        stop_all(directory / "net")


def test_demo_runs_the_whole_plan(demo):
    assert demo.result.returncode == 0, demo.output[-6000:]
    out = demo.result.stdout
    assert "36 of 36 ok" in out  # enrollments and deposits
    assert "applied" in out  # governance
    assert "approved_by_review" in out  # claim 1 after its notice
    assert "approved_by_jury" in out  # claim 2 after an objection and a jury
    assert "pay:paid" in out
    assert "settlement 1" in out
    assert "membership ended" in out
    assert "evidence verified" in out
    assert "an altered copy of the file is refused (exit 2)" in out
    assert "VERIFIED" in out
    assert "consortium down" in out  # --keep says how to stop it


def test_evidence_verify_proves_the_file_and_refuses_a_one_byte_change(demo, tmp_path):
    assert demo.result.returncode == 0
    original = demo.directory / "evidence" / "claim-b" / "pathology.txt"
    proved = huzhu("evidence", "verify", str(original), "--claim", "2", "--node", demo.urls[2],
                   "--json")
    assert proved.returncode == 0, proved.stderr
    proof = json.loads(proved.stdout)
    assert proof["verified"] is True and proof["claim_id"] == 2
    assert len(proof["certificate_signers"]) >= 3
    data = bytearray(original.read_bytes())
    data[-2] ^= 0x20
    altered = tmp_path / "pathology.txt"
    altered.write_bytes(bytes(data))
    refused = huzhu("evidence", "verify", str(altered), "--claim", "2", "--node", demo.urls[0],
                    "--json")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert json.loads(refused.stdout)["code"] == "not_anchored"
    assert "not verified" in refused.stderr


def test_audit_of_all_four_running_nodes_passes(demo):
    assert demo.result.returncode == 0
    args = ["audit", "--json"]
    for url in demo.urls:
        args += ["--node", url]
    result = huzhu(*args)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True
    assert report["latest_height"] == report["heights_verified"] > 50
    assert report["checks"]["agreement"] == 3 * report["heights_verified"]
    assert report["conservation"] and all(p["ok"] for p in report["conservation"])


def test_audit_of_a_running_nodes_store_is_a_usage_error(demo):
    assert demo.result.returncode == 0
    result = huzhu("audit", "--home", str(demo.net / "node0"))
    assert result.returncode == 1
    assert "in use" in result.stderr


# --- tampering with copies of a stopped node's LevelDB ------------------------------------

@pytest.fixture(scope="module")
def stopped_node(demo) -> Path:
    """node3, stopped (the other three keep running): its home holds a quiescent LevelDB."""
    assert demo.result.returncode == 0
    home = demo.net / "node3"
    consortium.stop_node(home, timeout_s=20)
    assert consortium.node_pid(home) is None
    return home


def copy_node(home: Path, destination: Path) -> Path:
    """A copy of the node home (with the genesis its config points at) to tamper with."""
    shutil.copy(home.parent / "genesis.json", destination / "genesis.json")
    copy = destination / home.name
    shutil.copytree(home, copy, ignore=shutil.ignore_patterns("node.pid", "node.log"))
    return copy


def audit_home(home: Path) -> tuple[int, dict, str]:
    result = huzhu("audit", "--home", str(home), "--json")
    report = json.loads(result.stdout) if result.stdout.strip() else {}
    return result.returncode, report, result.stderr


def blocks_of(db: plyvel.DB) -> dict[int, Block]:
    from node.storage.base import BLOCK_PREFIX

    blocks = {}
    for key, value in db.iterator(prefix=BLOCK_PREFIX):
        block = Block.decode(value)
        blocks[block.height] = block
    return blocks


def test_untouched_copy_verifies(stopped_node, tmp_path):
    code, report, stderr = audit_home(copy_node(stopped_node, tmp_path))
    assert code == 0, (report.get("failures"), stderr)
    assert report["checks"]["state_keys"] > 100


def test_changed_transaction_in_leveldb_is_named(stopped_node, tmp_path):
    copy = copy_node(stopped_node, tmp_path)
    db = plyvel.DB(str(copy / "data"))
    try:
        height, block = next((h, b) for h, b in sorted(blocks_of(db).items())
                             if any(tx.kind == "member.deposit" for tx in b.txs))
        index = next(i for i, tx in enumerate(block.txs) if tx.kind == "member.deposit")
        tx = block.txs[index]
        forged = replace(tx, body=dict(tx.body, amount_fen=tx.body["amount_fen"] + 100_000))
        txs = block.txs[:index] + (forged,) + block.txs[index + 1:]
        db.put(block_key(height), Block(block.header, txs).encode())
    finally:
        db.close()
    code, report, _ = audit_home(copy)
    assert code == 2
    assert report["first_bad_height"] == height
    assert report["failures"][0]["check"] in ("tx_root", "tx_signature")


def test_changed_block_header_in_leveldb_is_named(stopped_node, tmp_path):
    copy = copy_node(stopped_node, tmp_path)
    db = plyvel.DB(str(copy / "data"))
    try:
        blocks = blocks_of(db)
        height = max(blocks) // 2
        block = blocks[height]
        header = replace(block.header, timestamp_ms=block.header.timestamp_ms + 1)
        db.put(block_key(height), Block(header, block.txs).encode())
    finally:
        db.close()
    code, report, _ = audit_home(copy)
    assert code == 2
    assert report["first_bad_height"] == height
    assert report["failures"][0]["check"] == "certificate"


def test_removed_certificate_signature_in_leveldb_is_named(stopped_node, tmp_path):
    copy = copy_node(stopped_node, tmp_path)
    db = plyvel.DB(str(copy / "data"))
    try:
        quorum = 3  # 2f + 1 for 4 validators
        height = None
        for candidate in range(10, 40):
            certificate = CommitCertificate.decode(db.get(certificate_key(candidate)))
            if len(certificate.signatures) == quorum:
                height = candidate
                break
        assert height is not None, "no certificate with exactly a quorum of signatures"
        weakened = replace(certificate, signatures=certificate.signatures[1:])
        db.put(certificate_key(height), weakened.encode())
    finally:
        db.close()
    code, report, _ = audit_home(copy)
    assert code == 2
    assert report["first_bad_height"] == height
    assert report["failures"][0]["check"] == "certificate"
    assert "no_quorum" in report["failures"][0]["message"]


def test_changed_state_value_in_leveldb_is_named(stopped_node, tmp_path):
    copy = copy_node(stopped_node, tmp_path)
    db = plyvel.DB(str(copy / "data"))
    try:
        latest = max(blocks_of(db))
        key, value = next(db.iterator(prefix=state_key(b"m/")))  # a member's record
        db.put(key, value[:-1] + bytes([value[-1] ^ 1]))
    finally:
        db.close()
    code, report, _ = audit_home(copy)
    assert code == 2
    assert report["first_bad_height"] == latest
    assert report["failures"][0]["check"] == "state"
    assert key[len(state_key(b"")):].hex() in report["failures"][0]["message"]


def test_evidence_verify_on_the_remaining_nodes_still_works(demo, stopped_node):
    # Three of four nodes keep the chain alive; the proofs need only their data.
    original = demo.directory / "evidence" / "claim-a" / "invoice.txt"
    result = huzhu("evidence", "verify", str(original), "--claim", "1", "--node", demo.urls[1])
    assert result.returncode == 0, result.stderr
    assert "evidence verified" in result.stdout
