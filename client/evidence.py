"""Evidence digests and proofs: a file's holder proves that exactly this file was anchored.

Files never leave their owners; the chain holds their SHA-256 digests. ``evidence.anchor``
carries a claim id and a list of documents ``{digest, kind}``; the plan keeps the digests and
their RFC 6962 root. A proof that a file was anchored, and when, is the chain

    file --SHA-256--> digest --inclusion proof--> the anchor's document root
         (the digest list is in the transaction body, which the tx's signature covers)
    transaction --tx id, inclusion proof--> tx_root of block h
    block h --commit certificate: 2f+1 validator signatures--> certified
    receipt of the tx (code ok) --results_hash of block h+K, itself certified--> it took effect

checked here against nothing but the validators' keys and chain id from genesis; the node
that served the data is not trusted. The block time of h is when the file was anchored.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ledger import merkle
from ledger.errors import HuzhuError, InvalidBlock, InvalidCertificate
from ledger.types import Block, CommitCertificate, Receipt, results_hash

READ_CHUNK_BYTES = 1 << 20
ANCHOR_KIND = "evidence.anchor"


class EvidenceMismatch(HuzhuError):
    """The file is not anchored for that claim, or a proof does not verify (exit 2)."""

    default_code = "evidence_mismatch"


def file_digest(path: str | Path) -> bytes:
    """SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(READ_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.digest()


def evidence_root(digests: Sequence[bytes]) -> bytes:
    """The RFC 6962 root of a document list, as the plan computes it for an anchor."""
    return merkle.root(list(digests))


def documents_body(files: Iterable[tuple[str, str | Path]]) -> list[dict]:
    """``[(kind, path)]`` as the ``documents`` of an ``evidence.anchor`` body."""
    documents = []
    seen = set()
    for kind, path in files:
        digest = file_digest(path)
        if digest in seen:
            raise EvidenceMismatch("duplicate_file", f"{path} has the same content as another file")
        seen.add(digest)
        documents.append({"digest": digest, "kind": kind})
    return documents


@dataclass(frozen=True, slots=True)
class AnchorProof:
    """Everything that was checked, for printing."""

    digest: bytes
    claim_id: int
    document_index: int
    document_kind: str
    document_count: int
    document_root: bytes
    document_path: tuple[bytes, ...]
    tx_id: bytes
    tx_index: int
    tx_path: tuple[bytes, ...]
    signer: bytes
    height: int
    block_hash: bytes
    time_ms: int
    signers: tuple[int, ...]
    receipt_height: int  # the block whose header certifies the receipt (h + K)

    def to_json(self) -> dict:
        return {
            "verified": True,
            "digest": self.digest.hex(),
            "claim_id": self.claim_id,
            "document": {"index": self.document_index, "kind": self.document_kind,
                         "count": self.document_count, "root": self.document_root.hex(),
                         "proof": [node.hex() for node in self.document_path]},
            "tx": {"tx_id": self.tx_id.hex(), "index": self.tx_index, "signer": self.signer.hex(),
                   "proof": [node.hex() for node in self.tx_path]},
            "height": self.height,
            "block_hash": self.block_hash.hex(),
            "time_ms": self.time_ms,
            "certificate_signers": list(self.signers),
            "receipt_certified_by_height": self.receipt_height,
        }


def _fail(code: str, message: str) -> EvidenceMismatch:
    return EvidenceMismatch(code, message)


def verify_certificate(block: Block, certificate: CommitCertificate | None, chain_id: str,
                       validators: Sequence[bytes]) -> None:
    if certificate is None:
        raise _fail("no_certificate", f"block {block.height} has no commit certificate")
    if certificate.height != block.height or certificate.block_hash != block.block_hash:
        raise _fail("certificate_mismatch", f"the certificate is not for block {block.height}")
    try:
        certificate.verify(chain_id, validators)
    except InvalidCertificate as exc:
        raise _fail("bad_certificate", f"block {block.height}: {exc.message}") from None


def verify_anchor(digest: bytes, claim_id: int, block: Block,
                  certificate: CommitCertificate | None, tx_index: int,
                  tx_path: Sequence[bytes], receipts: Sequence[Receipt] | None,
                  receipt_block: Block | None,
                  receipt_certificate: CommitCertificate | None, chain_id: str,
                  validators: Sequence[bytes], pipeline_depth: int) -> AnchorProof:
    """Check the whole chain of proofs for ``digest`` (see the module docstring).

    ``block`` holds the anchoring transaction at ``tx_index`` with the node-supplied audit
    path ``tx_path``; ``receipts`` are block h's receipts and ``receipt_block`` is block
    h + ``pipeline_depth`` whose header certifies them. Raises ``EvidenceMismatch``.
    """
    if block.header.chain_id != chain_id:
        raise _fail("wrong_chain", f"block {block.height} is for another chain")
    verify_certificate(block, certificate, chain_id, validators)
    if not 0 <= tx_index < len(block.txs):
        raise _fail("no_tx", f"block {block.height} has no transaction {tx_index}")
    tx = block.txs[tx_index]
    tx_id = tx.tx_id
    if not merkle.verify_inclusion(tx_id, tx_index, block.header.tx_count, list(tx_path),
                                   block.header.tx_root):
        raise _fail("bad_tx_proof", "the transaction's inclusion proof does not match tx_root")
    if not tx.verify_signature():
        raise _fail("bad_signature", "the anchoring transaction's signature does not verify")
    body = tx.body
    if tx.kind != ANCHOR_KIND or body.get("claim_id") != claim_id:
        raise _fail("not_an_anchor", f"transaction {tx_id.hex()[:16]}… does not anchor "
                                     f"evidence for claim {claim_id}")
    documents = body.get("documents")
    if not isinstance(documents, list):
        raise _fail("not_an_anchor", "the anchoring transaction lists no documents")
    digests = [document.get("digest") if isinstance(document, dict) else None
               for document in documents]
    if digest not in digests:
        raise _fail("not_anchored", "the file's digest is not among the anchored documents")
    index = digests.index(digest)
    root = evidence_root(digests)
    path = merkle.inclusion_proof(digests, index)
    if not merkle.verify_inclusion(digest, index, len(digests), path, root):
        raise _fail("bad_document_proof", "the document inclusion proof does not verify")

    # The transaction could have been rejected when it executed: its receipt must say ok,
    # and that receipt is certified by the results_hash in the header of block h + K.
    if receipts is None or receipt_block is None:
        raise _fail("receipt_uncertified",
                    f"block {block.height + pipeline_depth}, which certifies the receipt, "
                    "is not available yet")
    if receipt_block.height != block.height + pipeline_depth:
        raise _fail("receipt_uncertified", "wrong block for the receipt's certification")
    if receipt_block.header.chain_id != chain_id:
        raise _fail("wrong_chain", f"block {receipt_block.height} is for another chain")
    verify_certificate(receipt_block, receipt_certificate, chain_id, validators)
    if results_hash(list(receipts)) != receipt_block.header.results_hash:
        raise _fail("bad_receipts", f"block {block.height}'s receipts do not match the "
                                    f"results_hash certified at {receipt_block.height}")
    if tx_index >= len(receipts) or receipts[tx_index].tx_id != tx_id:
        raise _fail("bad_receipts", "no receipt for the anchoring transaction")
    if not receipts[tx_index].ok:
        raise _fail("anchor_failed", f"the anchoring transaction failed: {receipts[tx_index].code}")
    assert certificate is not None
    return AnchorProof(
        digest=digest, claim_id=claim_id, document_index=index,
        document_kind=str(documents[index].get("kind")), document_count=len(digests),
        document_root=root, document_path=tuple(path), tx_id=tx_id, tx_index=tx_index,
        tx_path=tuple(tx_path), signer=tx.sender, height=block.height,
        block_hash=block.block_hash, time_ms=block.header.timestamp_ms,
        signers=tuple(replica for replica, _ in certificate.signatures),
        receipt_height=receipt_block.height)


def decode_block(raw: bytes, what: str) -> Block:
    try:
        return Block.decode(raw)
    except InvalidBlock as exc:
        raise _fail("bad_block", f"{what} does not decode: {exc.message}") from None


def decode_certificate(raw: bytes | None) -> CommitCertificate | None:
    if raw is None:
        return None
    try:
        return CommitCertificate.decode(raw)
    except InvalidCertificate as exc:
        raise _fail("bad_certificate", f"the certificate does not decode: {exc.message}") from None


# --- fetching the proof from a node ---------------------------------------------------------

def _b64(value: object, what: str) -> bytes:
    import base64

    try:
        return base64.b64decode(value, validate=True)  # type: ignore[arg-type]
    except (ValueError, TypeError):
        raise _fail("bad_answer", f"the node's {what} encoding is not base64") from None


def _raw_block(client: object, height: int, wait_s: float) -> dict | None:
    """``GET /blocks/{height}``'s raw encodings, waiting up to ``wait_s`` for it to exist."""
    import time

    from client.api import NotFound

    deadline = time.monotonic() + wait_s
    while True:
        try:
            answer = client.block(height)  # type: ignore[attr-defined]
        except NotFound:
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.2)
            continue
        raw = answer.get("raw") if isinstance(answer, dict) else None
        if not isinstance(raw, dict):
            raise _fail("bad_answer", f"the node sent no raw encodings for block {height}")
        return raw


def find_anchor(claim_view: dict, digest: bytes) -> dict:
    """The anchor record of a claim view that lists ``digest``."""
    anchors = claim_view.get("evidence") or []
    for anchor in anchors:
        if digest.hex() in (anchor.get("digests") or []):
            return anchor
    count = sum(len(anchor.get("digests") or []) for anchor in anchors)
    raise _fail("not_anchored", f"sha256 {digest.hex()} is not among the {count} document(s) "
                                f"anchored for claim {claim_view.get('claim_id')}")


def prove_file(client: object, path: str | Path, claim_id: int, chain_id: str,
               validators: Sequence[bytes], pipeline_depth: int,
               wait_s: float = 10.0) -> AnchorProof:
    """Fetch from a node, then verify locally, that ``path`` was anchored for ``claim_id``."""
    digest = file_digest(path)
    claim = client.claim(claim_id)["value"]  # type: ignore[attr-defined]
    anchor = find_anchor(claim, digest)
    tx_id = bytes.fromhex(anchor["tx_id"])
    status = client.tx(tx_id)  # type: ignore[attr-defined]
    if status.get("status") != "committed":
        raise _fail("not_committed", f"anchoring transaction {tx_id.hex()} is {status.get('status')}")
    height, tx_index = status["height"], status["index"]
    tx_path = [bytes.fromhex(node) for node in (status.get("proof") or {}).get("path", [])]
    raw = _raw_block(client, height, 0.0)
    if raw is None:
        raise _fail("no_block", f"the node has no block {height}")
    block = decode_block(_b64(raw["block"], "block"), f"block {height}")
    certificate = decode_certificate(_b64(raw["certificate"], "certificate")
                                     if raw.get("certificate") else None)
    receipts = None
    if raw.get("receipts") is not None:
        try:
            receipts = [Receipt.decode(_b64(item, "receipt")) for item in raw["receipts"]]
        except HuzhuError as exc:
            raise _fail("bad_receipts", f"block {height}'s receipts do not decode: {exc}") from None
    later = _raw_block(client, height + pipeline_depth, wait_s)
    receipt_block = receipt_certificate = None
    if later is not None:
        receipt_block = decode_block(_b64(later["block"], "block"),
                                     f"block {height + pipeline_depth}")
        receipt_certificate = decode_certificate(_b64(later["certificate"], "certificate")
                                                 if later.get("certificate") else None)
    return verify_anchor(digest, claim_id, block, certificate, tx_index, tx_path, receipts,
                         receipt_block, receipt_certificate, chain_id, validators,
                         pipeline_depth)
