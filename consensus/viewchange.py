"""The NEW-VIEW computation (Castro & Liskov section 4.4), as pure functions.

Both the new primary (to build NEW-VIEW) and every backup (to check it) run the same code on
the same 2f+1 VIEW-CHANGE messages, so the result is deterministic: the messages are taken in
ascending replica order and every tie is broken by that order.

PBFT's min-s is the latest stable checkpoint in V. Here each VIEW-CHANGE also carries the
highest commit certificate its sender knows, and prepared certificates only above it, so the
new view starts right above the highest certified height in V (the *anchor*, >= min-s):
everything at or below it is decided and reaches lagging replicas by certified block sync.

Above the anchor, for each height the prepared certificate of the highest view wins (PBFT's
rule for the O set). Blocks chain by hash, so the O set is the longest run of winning
certificates whose blocks extend the anchor one height at a time. PBFT fills gaps with null
requests; a gap or a broken link cannot sit below a committed height here, because a replica
sends COMMIT for h only when every height between its committed tip and h holds a
current-view prepared certificate on the same chain (``Replica._advance_commit_votes``), so
2f+1 such replicas exist for any committed h and one of them is in every V. Whatever lies
past the first gap was never committed, and the new primary proposes fresh blocks there.
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
    anchor_certificate: CommitCertificate | None
    candidates: tuple[PreparedCertificate, ...]  # winning certificates, heights anchor+1, +2, ...


def plan_new_view(view_changes: Sequence[ViewChange], genesis_hash: bytes) -> NewViewPlan:
    """Anchor and candidate certificates from V (already validated, ascending replica order)."""
    anchor: CommitCertificate | None = None
    for vc in view_changes:
        if vc.committed is not None and (anchor is None or vc.committed.height > anchor.height):
            anchor = vc.committed
    anchor_height = 0 if anchor is None else anchor.height
    anchor_hash = genesis_hash if anchor is None else anchor.block_hash
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
