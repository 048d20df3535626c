"""Settlement (cost sharing), payment of claims, arrears, and leaving at the age limit.

At each period boundary: payouts = claims final in the period, fee = floor(payouts x fee_bps /
10000), total = payouts + fee + carry, share = min(floor(total / N), cap), carry = total -
share x N, with N the members active at the boundary. The share is published by adding it to
the cumulative share index; nobody's record is touched, so a settlement is O(1) in N.

Members whose deposits no longer cover the index sit at the front of the arrears index
(ordered by the index value where their deposits run out); each block takes a bounded number
of them off its front, starts their grace period, and removes them when it ends unpaid.

Conservation, at every height (all in Totals): shares_charged + carry = payouts + fees, and
every booked payout is either credited or still waiting for its payment transition:
payouts = paid_net + arrears_recovered + payouts_unpaid.
"""

from __future__ import annotations

from dataclasses import dataclass

from contracts.env import BlockEnv
from contracts.layout import Due, be64
from contracts.members import flag_arrears, leave
from contracts.records import (
    CLAIM_APPROVED,
    CLAIM_PAID,
    MEMBER_AGED_OUT,
    MEMBER_CLAIMED,
    MEMBER_REMOVED_ARREARS,
    PlanState,
    Settlement,
)


@dataclass(frozen=True, slots=True)
class SettlementMath:
    fee_fen: int
    total_fen: int
    share_fen: int
    carry_fen: int


def settlement_math(payouts_fen: int, carry_in_fen: int, members: int, fee_bps: int,
                    share_cap_fen: int) -> SettlementMath:
    """DOMAIN.md's arithmetic, in integer fen, floors throughout."""
    assert payouts_fen >= 0 and carry_in_fen >= 0 and members >= 0
    fee = payouts_fen * fee_bps // 10_000
    total = payouts_fen + fee + carry_in_fen
    share = min(total // members, share_cap_fen) if members else 0
    carry = total - share * members
    assert carry >= 0
    return SettlementMath(fee, total, share, carry)


def conservation_holds(totals_plain: dict) -> bool:
    """Total debited from members + carry = total booked + fees, and booked = credited
    (net to claimants plus their arrears deducted) + booked but not yet credited."""
    booked = totals_plain["payouts_fen"]
    return (totals_plain["shares_charged_fen"] + totals_plain["carry_fen"]
            == booked + totals_plain["fees_fen"]
            and booked == (totals_plain["paid_net_fen"] + totals_plain["arrears_recovered_fen"]
                           + totals_plain["payouts_unpaid_fen"]))


# --- time-driven transitions -----------------------------------------------------------------

def settle(plan: PlanState, block: BlockEnv, due_ms: int, ident: bytes) -> int:
    """Publish the share of the period ending at ``due_ms`` and schedule the next boundary."""
    totals = plan.totals()
    params = plan.params()
    period = int.from_bytes(ident, "big")
    assert period == totals.next_period and due_ms == totals.next_boundary_ms
    math = settlement_math(totals.pending_payouts_fen, totals.carry_fen,
                           totals.active_members, params.fee_bps, params.share_cap_fen)
    carry_in = totals.carry_fen
    totals.cum_index_fen += math.share_fen
    totals.shares_charged_fen += math.share_fen * totals.active_members
    totals.fees_fen += math.fee_fen
    totals.payouts_fen += totals.pending_payouts_fen
    totals.payouts_unpaid_fen += totals.pending_payouts_fen
    totals.carry_fen = math.carry_fen
    plan.put_settlement(Settlement(
        period=period,
        boundary_ms=due_ms,
        payouts_fen=totals.pending_payouts_fen,
        claims=totals.pending_claims,
        fee_fen=math.fee_fen,
        carry_in_fen=carry_in,
        total_fen=math.total_fen,
        members=totals.active_members,
        share_fen=math.share_fen,
        carry_fen=math.carry_fen,
        cum_index_fen=totals.cum_index_fen,
    ))
    totals.pending_payouts_fen = 0
    totals.pending_claims = 0
    totals.last_settlement_ms = due_ms
    totals.next_period = period + 1
    totals.next_boundary_ms = due_ms + params.period_ms
    plan.enqueue(totals.next_boundary_ms, Due.SETTLE, be64(totals.next_period))
    plan.put_totals(totals)
    return 1


def pay(plan: PlanState, block: BlockEnv, due_ms: int, ident: bytes) -> int:
    """Credit a claim settled at this boundary; the claimant's unpaid shares are deducted
    first, and the claimant leaves the plan (after sharing this boundary like everyone)."""
    claim = plan.claim(int.from_bytes(ident, "big"))
    assert claim is not None and claim.status == CLAIM_APPROVED
    member = plan.member(claim.member_id)
    assert member is not None
    totals = plan.totals()
    if member.active:
        leave(plan, totals, member, MEMBER_CLAIMED, due_ms)
    arrears = max(0, -member.balance_fen(totals.cum_index_fen))
    deducted = min(arrears, claim.approved_fen)
    member.deposits_fen += deducted
    if member.open_claim == claim.claim_id:
        member.open_claim = None
    claim.status = CLAIM_PAID
    claim.arrears_deducted_fen = deducted
    claim.paid_net_fen = claim.approved_fen - deducted
    claim.record(due_ms, "paid")
    totals.arrears_recovered_fen += deducted
    totals.paid_net_fen += claim.paid_net_fen
    totals.payouts_unpaid_fen -= claim.approved_fen
    assert totals.payouts_unpaid_fen >= 0
    plan.put_member(member)
    plan.put_claim(claim)
    plan.put_totals(totals)
    return 1


def grace_end(plan: PlanState, block: BlockEnv, due_ms: int, ident: bytes) -> int:
    """Remove a member still in arrears when their grace period ends."""
    member = plan.member(ident)
    assert member is not None and member.active and member.grace_due_ms == due_ms
    totals = plan.totals()
    # A payment that covered the arrears would have withdrawn this item.
    assert member.balance_fen(totals.cum_index_fen) < 0
    member.grace_due_ms = None
    leave(plan, totals, member, MEMBER_REMOVED_ARREARS, due_ms)
    totals.removed_arrears += 1
    plan.put_member(member)
    plan.put_totals(totals)
    return 1


def age_out(plan: PlanState, block: BlockEnv, due_ms: int, ident: bytes) -> int:
    """Members leave automatically at the leaving age."""
    member = plan.member(ident)
    assert member is not None and member.active and member.age_out_ms == due_ms
    totals = plan.totals()
    leave(plan, totals, member, MEMBER_AGED_OUT, due_ms)
    plan.put_member(member)
    plan.put_totals(totals)
    return 1


def scan_arrears(plan: PlanState, limit: int) -> int:
    """Flag up to ``limit`` members whose deposits ran out; returns how many were flagged."""
    totals = plan.totals()
    member_ids = plan.in_arrears_unflagged(totals.cum_index_fen, limit)
    if not member_ids:
        return 0
    params = plan.params()
    for member_id in member_ids:
        member = plan.member(member_id)
        assert member is not None and member.active
        flag_arrears(plan, totals, params, member)
        plan.put_member(member)
    return len(member_ids)
