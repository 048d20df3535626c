"""Checks of what peers send that need no replica state beyond the validator set.

Each check returns ``None`` (valid) or the reason the message is dropped (counted by the
replica as ``dropped.<reason>``); a boolean where the caller names the reason. A peer's bad
input deep inside a structure may also raise a ``RemoteError`` (``validate_structure``),
which the replica counts the same way.

``Checks`` remembers what it verified so a certificate carried again (in every VIEW-CHANGE,
in every NEW-VIEW, in each block response) costs one signature check, not one per copy.
Every cache entry is keyed on the exact signed content (a hash of the signing payload plus
the signatures): a copy that keeps a signature but changes any signed field misses the
cache and is checked in full.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from consensus.messages import (
    CHECKPOINT_DOMAIN,
    PREPARE_DOMAIN,
    PREPREPARE_DOMAIN,
    VIEW_CHANGE_DOMAIN,
    CheckpointProof,
    PrePrepare,
    PreparedCertificate,
    ViewChange,
    checkpoint_payload,
    prepare_payload,
    preprepare_payload,
)
from consensus.params import ConsensusParams
from consensus.signer import Signer
from consensus.viewchange import view_change_anchor
from ledger import codec
from ledger.hashing import sha256
from ledger.quorum import quorum_size
from ledger.types import COMMIT_DOMAIN, Block, CommitCertificate, commit_vote_payload

MAX_CERTIFICATE_CACHE = 1024  # verified certificates remembered to skip re-verification


def header_matches(message: PrePrepare, chain_id: str) -> bool:
    """The block's header names the pre-prepare's chain, height, view and primary."""
    header = message.block.header
    return (header.height == message.height and header.view == message.view
            and header.proposer == message.replica and header.chain_id == chain_id)


class Checks:
    """Signature and certificate checks against one validator set."""

    def __init__(self, chain_id: str, n: int, signer: Signer, params: ConsensusParams,
                 genesis_hash: bytes, app_hash0: bytes) -> None:
        self.chain_id = chain_id
        self.n = n
        self.quorum = quorum_size(n)
        self.signer = signer
        self.params = params
        self.genesis_hash = genesis_hash
        self.app_hash0 = app_hash0
        self._verified: dict[Any, None] = {}

    def signed(self, replica: int, domain: str, payload: Any, signature: bytes) -> bool:
        if not 0 <= replica < self.n:
            return False
        return self.signer.verify(replica, domain, payload, signature)

    def _all_signed(self, domain: str, payload: Any,
                    signatures: Sequence[tuple[int, bytes]]) -> bool:
        return all(self.signed(replica, domain, payload, signature)
                   for replica, signature in signatures)

    def _remember(self, key: Any) -> None:
        cache = self._verified
        cache[key] = None
        if len(cache) > MAX_CERTIFICATE_CACHE:
            del cache[next(iter(cache))]

    def prepared_certificate(self, cert: PreparedCertificate) -> bool:
        primary = cert.view % self.n
        if len(cert.prepares) < self.quorum - 1:
            return False
        if any(replica == primary or replica >= self.n for replica, _ in cert.prepares):
            return False
        if not self.signed(primary, PREPREPARE_DOMAIN,
                           preprepare_payload(cert.view, cert.height, cert.block_hash),
                           cert.preprepare_signature):
            return False
        payload = prepare_payload(cert.view, cert.height, cert.block_hash)
        return self._all_signed(PREPARE_DOMAIN, payload, cert.prepares)

    def commit_certificate(self, cert: CommitCertificate) -> bool:
        # A frozen dataclass: equality (the cache key) covers every field and signature.
        if cert in self._verified:
            return True
        ids = [replica for replica, _ in cert.signatures]
        if len(ids) < self.quorum or ids != sorted(set(ids)) or ids[-1] >= self.n:
            return False
        payload = commit_vote_payload(cert.view, cert.height, cert.block_hash)
        if not self._all_signed(COMMIT_DOMAIN, payload, cert.signatures):
            return False
        self._remember(cert)
        return True

    def checkpoint_proof(self, proof: CheckpointProof) -> bool:
        if proof.height % self.params.checkpoint_interval:
            return False
        if proof.height == 0:
            return (proof.block_hash == self.genesis_hash and proof.state_root == self.app_hash0
                    and not proof.signatures)
        if len(proof.signatures) < self.quorum:
            return False
        key = ("checkpoint", proof)
        if key in self._verified:
            return True
        payload = checkpoint_payload(proof.height, proof.block_hash, proof.state_root)
        if not self._all_signed(CHECKPOINT_DOMAIN, payload, proof.signatures):
            return False
        self._remember(key)
        return True

    def view_change(self, vc: ViewChange, with_blocks: bool) -> str | None:
        """None when ``vc`` is valid, else the reason to drop it."""
        if not 0 <= vc.replica < self.n or vc.new_view == 0:
            return "bad_view_change"
        # Keyed on the exact signed bytes: a copy that keeps the signature but changes any
        # signed field (a forged checkpoint, a fake certificate) must miss the cache.
        key = ("view_change", vc.replica, sha256(codec.encode(vc.signing_payload())),
               vc.signature)
        if key not in self._verified:
            if not self.signed(vc.replica, VIEW_CHANGE_DOMAIN, vc.signing_payload(),
                               vc.signature):
                return "bad_signature"
            if not self.checkpoint_proof(vc.checkpoint):
                return "bad_checkpoint_proof"
            if vc.committed is not None and not self.commit_certificate(vc.committed):
                return "bad_certificate"
            anchor_height = view_change_anchor(vc)
            previous = anchor_height
            for cert in vc.prepared:
                if (cert.height <= previous or cert.view >= vc.new_view
                        or cert.height > anchor_height + self.params.watermark_window):
                    return "bad_prepared_certificate"
                if not self.prepared_certificate(cert):
                    return "bad_prepared_certificate"
                previous = cert.height
            self._remember(key)
        if with_blocks:
            for cert, block in zip(vc.prepared, vc.blocks):
                if block.height != cert.height or block.block_hash != cert.block_hash:
                    return "bad_view_change_block"
                if block.header.chain_id != self.chain_id:
                    return "bad_view_change_block"
                block.validate_structure()
        return None

    def block_response(self, entries: Sequence[tuple[Block, CommitCertificate]], start: int,
                       count: int, parent_hash: bytes | None) -> str | None:
        """None when ``entries`` are ``count`` or fewer certified blocks from ``start``, each
        extending the one before (and ``parent_hash``, when the caller knows block start-1)."""
        if len(entries) > count:
            return "bad_block_response"
        previous_hash = parent_hash
        for offset, (block, cert) in enumerate(entries):
            if block.height != start + offset or cert.height != block.height:
                return "bad_block_response"
            if block.header.chain_id != self.chain_id:
                return "bad_block_response"
            block_hash = block.block_hash
            if cert.block_hash != block_hash:
                return "bad_certificate"
            if previous_hash is not None and block.header.prev_hash != previous_hash:
                return "bad_prev_hash"
            block.validate_structure()
            if not self.commit_certificate(cert):
                return "bad_certificate"
            previous_hash = block_hash
        return None
