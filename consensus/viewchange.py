"""The NEW-VIEW computation (Castro & Liskov section 4.4), as pure functions.

Both the new primary (to build NEW-VIEW) and every backup (to check it) run the same code on
the same 2f+1 VIEW-CHANGE messages, so the result is deterministic: the messages are taken in
ascending replica order and every tie is broken by that order.

The new view starts at the *anchor*: the highest decided height V proves, either a stable
checkpoint (PBFT's min-s: 2f+1 signatures over the block hash and state root at that height)
or a commit certificate, whichever is higher; on a tie the checkpoint wins (both name the
same block, since a height has one committed block). Everything at or below the anchor is
decided and reaches lagging replicas by certified block sync. Each VIEW-CHANGE carries every
prepared certificate its sender holds above its own stable checkpoint and commit certificate,
and a replica garbage-collects only at or below its stable checkpoint, so no certificate a
new view might need is lost before it is sent (an anchor taken from commit certificates
alone left a hole between a replica's certificate and its stable checkpoint).

Above the anchor, for each height the prepared certificate of the highest view wins (PBFT's
rule for the O set). Blocks chain by hash, so the O set is the longest run of winning
certificates whose blocks extend the anchor one height at a time. PBFT fills gaps with null
requests; a gap or a broken link cannot sit below a committed height here, because a replica
sends COMMIT for h only when every height between its committed tip and h holds a
current-view prepared certificate on the same chain (``Replica._advance_commit_votes``), so
f+1 honest such replicas exist for any committed h and one of them is in every V; its
committed tip is at or below the anchor, so it holds certificates for every height between
the anchor and h. Whatever lies past the first gap was never committed, and the new primary
proposes fresh blocks there.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from consensus.messages import PreparedCertificate, ViewChange
from ledger.types import Block, CommitCertificate


@dataclass(frozen=True, slots=True)
class NewViewPlan:
    anchor_height: int
    anchor_hash: bytes
    anchor_certificate: CommitCertificate | None  # when a commit certificate is the anchor
    candidates: tuple[PreparedCertificate, ...]  # winning certificates, heights anchor+1, +2, ...


def view_change_anchor(vc: ViewChange) -> int:
    """The height above which ``vc`` must carry every prepared certificate it holds."""
    committed = 0 if vc.committed is None else vc.committed.height
    return max(vc.checkpoint.height, committed)


def plan_new_view(view_changes: Sequence[ViewChange], genesis_hash: bytes) -> NewViewPlan:
    """Anchor and candidate certificates from V (already validated, ascending replica order)."""
    anchor_height, anchor_hash = 0, genesis_hash
    anchor: CommitCertificate | None = None
    for vc in view_changes:
        if vc.checkpoint.height > anchor_height:
            anchor_height, anchor_hash = vc.checkpoint.height, vc.checkpoint.block_hash
    for vc in view_changes:
        if vc.committed is not None and vc.committed.height > anchor_height:
            anchor_height, anchor_hash, anchor = (vc.committed.height,
                                                  vc.committed.block_hash, vc.committed)
    best: dict[int, PreparedCertificate] = {}
    for vc in view_changes:
        for cert in vc.prepared:
            if cert.height <= anchor_height:
                continue
            current = best.get(cert.height)
            if current is None or cert.view > current.view:
                best[cert.height] = cert
    candidates = []
    height = anchor_height + 1
    while height in best:  # stop at the first gap
        candidates.append(best[height])
        height += 1
    return NewViewPlan(anchor_height, anchor_hash, anchor, tuple(candidates))


def chained_prefix(plan: NewViewPlan, blocks: Mapping[bytes, Block]) -> int:
    """How many leading candidates form a hash chain from the anchor (the O set's size)."""
    parent = plan.anchor_hash
    count = 0
    for cert in plan.candidates:
        block = blocks.get(cert.block_hash)
        if block is None or block.height != cert.height or block.header.prev_hash != parent:
            break
        parent = cert.block_hash
        count += 1
    return count
