"""Claims and evidence: submission, anchoring, review, public notice, objections, appeals.

Lifecycle: submitted -> (review) notice | rejected. notice -> (no objection when the notice
ends) approved | (objections) jury. rejected -> (appeal inside the window) jury | (window ends)
closed. jury -> approved | closed (with one redraw if the quorum is missed, after which the
review stands). approved -> paid at the next settlement (contracts.settlement). A diagnosis
inside the waiting period closes the claim at submission and ends the membership.

The contract checks the plan's rules itself (``rule_violation``) at submission and again when
a reviewer approves, so a reviewer cannot pay an uncovered claim.
"""

from __future__ import annotations

from ledger import merkle

from contracts.conditions import ACCIDENT_CODE
from contracts.env import BlockEnv, TxEnv
from contracts.genesis import Params
from contracts.jury import (
    MAX_ROUNDS,
    ORIGIN_APPEAL,
    ORIGIN_OBJECTION,
    OUTCOME_NO_QUORUM,
    OUTCOME_PAY,
    close_round,
    open_round,
    round_outcome,
)
from contracts.layout import Due, be64
from contracts.members import age_years, leave, require_role, sender_member
from contracts.reasons import reject
from contracts.records import (
    CLAIM_APPROVED,
    CLAIM_CLOSED,
    CLAIM_JURY,
    CLAIM_NOTICE,
    CLAIM_PAID,
    CLAIM_REJECTED,
    CLAIM_SUBMITTED,
    MEMBER_WAITING_PERIOD,
    Anchor,
    Claim,
    Member,
    PlanState,
    Totals,
    member_id_of,
)

MAX_CLAIMS_PER_MEMBER = 32  # a member leaves after a paid claim; this bounds rejected ones


def rule_violation(params: Params, member: Member, condition: str, diagnosis_ms: int) -> str | None:
    """The first plan rule a claim breaks, as a reason code, or None.

    Membership active at diagnosis, condition covered, age, waiting period (illness only).
    """
    if diagnosis_ms < member.enrolled_ms or (member.end_ms is not None
                                             and diagnosis_ms >= member.end_ms):
        return "not_active_at_diagnosis"
    if not params.covers(condition):
        return "not_covered"
    if age_years(member.birth_ms, diagnosis_ms) >= params.leave_age_years:
        return "over_age"
    if condition != ACCIDENT_CODE and diagnosis_ms < member.enrolled_ms + params.waiting_ms:
        return "waiting_period"
    return None


def already_rejected(member: Member, condition: str, diagnosis_ms: int) -> bool:
    """Was a claim for this condition finally rejected? An illness is diagnosed once, so any
    diagnosis date matches; accidents are told apart by their date."""
    for rejected_condition, rejected_diagnosis_ms in member.rejected_conditions:
        if rejected_condition == condition and (condition != ACCIDENT_CODE
                                                or rejected_diagnosis_ms == diagnosis_ms):
            return True
    return False


def _claim(plan: PlanState, claim_id: int) -> Claim:
    claim = plan.claim(claim_id)
    if claim is None:
        raise reject("unknown_claim", "no such claim")
    return claim


def _close(plan: PlanState, claim: Claim, time_ms: int, outcome: str) -> None:
    """Final without payment; the member may claim again (if still a member), but not for a
    condition this claim's rejection settled."""
    claim.status = CLAIM_CLOSED
    claim.outcome = outcome
    claim.final_ms = time_ms
    claim.record(time_ms, f"closed_{outcome}")
    member = plan.member(claim.member_id)
    assert member is not None
    if member.open_claim == claim.claim_id:
        member.open_claim = None
    if not already_rejected(member, claim.condition, claim.diagnosis_ms):
        member.rejected_conditions.append([claim.condition, claim.diagnosis_ms])
    plan.put_member(member)


def _finalize(plan: PlanState, totals: Totals, claim: Claim, time_ms: int, how: str) -> None:
    """Approved and past notice or jury: goes into this period's payouts, paid at settlement."""
    assert time_ms < totals.next_boundary_ms, "the boundary's settlement runs first"
    claim.status = CLAIM_APPROVED
    claim.outcome = f"approved_by_{how}"
    claim.final_ms = time_ms
    claim.period = totals.next_period
    claim.record(time_ms, claim.outcome)
    totals.pending_payouts_fen += claim.approved_fen
    totals.pending_claims += 1
    plan.enqueue(totals.next_boundary_ms, Due.PAY, be64(claim.claim_id))


# --- handlers -------------------------------------------------------------------------------

def submit(plan: PlanState, env: TxEnv, body: dict) -> dict:
    """claim.submit (a member): a covered condition, its diagnosis date, the amount asked."""
    member = sender_member(plan, env)
    if member.open_claim is not None:
        raise reject("claim_open", f"claim {member.open_claim} is still open")
    if len(member.claims) >= MAX_CLAIMS_PER_MEMBER:
        raise reject("too_many_claims", f"at most {MAX_CLAIMS_PER_MEMBER} claims per member")
    now = env.time_ms
    if body["diagnosis_ms"] > now:
        raise reject("bad_diagnosis_date", "the diagnosis date is in the future")
    if already_rejected(member, body["condition"], body["diagnosis_ms"]):
        raise reject("condition_rejected", "a claim for this condition was rejected; the "
                                           "appeal window is the way to contest it")
    params = plan.params()
    violation = rule_violation(params, member, body["condition"], body["diagnosis_ms"])
    if violation is not None and violation != "waiting_period":
        raise reject(violation, "the claim breaks a plan rule")
    totals = plan.totals()
    totals.claims_total += 1
    claim = Claim(
        claim_id=totals.claims_total,
        member_id=member.member_id,
        condition=body["condition"],
        diagnosis_ms=body["diagnosis_ms"],
        requested_fen=body["amount_fen"],
        evidence_root=body["evidence_root"],
        submitted_ms=now,
        submit_tx=env.tx_id,
    )
    claim.record(now, "submitted")
    member.claims.append(claim.claim_id)
    if violation == "waiting_period":
        # Not covered, and it ends the membership with no further shares due.
        claim.status = CLAIM_CLOSED
        claim.outcome = "waiting_period"
        claim.final_ms = now
        claim.record(now, "closed_waiting_period")
        leave(plan, totals, member, MEMBER_WAITING_PERIOD, now)
    else:
        member.open_claim = claim.claim_id
    plan.put_claim(claim)
    plan.put_member(member)
    plan.put_totals(totals)
    return {"claim_id": claim.claim_id, "status": claim.status}


def anchor_evidence(plan: PlanState, env: TxEnv, body: dict) -> dict:
    """evidence.anchor (the claimant, a reviewer or a hospital): document digests of a claim.

    The chain keeps the digests, their kinds and their RFC 6962 root, so a holder of a file
    can later prove it was anchored: file -> digest in this list -> this tx in a certified
    block.
    """
    claim = _claim(plan, body["claim_id"])
    sender = env.sender
    if not (member_id_of(sender) == claim.member_id or plan.has_role("reviewer", sender)
            or plan.has_role("hospital", sender)):
        raise reject("unauthorized", "only the claimant, a reviewer or a hospital may anchor")
    if claim.status in (CLAIM_PAID, CLAIM_CLOSED):
        raise reject("claim_closed", "the claim is final")
    params = plan.params()
    if len(claim.anchors) >= params.max_anchors_per_claim:
        raise reject("too_many_anchors", f"at most {params.max_anchors_per_claim} anchors")
    documents = body["documents"]
    if len(documents) > params.max_documents_per_anchor:
        raise reject("bad_body", f"at most {params.max_documents_per_anchor} documents")
    digests = [document["digest"] for document in documents]
    anchor = Anchor(
        claim_id=claim.claim_id,
        number=len(claim.anchors),
        tx_id=env.tx_id,
        signer=sender,
        time_ms=env.time_ms,
        height=env.block.height,
        digests=digests,
        kinds=[document["kind"] for document in documents],
        root=merkle.root(digests),
    )
    claim.anchors.append(env.tx_id)
    plan.put_anchor(anchor)
    reused = _index_documents(plan, claim, digests, env.block.height)
    plan.put_claim(claim)
    return {"anchor": anchor.number, "root": anchor.root.hex(), "reused": reused}


def _index_documents(plan: PlanState, claim: Claim, digests: list[bytes],
                     height: int) -> list[dict]:
    """File each digest in the document index; a digest already backing another claim is
    noted on both claims (one file, two claims is the fraud the index is there to show).

    One index read per digest, and at most one write per other claim involved, so the cost is
    bounded by ``max_documents_per_anchor``. The caller stores ``claim``.
    """
    reused: list[dict] = []
    others: dict[int, Claim] = {}  # looked up by id only; written in sorted id order
    for digest in digests:
        first = plan.document_first_anchored(digest)
        if first is None:
            plan.set_document_anchored(digest, claim.claim_id, height)
            continue
        first_claim_id, first_height = first
        if first_claim_id == claim.claim_id:
            continue
        entry = {"digest": digest, "claim_id": first_claim_id, "height": first_height,
                 "notice": f"document already anchored for claim #{first_claim_id} "
                           f"at height {first_height}"}
        claim.record_reuse(entry)
        reused.append(entry)
        other = others.get(first_claim_id)
        if other is None:
            other = plan.claim(first_claim_id)
            assert other is not None
            others[first_claim_id] = other
        other.record_reuse({"digest": digest, "claim_id": claim.claim_id, "height": height,
                            "notice": f"document also anchored for claim #{claim.claim_id} "
                                      f"at height {height}"})
    for other_id in sorted(others):
        plan.put_claim(others[other_id])
    return [{**entry, "digest": entry["digest"].hex()} for entry in reused]


def review(plan: PlanState, env: TxEnv, body: dict) -> dict:
    """claim.review (a reviewer): approve an amount or reject with a reason code."""
    require_role(plan, "reviewer", env.sender)
    claim = _claim(plan, body["claim_id"])
    if claim.status != CLAIM_SUBMITTED:
        raise reject("bad_claim_state", f"the claim is {claim.status}, not submitted")
    params = plan.params()
    now = env.time_ms
    if body["decision"] == "approve":
        member = plan.member(claim.member_id)
        assert member is not None
        violation = rule_violation(params, member, claim.condition, claim.diagnosis_ms)
        if violation is not None:
            raise reject(violation, "the claim breaks a plan rule")
        amount = body["amount_fen"]
        if amount > claim.requested_fen:
            raise reject("over_requested", "more than the amount requested")
        if amount > member.tier_cap_fen:
            raise reject("over_tier", f"the member's cover is {member.tier_cap_fen} fen")
        claim.status = CLAIM_NOTICE
        claim.approved_fen = amount
        claim.notice_end_ms = now + params.notice_ms
        claim.review = {"reviewer": env.sender, "decision": "approve", "amount_fen": amount,
                        "reason": None, "time_ms": now}
        claim.record(now, "approved_notice")
        plan.enqueue(claim.notice_end_ms, Due.NOTICE_END, be64(claim.claim_id))
    else:
        claim.status = CLAIM_REJECTED
        claim.appeal_end_ms = now + params.appeal_ms
        claim.review = {"reviewer": env.sender, "decision": "reject", "amount_fen": 0,
                        "reason": body["reason"], "time_ms": now}
        claim.record(now, "rejected")
        plan.enqueue(claim.appeal_end_ms, Due.APPEAL_END, be64(claim.claim_id))
    plan.put_claim(claim)
    return {"status": claim.status}


def object_to(plan: PlanState, env: TxEnv, body: dict) -> dict:
    """claim.object (any other active member): during the notice, with evidence."""
    member = sender_member(plan, env)
    claim = _claim(plan, body["claim_id"])
    if claim.member_id == member.member_id:
        raise reject("own_claim", "a claimant cannot object to their own claim")
    if claim.status != CLAIM_NOTICE or env.time_ms >= (claim.notice_end_ms or 0):
        raise reject("not_in_notice", "objections are taken during the public notice only")
    if any(o["member_id"] == member.member_id for o in claim.objections):
        raise reject("already_objected", "one objection per member")
    params = plan.params()
    if len(claim.objections) >= params.max_objections_per_claim:
        raise reject("too_many_objections", "the objection list is full")
    claim.objections.append({"member_id": member.member_id, "reason": body["reason"],
                             "evidence_digest": body["evidence_digest"],
                             "time_ms": env.time_ms})
    plan.put_claim(claim)
    return {"objections": len(claim.objections)}


def appeal(plan: PlanState, env: TxEnv, body: dict) -> dict:
    """claim.appeal (the claimant): a rejected claim goes to a jury drawn from this block."""
    claim = _claim(plan, body["claim_id"])
    if member_id_of(env.sender) != claim.member_id:
        raise reject("unauthorized", "only the claimant may appeal")
    if (claim.status != CLAIM_REJECTED or claim.appealed
            or env.time_ms >= (claim.appeal_end_ms or 0)):
        raise reject("not_appealable", "only a rejected claim inside its appeal window")
    assert claim.appeal_end_ms is not None
    plan.dequeue(claim.appeal_end_ms, Due.APPEAL_END, be64(claim.claim_id))
    claim.appealed = True
    claim.record(env.time_ms, "appealed")
    totals = plan.totals()
    jury = open_round(plan, totals, plan.params(), claim, ORIGIN_APPEAL, 1, env.time_ms,
                      env.block)
    plan.put_claim(claim)
    return {"jurors": len(jury.jurors), "commit_end_ms": jury.commit_end_ms,
            "reveal_end_ms": jury.reveal_end_ms}


# --- time-driven transitions -----------------------------------------------------------------
# Each takes (plan, block, due_ms, ident) and returns the work it did in transition units.

def notice_end(plan: PlanState, block: BlockEnv, due_ms: int, ident: bytes) -> int:
    claim = plan.claim(int.from_bytes(ident, "big"))
    assert claim is not None and claim.status == CLAIM_NOTICE
    params = plan.params()
    totals = plan.totals()
    cost = 1
    if claim.objections:
        open_round(plan, totals, params, claim, ORIGIN_OBJECTION, 1, due_ms, block)
        cost += params.jury_size
    else:
        _finalize(plan, totals, claim, due_ms, "review")
    plan.put_claim(claim)
    plan.put_totals(totals)
    return cost


def appeal_end(plan: PlanState, block: BlockEnv, due_ms: int, ident: bytes) -> int:
    claim = plan.claim(int.from_bytes(ident, "big"))
    assert claim is not None and claim.status == CLAIM_REJECTED and not claim.appealed
    _close(plan, claim, due_ms, "rejected")
    plan.put_claim(claim)
    return 1


def reveal_end(plan: PlanState, block: BlockEnv, due_ms: int, ident: bytes) -> int:
    """Tally a jury round: pay, reject, or (no quorum) redraw once, then the review stands."""
    claim_id, round_number = int.from_bytes(ident[:8], "big"), ident[8]
    claim = plan.claim(claim_id)
    jury = plan.jury(claim_id)
    assert claim is not None and jury is not None and claim.status == CLAIM_JURY
    assert jury.round == round_number
    params = plan.params()
    totals = plan.totals()
    outcome = round_outcome(jury, params)
    close_round(plan, jury, outcome)
    cost = 1 + len(jury.jurors)
    if outcome == OUTCOME_NO_QUORUM and round_number < MAX_ROUNDS:
        plan.put_jury(jury)
        open_round(plan, totals, params, claim, jury.origin, round_number + 1, due_ms, block)
        cost += params.jury_size
    else:
        if outcome == OUTCOME_NO_QUORUM:
            # The review stands: an approval after objections, a rejection after an appeal.
            pay = jury.origin == ORIGIN_OBJECTION
            how = "review"
        else:
            pay = outcome == OUTCOME_PAY
            how = "jury"
        jury.outcome = f"{outcome}:{'paid' if pay else 'not_paid'}"
        plan.put_jury(jury)
        if pay and jury.origin == ORIGIN_APPEAL:
            pay = _approve_on_appeal(plan, params, claim)
        if pay:
            _finalize(plan, totals, claim, due_ms, how)
        else:
            _close(plan, claim, due_ms, "rejected_by_jury" if how == "jury" else "rejected")
    plan.put_claim(claim)
    plan.put_totals(totals)
    return cost


def _approve_on_appeal(plan: PlanState, params: Params, claim: Claim) -> bool:
    """A jury overturned a rejection: pay the amount asked up to the member's cover, provided
    the plan's own rules allow it (a jury judges the evidence, not the rules)."""
    member = plan.member(claim.member_id)
    assert member is not None
    if rule_violation(params, member, claim.condition, claim.diagnosis_ms) is not None:
        return False
    claim.approved_fen = min(claim.requested_fen, member.tier_cap_fen)
    return claim.approved_fen > 0
