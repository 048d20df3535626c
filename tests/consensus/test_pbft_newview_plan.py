"""The NEW-VIEW computation on hand-made VIEW-CHANGEs: anchor, highest view wins, gaps and
broken hash links end the O set."""

from __future__ import annotations

from consensus.messages import CheckpointProof, PreparedCertificate, ViewChange
from consensus.viewchange import chained_prefix, plan_new_view
from ledger.hashing import sha256
from ledger.types import Block, BlockHeader, CommitCertificate, tx_root

GENESIS = sha256(b"g")
SIG = b"\x00" * 64


def block(height: int, prev: bytes, salt: int = 0) -> Block:
    header = BlockHeader("plan-test", height, salt, prev, 1000 + height, 0, tx_root([]), 0,
                         GENESIS, GENESIS)
    return Block(header, ())


def cert(b: Block, view: int) -> PreparedCertificate:
    return PreparedCertificate(view, b.height, b.block_hash, SIG, ((1, SIG), (2, SIG)))


def vc(replica: int, committed: CommitCertificate | None, certs,
       stable: Block | None = None) -> ViewChange:
    checkpoint = (CheckpointProof(0, GENESIS, GENESIS, ()) if stable is None else
                  CheckpointProof(stable.height, stable.block_hash, GENESIS, ((0, SIG),)))
    return ViewChange(5, replica, checkpoint, committed, tuple(certs), SIG, ())


def commit_cert(b: Block) -> CommitCertificate:
    return CommitCertificate(b.height, 0, b.block_hash, ((0, SIG), (1, SIG), (2, SIG)))


def test_anchor_is_the_highest_commit_certificate():
    b1 = block(1, GENESIS)
    b2 = block(2, b1.block_hash)
    b3 = block(3, b2.block_hash)
    plan = plan_new_view([vc(0, commit_cert(b1), [cert(b2, 0), cert(b3, 0)]),
                          vc(1, commit_cert(b2), [cert(b3, 0)]),
                          vc(2, None, [])], GENESIS)
    assert (plan.anchor_height, plan.anchor_hash) == (2, b2.block_hash)
    assert [c.height for c in plan.candidates] == [3]
    assert chained_prefix(plan, {b3.block_hash: b3}) == 1


def test_a_stable_checkpoint_above_every_commit_certificate_is_the_anchor():
    # Replica 1 holds stable 4 but a commit certificate only for 3: its certificate at 4 was
    # garbage-collected, so the new view must start above 4, not above 3.
    chain = [block(1, GENESIS)]
    for height in range(2, 6):
        chain.append(block(height, chain[-1].block_hash))
    b3, b4, b5 = chain[2], chain[3], chain[4]
    plan = plan_new_view([vc(0, commit_cert(b3), []), vc(1, commit_cert(b3), [cert(b5, 0)], b4),
                          vc(2, None, [])], GENESIS)
    assert (plan.anchor_height, plan.anchor_hash, plan.anchor_certificate) == (
        4, b4.block_hash, None)
    assert [c.height for c in plan.candidates] == [5]
    assert chained_prefix(plan, {b5.block_hash: b5}) == 1
    # A commit certificate above the checkpoint is the anchor again.
    plan = plan_new_view([vc(0, commit_cert(b5), []), vc(1, None, [], b4), vc(2, None, [])],
                         GENESIS)
    assert (plan.anchor_height, plan.anchor_certificate) == (5, commit_cert(b5))


def test_genesis_anchor_and_highest_view_wins():
    b1 = block(1, GENESIS)
    b1_other = block(1, GENESIS, salt=1)
    plan = plan_new_view([vc(0, None, [cert(b1, 0)]), vc(1, None, [cert(b1_other, 2)]),
                          vc(2, None, [])], GENESIS)
    assert plan.anchor_height == 0 and plan.anchor_hash == GENESIS
    assert [c.block_hash for c in plan.candidates] == [b1_other.block_hash]


def test_a_gap_ends_the_candidates():
    b1 = block(1, GENESIS)
    b2 = block(2, b1.block_hash)
    b3 = block(3, b2.block_hash)
    plan = plan_new_view([vc(0, None, [cert(b1, 0), cert(b3, 0)]), vc(1, None, []),
                          vc(2, None, [])], GENESIS)
    assert [c.height for c in plan.candidates] == [1]


def test_a_broken_hash_link_ends_the_o_set():
    b1_old = block(1, GENESIS)
    b2_old = block(2, b1_old.block_hash)
    b1_new = block(1, GENESIS, salt=3)  # height 1 was re-proposed in view 3
    plan = plan_new_view([vc(0, None, [cert(b1_new, 3)]), vc(1, None, [cert(b1_old, 1),
                                                                       cert(b2_old, 1)]),
                          vc(2, None, [])], GENESIS)
    assert [c.block_hash for c in plan.candidates] == [b1_new.block_hash, b2_old.block_hash]
    blocks = {b.block_hash: b for b in (b1_new, b2_old)}
    assert chained_prefix(plan, blocks) == 1  # block 2 does not extend the winning block 1
    assert chained_prefix(plan, {}) == 0
