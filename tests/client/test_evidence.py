"""Evidence proofs on a hand-built chain: a file anchored for a claim verifies against the
validators' keys; a file that differs by one byte, or any broken link of the proof, does not."""

from __future__ import annotations

from dataclasses import replace

import pytest
from client_chain_kit import CHAIN_ID, Chain

from client.evidence import (
    EvidenceMismatch,
    evidence_root,
    file_digest,
    find_anchor,
    verify_anchor,
)
from ledger import merkle
from ledger.hashing import sha256
from ledger.keys import KeyPair
from ledger.types import CommitCertificate, Receipt


class Anchored:
    """A chain where member 1 filed claim 1 and anchored two files for it at height 3."""

    def __init__(self, tmp_path, extra_txs: int = 0) -> None:
        self.chain = chain = Chain(params={"waiting_ms": 0})
        self.member = KeyPair.from_seed(b"m" * 32)
        self.outsider = KeyPair.from_seed(b"o" * 32)
        chain.add_block([chain.enroll(self.member), chain.enroll(self.outsider, tag=b"2")])
        self.files = []
        for name, text in (("diagnosis.txt", "Diagnosis: malignant tumour, stage II\n"),
                           ("invoice.txt", "Invoice: RMB 88,000\n")):
            path = tmp_path / name
            path.write_text(text)
            self.files.append(path)
        digests = [file_digest(path) for path in self.files]
        chain.add_block([chain.tx(self.member, "claim.submit", {
            "condition": "CI001", "diagnosis_ms": chain.time_ms, "amount_fen": 8_800_000,
            "evidence_root": evidence_root(digests)})])
        anchor = chain.tx(self.member, "evidence.anchor", {"claim_id": 1, "documents": [
            {"digest": digests[0], "kind": "diagnosis"}, {"digest": digests[1], "kind": "invoice"}]})
        others = [chain.deposit(self.member, 100, f"ref-{i}") for i in range(extra_txs)]
        self.block = chain.add_block(others + [anchor])
        self.index = len(others)
        chain.settle_tail()
        self.height = self.block.height

    def proof_args(self, digest: bytes, **changes) -> dict:
        chain, height = self.chain, self.height
        tx_ids = [tx.tx_id for tx in self.block.txs]
        args = dict(
            digest=digest, claim_id=1, block=self.block,
            certificate=chain.certificates[height - 1], tx_index=self.index,
            tx_path=merkle.inclusion_proof(tx_ids, self.index),
            receipts=chain.receipts[height - 1],
            receipt_block=chain.blocks[height + chain.depth - 1],
            receipt_certificate=chain.certificates[height + chain.depth - 1],
            chain_id=CHAIN_ID, validators=[v.public_key for v in chain.validators],
            pipeline_depth=chain.depth)
        args.update(changes)
        return args


@pytest.fixture
def anchored(tmp_path) -> Anchored:
    return Anchored(tmp_path)


def test_anchored_file_verifies_with_block_time_and_signers(anchored):
    digest = file_digest(anchored.files[1])
    proof = verify_anchor(**anchored.proof_args(digest))
    assert proof.height == anchored.height
    assert proof.time_ms == anchored.block.header.timestamp_ms
    assert proof.document_index == 1 and proof.document_kind == "invoice"
    assert proof.document_count == 2
    assert proof.signer == anchored.member.public_key
    assert proof.signers == (0, 1, 2)
    assert proof.receipt_height == anchored.height + anchored.chain.depth
    # the root the proof checks is the one the plan stored for the anchor
    view, _ = anchored.chain.app.query("claim/1")
    assert view["evidence"][0]["root"] == proof.document_root.hex()
    assert find_anchor(view, digest)["tx_id"] == proof.tx_id.hex()


def test_file_differing_by_one_byte_is_not_verified(anchored, tmp_path):
    altered = tmp_path / "diagnosis-altered.txt"
    data = bytearray(anchored.files[0].read_bytes())
    data[12] ^= 0x01
    altered.write_bytes(bytes(data))
    digest = file_digest(altered)
    with pytest.raises(EvidenceMismatch) as error:
        verify_anchor(**anchored.proof_args(digest))
    assert error.value.code == "not_anchored"
    view, _ = anchored.chain.app.query("claim/1")
    with pytest.raises(EvidenceMismatch) as lookup:
        find_anchor(view, digest)
    assert lookup.value.code == "not_anchored"


def test_wrong_tx_inclusion_proof_is_refused(tmp_path):
    anchored = Anchored(tmp_path, extra_txs=3)
    digest = file_digest(anchored.files[0])
    assert verify_anchor(**anchored.proof_args(digest)).tx_index == 3
    good_path = anchored.proof_args(digest)["tx_path"]
    bad_path = [good_path[0][:-1] + bytes([good_path[0][-1] ^ 1])] + good_path[1:]
    with pytest.raises(EvidenceMismatch) as error:
        verify_anchor(**anchored.proof_args(digest, tx_path=bad_path))
    assert error.value.code == "bad_tx_proof"


def test_block_without_a_quorum_certificate_is_refused(anchored):
    certificate = anchored.chain.certificates[anchored.height - 1]
    weak = CommitCertificate(certificate.height, certificate.view, certificate.block_hash,
                             certificate.signatures[:2])
    with pytest.raises(EvidenceMismatch) as error:
        verify_anchor(**anchored.proof_args(file_digest(anchored.files[0]), certificate=weak))
    assert error.value.code == "bad_certificate"


def test_certificate_from_other_validators_is_refused(anchored):
    strangers = [KeyPair.from_seed(bytes([i]) * 32).public_key for i in range(1, 5)]
    with pytest.raises(EvidenceMismatch) as error:
        verify_anchor(**anchored.proof_args(file_digest(anchored.files[0]),
                                            validators=strangers))
    assert error.value.code == "bad_certificate"


def test_changed_block_does_not_match_its_certificate(anchored):
    block = anchored.block
    moved = type(block)(replace(block.header, timestamp_ms=block.header.timestamp_ms - 60_000),
                        block.txs)
    with pytest.raises(EvidenceMismatch) as error:
        verify_anchor(**anchored.proof_args(file_digest(anchored.files[0]), block=moved))
    assert error.value.code == "certificate_mismatch"


def test_receipts_must_match_the_certified_results_hash(anchored):
    receipts = list(anchored.chain.receipts[anchored.height - 1])
    receipts[0] = Receipt(receipts[0].tx_id, "ok", {"anchor": 7})
    with pytest.raises(EvidenceMismatch) as error:
        verify_anchor(**anchored.proof_args(file_digest(anchored.files[0]), receipts=receipts))
    assert error.value.code == "bad_receipts"


def test_receipt_not_yet_certified(anchored):
    with pytest.raises(EvidenceMismatch) as error:
        verify_anchor(**anchored.proof_args(file_digest(anchored.files[0]), receipt_block=None))
    assert error.value.code == "receipt_uncertified"


def test_failed_anchor_transaction_proves_nothing(tmp_path):
    anchored = Anchored(tmp_path)
    chain = anchored.chain
    # The outsider is neither the claimant nor a reviewer nor a hospital.
    path = tmp_path / "outsider.txt"
    path.write_text("not theirs to anchor\n")
    digest = file_digest(path)
    block = chain.add_block([chain.tx(anchored.outsider, "evidence.anchor", {
        "claim_id": 1, "documents": [{"digest": digest, "kind": "other"}]})])
    chain.settle_tail()
    assert chain.receipts[block.height - 1][0].code == "unauthorized"
    anchored.block, anchored.height, anchored.index = block, block.height, 0
    with pytest.raises(EvidenceMismatch) as error:
        verify_anchor(**anchored.proof_args(digest))
    assert error.value.code == "anchor_failed"


def test_anchor_for_another_claim_is_refused(anchored):
    with pytest.raises(EvidenceMismatch) as error:
        verify_anchor(**anchored.proof_args(file_digest(anchored.files[0]), claim_id=2))
    assert error.value.code == "not_an_anchor"


def test_file_digest_reads_large_files_in_chunks(tmp_path):
    path = tmp_path / "scan.bin"
    data = bytes(range(256)) * 10_000  # 2.5 MB, several read chunks
    path.write_bytes(data)
    assert file_digest(path) == sha256(data)
