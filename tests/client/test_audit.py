"""The chain audit over hand-built chains in a MemoryStore: an honest chain verifies, and
each kind of tampering is caught at the height where it was made."""

from __future__ import annotations

import struct

import pytest
from client_chain_kit import BLOCK_INTERVAL_MS, Chain, plan_history

from client.audit import Auditor, AuditReport, StoreSource
from ledger import codec
from ledger.types import Block, CommitCertificate, Receipt, Transaction
from node.storage.base import block_key, certificate_key, receipts_key, state_key, tx_key


def audit(chain: Chain, *stores) -> AuditReport:
    sources = [StoreSource(chain.store, "node0")]
    sources += [StoreSource(store, f"node{i}") for i, store in enumerate(stores, start=1)]
    return Auditor(chain.genesis, sources).run()


def write_raw(store, key: bytes, value: bytes) -> None:
    """What an attacker with write access to the node's database does: replace bytes."""
    store._apply([(key, value)])


@pytest.fixture
def chain() -> Chain:
    chain = Chain()
    plan_history(chain)
    return chain


def test_honest_chain_verifies(chain):
    report = audit(chain)
    assert report.ok, report.failures
    assert report.latest_height == report.heights_verified == chain.height == 6
    assert report.transactions == sum(len(b.txs) for b in chain.blocks)
    assert report.checks["certificate"] == chain.height
    assert report.checks["reexecuted"] == chain.height
    assert report.checks["receipts"] == chain.height
    assert report.checks["state_keys"] > 0
    assert report.certified_height == chain.height - chain.depth
    assert report.app_hash == chain.executed[chain.height][0]
    assert report.certificate_signatures == 3 * chain.height
    assert report.checks["tx_index"] == 1


def test_settlements_are_checked_for_conservation():
    chain = Chain(params={"period_ms": 5 * BLOCK_INTERVAL_MS, "waiting_ms": 0})
    plan_history(chain)
    for _ in range(12):  # time passes over several period boundaries
        chain.add_block(advance_ms=2 * BLOCK_INTERVAL_MS)
    report = audit(chain)
    assert report.ok, report.failures
    assert report.checks["settlements"] >= 4
    assert all(period["ok"] for period in report.conservation)
    assert report.checks["conservation"] == chain.height


def test_changed_transaction_is_caught_at_its_height(chain):
    height = 3  # the deposits
    block = chain.blocks[height - 1]
    tx = block.txs[1]
    forged_body = dict(tx.body, amount_fen=tx.body["amount_fen"] * 100)
    forged = Transaction(tx.chain_id, tx.sender, tx.nonce, tx.kind, forged_body, tx.signature)
    txs = list(block.txs)
    txs[1] = forged
    write_raw(chain.store, block_key(height), Block(block.header, tuple(txs)).encode())
    report = audit(chain)
    assert not report.ok
    first = report.first_failure
    assert first.height == height
    assert first.check in ("tx_root", "tx_signature")
    checks = {failure.check for failure in report.failures}
    assert {"tx_root", "tx_signature"} <= checks
    assert report.heights_verified == height - 1


def test_changed_transaction_with_recomputed_tx_root_breaks_the_certificate(chain):
    from dataclasses import replace

    from ledger.types import tx_root

    height = 3
    block = chain.blocks[height - 1]
    payer = chain.treasurer
    forged = Transaction.create(payer, block.header.chain_id, block.txs[0].nonce,
                                "member.deposit", dict(block.txs[0].body, amount_fen=9_999_999))
    txs = (forged,) + block.txs[1:]
    header = replace(block.header, tx_root=tx_root([t.tx_id for t in txs]))
    write_raw(chain.store, block_key(height), Block(header, txs).encode())
    report = audit(chain)
    assert report.first_failure.height == height
    assert report.first_failure.check == "certificate"
    assert "different block hash" in report.first_failure.message


def test_changed_block_header_is_caught(chain):
    from dataclasses import replace

    height = 4
    block = chain.blocks[height - 1]
    header = replace(block.header, timestamp_ms=block.header.timestamp_ms + 1)
    write_raw(chain.store, block_key(height), Block(header, block.txs).encode())
    report = audit(chain)
    assert report.first_failure.height == height
    assert report.first_failure.check == "certificate"


def test_removed_certificate_signature_is_caught(chain):
    height = 2
    certificate = chain.certificates[height - 1]
    assert len(certificate.signatures) == 3  # exactly 2f + 1 for n = 4
    weakened = CommitCertificate(certificate.height, certificate.view, certificate.block_hash,
                                 certificate.signatures[:-1])
    write_raw(chain.store, certificate_key(height), weakened.encode())
    report = audit(chain)
    assert report.first_failure.height == height
    assert report.first_failure.check == "certificate"
    assert "no_quorum" in report.first_failure.message


def test_forged_certificate_signature_is_caught(chain):
    height = 5
    certificate = chain.certificates[height - 1]
    replica, signature = certificate.signatures[0]
    forged = bytes([signature[0] ^ 1]) + signature[1:]
    bad = CommitCertificate(certificate.height, certificate.view, certificate.block_hash,
                            ((replica, forged),) + certificate.signatures[1:])
    write_raw(chain.store, certificate_key(height), bad.encode())
    report = audit(chain)
    assert report.first_failure.height == height
    assert "bad_signature" in report.first_failure.message


def test_undecodable_certificate_is_caught(chain):
    write_raw(chain.store, certificate_key(2), b"\x01garbage")
    report = audit(chain)
    assert (report.first_failure.height, report.first_failure.check) == (2, "certificate")


def test_missing_certificate_is_caught(chain):
    chain.store._apply([(certificate_key(5), None)])
    report = audit(chain)
    assert (report.first_failure.height, report.first_failure.check) == (5, "certificate")
    assert "no commit certificate" in report.first_failure.message


def test_changed_state_value_is_caught(chain):
    key, value = next(iter(chain.store.iterate_state(b"m/", b"m0")))  # a member record
    write_raw(chain.store, state_key(key), value[:-1] + bytes([value[-1] ^ 1]))
    report = audit(chain)
    first = report.first_failure
    assert first.check == "state"
    assert first.height == chain.height
    assert key.hex() in first.message


def test_extra_and_missing_state_keys_are_caught(chain):
    write_raw(chain.store, state_key(b"m/\x00injected"), b"\x01")
    report = audit(chain)
    assert report.first_failure.check == "state"
    assert "does not exist after re-execution" in report.first_failure.message


def test_changed_receipt_is_caught(chain):
    height = 1
    receipts = list(chain.receipts[height - 1])
    receipts[0] = Receipt(receipts[0].tx_id, "unauthorized", {"message": "forged"})
    write_raw(chain.store, receipts_key(height),
              codec.encode([receipt.to_plain() for receipt in receipts]))
    report = audit(chain)
    assert (report.first_failure.height, report.first_failure.check) == (height, "receipts")


def test_wrong_app_hash_certified_by_a_quorum_is_caught_by_reexecution():
    chain = Chain()
    plan_history(chain)
    chain.add_block(app_hash=b"\x07" * 32)  # validly signed, but not the executed state
    report = audit(chain)
    assert (report.first_failure.height, report.first_failure.check) == (chain.height, "app_hash")


def test_broken_hash_link_is_caught():
    from dataclasses import replace

    chain = Chain()
    plan_history(chain)
    # A block that is validly certified but names the wrong parent.
    block = chain.add_block()
    header = replace(block.header, prev_hash=b"\x01" * 32)
    relinked = Block(header, block.txs)
    write_raw(chain.store, block_key(block.height), relinked.encode())
    write_raw(chain.store, certificate_key(block.height), chain.certify(relinked).encode())
    report = audit(chain)
    assert (report.first_failure.height, report.first_failure.check) == (block.height, "hash_link")


def test_missing_block_is_caught(chain):
    chain.store._apply([(block_key(3), None)])
    report = audit(chain)
    assert (report.first_failure.height, report.first_failure.check) == (3, "missing_block")


def test_two_nodes_agree_and_a_diverging_node_is_named(chain):
    copy = chain.store.snapshot()
    assert audit(chain, copy).ok
    assert audit(chain, copy).checks["agreement"] == chain.height
    # node1 holds another, validly certified block at height 4 (a fork).
    from dataclasses import replace

    block = chain.blocks[3]
    other = Block(replace(block.header, timestamp_ms=block.header.timestamp_ms + 5), block.txs)
    write_raw(copy, block_key(4), other.encode())
    write_raw(copy, certificate_key(4), chain.certify(other).encode())
    report = audit(chain, copy)
    assert (report.first_failure.height, report.first_failure.check) == (4, "agreement")
    assert report.first_failure.source == "node1"


def test_empty_chain_verifies_against_the_genesis_state():
    chain = Chain()
    report = audit(chain)
    assert report.ok and report.heights_verified == 0


def test_settlement_arithmetic_check_rejects_an_unbalanced_settlement():
    """The per-settlement check itself, on values a faulty application might hold."""

    class Ledger:
        def query(self, path: str, prove: bool = False):
            if path == "plan/totals":
                return {"next_period": 3}, None
            period = int(path.split("/")[1])
            good = {"payouts_fen": 1_000, "fee_fen": 80, "carry_in_fen": 0, "total_fen": 1_080,
                    "members": 7, "share_fen": 154, "carry_fen": 2}
            bad = {"payouts_fen": 0, "fee_fen": 0, "carry_in_fen": 2, "total_fen": 2,
                   "members": 7, "share_fen": 1, "carry_fen": 0}  # 1 x 7 + 0 != 2
            return (good if period == 1 else bad), None

    auditor = Auditor(Chain().genesis, [StoreSource(Chain().store)])
    auditor._verify_settlements(Ledger(), 9, auditor.sources[0])
    failure = auditor.report.first_failure
    assert failure.check == "conservation" and "settlement 2" in failure.message
    assert [p["ok"] for p in auditor.report.conservation] == [True, False]


def test_a_tx_index_entry_past_the_chain_is_named(chain):
    tx_id = bytes(range(32))
    write_raw(chain.store, tx_key(tx_id), struct.pack(">QQ", 10**9, 0))
    report = audit(chain)
    failure = report.first_failure
    assert failure is not None and failure.check == "tx_index" and failure.height == 10**9
    assert f"t/{tx_id.hex()}" in failure.message


def test_a_tx_index_entry_at_the_wrong_position_is_named(chain):
    moved = chain.blocks[2].txs[0].tx_id
    write_raw(chain.store, tx_key(moved), struct.pack(">QQ", 2, 7))
    failure = audit(chain).first_failure
    assert failure is not None and failure.check == "tx_index" and failure.height == 2
    assert f"t/{moved.hex()}" in failure.message
