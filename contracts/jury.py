"""The jury: a deterministic draw from the juror pool, commit-reveal voting, the tally rule.

Qualified jurors sit in a dense pool (slot number -> member, see members.remove_juror), so a
draw never looks at all members: it hashes ``seed || counter`` into a slot, skips anyone
ineligible or already drawn, and stops after ``jury_size`` seats or a bounded number of
attempts. The seed is SHA-256 of the hash of the block that opened the dispute, the claim id
and the round, so every node draws the same jury and nobody can choose it.

Only active members vote: a juror whose membership ends after the draw (exit, arrears, age)
loses the seat's vote; a sealed vote they cannot reveal is recorded as not revealed. A juror
is drawn as a member with a stake in the pool; once out, they no longer carry its cost.
"""

from __future__ import annotations

from ledger.hashing import sha256

from contracts.env import BlockEnv, TxEnv
from contracts.genesis import Params
from contracts.layout import Due, be64
from contracts.members import sender_member
from contracts.reasons import reject
from contracts.records import CLAIM_JURY, Claim, Jury, PlanState, Seat, Totals

ORIGIN_OBJECTION = "objection"
ORIGIN_APPEAL = "appeal"
OUTCOME_PAY = "pay"
OUTCOME_REJECT = "reject"
OUTCOME_NO_QUORUM = "no_quorum"
MAX_ROUNDS = 2  # the first draw and one redraw when it misses the quorum


def draw_seed(block_hash: bytes, claim_id: int, round_number: int) -> bytes:
    return sha256(b"huzhu/jury/v1\0" + block_hash + be64(claim_id) + bytes((round_number,)))


def draw_jurors(plan: PlanState, totals: Totals, params: Params, seed: bytes,
                excluded: frozenset[bytes], now_ms: int) -> list[bytes]:
    """Up to ``jury_size`` distinct eligible jurors, in draw order.

    Eligible: an active member in the pool whose qualification is at least
    ``juror_seniority_ms`` old, not in ``excluded`` (the claimant and the objectors). Costs at
    most ``jury_size * jury_draw_attempts_per_seat`` hashes and reads.
    """
    pool = totals.juror_slots
    chosen: list[bytes] = []
    if pool == 0:
        return chosen
    taken: set[bytes] = set()  # membership tests only, never iterated
    for counter in range(params.jury_size * params.jury_draw_attempts_per_seat):
        if len(chosen) == params.jury_size or len(taken) == pool:
            break
        slot = int.from_bytes(sha256(seed + be64(counter)), "big") % pool
        member_id = plan.juror_at(slot)
        assert member_id is not None
        if member_id in taken:
            continue
        taken.add(member_id)
        if member_id in excluded:
            continue
        member = plan.member(member_id)
        assert member is not None and member.juror_since_ms is not None
        if not member.active or member.juror_since_ms + params.juror_seniority_ms > now_ms:
            continue
        chosen.append(member_id)
    return chosen


def open_round(plan: PlanState, totals: Totals, params: Params, claim: Claim, origin: str,
               round_number: int, time_ms: int, block: BlockEnv) -> Jury:
    """Draw a jury for ``claim`` and open its commit window at ``time_ms``.

    The caller stores ``claim``; the jury and its seats are stored here. Returns the jury.
    """
    assert 1 <= round_number <= MAX_ROUNDS
    excluded = frozenset([claim.member_id, *(o["member_id"] for o in claim.objections)])
    seed = draw_seed(block.block_hash, claim.claim_id, round_number)
    jurors = draw_jurors(plan, totals, params, seed, excluded, time_ms)
    commit_end = time_ms + params.commit_ms
    reveal_end = commit_end + params.reveal_ms
    jury = plan.jury(claim.claim_id)
    if jury is None:
        jury = Jury(claim.claim_id, origin, round_number, seed, jurors, time_ms, commit_end,
                    reveal_end)
    else:
        assert jury.origin == origin and jury.round == round_number - 1
        jury.round, jury.seed, jury.jurors = round_number, seed, jurors
        jury.opened_ms, jury.commit_end_ms, jury.reveal_end_ms = time_ms, commit_end, reveal_end
        jury.commits = jury.reveals = jury.pay_votes = 0
    for member_id in jurors:
        plan.put_seat(claim.claim_id, round_number, member_id, Seat())
    plan.put_jury(jury)
    plan.enqueue(reveal_end, Due.REVEAL_END, be64(claim.claim_id) + bytes((round_number,)))
    claim.status = CLAIM_JURY
    claim.record(time_ms, f"jury_round_{round_number}_drawn")
    return jury


def round_outcome(jury: Jury, params: Params) -> str:
    """Pay when the valid votes reach the quorum and the pay share reaches the threshold."""
    if jury.reveals < params.jury_quorum:
        return OUTCOME_NO_QUORUM
    if jury.pay_votes * 10_000 >= params.jury_threshold_bps * jury.reveals:
        return OUTCOME_PAY
    return OUTCOME_REJECT


def close_round(plan: PlanState, jury: Jury, outcome: str) -> None:
    """Record the finished round, including jurors who committed but never revealed."""
    non_revealers = []
    for member_id in jury.jurors:
        seat = plan.seat(jury.claim_id, jury.round, member_id)
        assert seat is not None
        if seat.commitment is not None and seat.vote is None:
            non_revealers.append(member_id)
    jury.rounds.append({"round": jury.round, "jurors": len(jury.jurors),
                        "commits": jury.commits, "reveals": jury.reveals,
                        "pay_votes": jury.pay_votes, "non_revealers": non_revealers,
                        "outcome": outcome})


# --- handlers -------------------------------------------------------------------------------

def vote_commitment(vote: str, salt: bytes) -> bytes:
    """What a juror commits to: SHA-256(vote || salt)."""
    return sha256(vote.encode() + salt)


def _open_jury(plan: PlanState, claim_id: int) -> Jury:
    claim = plan.claim(claim_id)
    if claim is None:
        raise reject("unknown_claim", "no such claim")
    jury = plan.jury(claim_id)
    if jury is None or claim.status != CLAIM_JURY:
        raise reject("no_jury", "this claim has no jury sitting")
    return jury


def commit_vote(plan: PlanState, env: TxEnv, body: dict) -> dict:
    """jury.commit (a drawn juror): a sealed vote, during the commit window."""
    member = sender_member(plan, env)
    jury = _open_jury(plan, body["claim_id"])
    if env.time_ms >= jury.commit_end_ms:
        raise reject("commit_closed", "the commit window has ended")
    seat = plan.seat(jury.claim_id, jury.round, member.member_id)
    if seat is None:
        raise reject("not_juror", "the signer was not drawn for this jury")
    if seat.commitment is not None:
        raise reject("already_committed", "this juror already committed")
    seat.commitment = body["commitment"]
    jury.commits += 1
    plan.put_seat(jury.claim_id, jury.round, member.member_id, seat)
    plan.put_jury(jury)
    return {"round": jury.round}


def reveal_vote(plan: PlanState, env: TxEnv, body: dict) -> dict:
    """jury.reveal (a juror who committed): open the vote during the reveal window."""
    member = sender_member(plan, env)
    jury = _open_jury(plan, body["claim_id"])
    if not jury.commit_end_ms <= env.time_ms < jury.reveal_end_ms:
        raise reject("not_reveal_phase", "outside the reveal window")
    seat = plan.seat(jury.claim_id, jury.round, member.member_id)
    if seat is None:
        raise reject("not_juror", "the signer was not drawn for this jury")
    if seat.commitment is None:
        raise reject("not_committed", "no commitment to reveal")
    if seat.vote is not None:
        raise reject("already_revealed", "this vote was already revealed")
    if vote_commitment(body["vote"], body["salt"]) != seat.commitment:
        raise reject("reveal_mismatch", "vote and salt do not match the commitment")
    seat.vote = body["vote"]
    jury.reveals += 1
    if seat.vote == OUTCOME_PAY:
        jury.pay_votes += 1
    plan.put_seat(jury.claim_id, jury.round, member.member_id, seat)
    plan.put_jury(jury)
    return {"round": jury.round}
