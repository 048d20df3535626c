"""Membership: enrollment, payments into the plan balance, exit, juror qualification, leaving.

Enrollment is by the registrar (who checked the person's real identity off chain), payments by
the treasurer (the money moves off chain), exit by the member. Every way out of the plan goes
through ``leave``, which fixes what the member owes (the share index at leaving), takes them
out of every index (identity, arrears, the juror pool, the age-out queue) and keeps the active
count exact, because that count is N in the next settlement.
"""

from __future__ import annotations

from ledger.hashing import sha256

from contracts.env import TxEnv
from contracts.genesis import DAY_MS, Params
from contracts.layout import Due, payment_key
from contracts.reasons import reject
from contracts.records import (
    MEMBER_AGED_OUT,
    MEMBER_EXITED,
    MEMBER_REMOVED_ARREARS,
    Member,
    PlanState,
    Totals,
    member_id_of,
)


def _civil_from_days(days: int) -> tuple[int, int, int]:
    """(year, month, day) of the proleptic Gregorian date ``days`` after 1970-01-01.

    Integer-only (H. Hinnant's algorithm): a contract must not depend on a date library or a
    float, and ages must agree on every node to the millisecond.
    """
    days += 719_468
    era = days // 146_097
    day_of_era = days - era * 146_097
    year_of_era = (day_of_era - day_of_era // 1_460 + day_of_era // 36_524
                   - day_of_era // 146_096) // 365
    day_of_year = day_of_era - (365 * year_of_era + year_of_era // 4 - year_of_era // 100)
    month_index = (5 * day_of_year + 2) // 153
    day = day_of_year - (153 * month_index + 2) // 5 + 1
    month = month_index + 3 if month_index < 10 else month_index - 9
    return year_of_era + era * 400 + (month <= 2), month, day


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days from 1970-01-01 to the proleptic Gregorian date; the inverse of the above."""
    year -= month <= 2
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146_097 + day_of_era - 719_468


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def age_years(birth_ms: int, at_ms: int) -> int:
    """Completed years of age at ``at_ms``, by calendar birthday (UTC dates).

    A birthday is the date, not the hour: someone born on 15 March turns 60 at 00:00 on
    15 March 60 years later. Born on 29 February, in a common year on 1 March.
    """
    birth_year, birth_month, birth_day = _civil_from_days(birth_ms // DAY_MS)
    year, month, day = _civil_from_days(at_ms // DAY_MS)
    return year - birth_year - ((month, day) < (birth_month, birth_day))


def birthday_ms(birth_ms: int, years: int) -> int:
    """The first millisecond at which ``age_years`` reaches ``years``."""
    birth_year, month, day = _civil_from_days(birth_ms // DAY_MS)
    year = birth_year + years
    if (month, day) == (2, 29) and not _is_leap(year):
        month, day = 3, 1
    return _days_from_civil(year, month, day) * DAY_MS


def require_role(plan: PlanState, role: str, sender: bytes) -> None:
    if not plan.has_role(role, sender):
        raise reject("unauthorized", f"the signer is not a {role}")


def sender_member(plan: PlanState, env: TxEnv, must_be_active: bool = True) -> Member:
    return signer_member(plan, env.sender, must_be_active)


def signer_member(plan: PlanState, sender: bytes, must_be_active: bool = True) -> Member:
    """The member who signed, or the refusal (also contracts.kinds' signer rules)."""
    member = plan.member(member_id_of(sender))
    if member is None:
        raise reject("not_member", "the signer is not a member")
    if must_be_active and not member.active:
        raise reject("member_not_active", f"membership ended ({member.status})")
    return member


# --- leaving and the juror pool -------------------------------------------------------------

def remove_juror(plan: PlanState, totals: Totals, member: Member) -> None:
    """Take ``member`` out of the dense juror pool by moving the last juror into its slot."""
    slot = member.juror_slot
    if slot is None:
        return
    last = totals.juror_slots - 1
    if slot != last:
        moved_id = plan.juror_at(last)
        assert moved_id is not None and moved_id != member.member_id
        moved = plan.member(moved_id)
        assert moved is not None and moved.juror_slot == last
        moved.juror_slot = slot
        plan.put_member(moved)
        plan.set_juror_at(slot, moved_id)
    plan.set_juror_at(last, None)
    totals.juror_slots = last
    member.juror_slot = None


def leave(plan: PlanState, totals: Totals, member: Member, status: str, time_ms: int) -> None:
    """End ``member``'s membership now; they keep owing every share already published.

    The caller stores ``member`` and ``totals``. A time-driven caller has already removed
    the queue item that brought it here (age-out, grace end).
    """
    assert member.active
    member.status = status
    member.end_ms = time_ms
    member.end_index_fen = totals.cum_index_fen
    plan.unindex_arrears(member)
    if member.grace_due_ms is not None:
        assert status != MEMBER_REMOVED_ARREARS
        plan.dequeue(member.grace_due_ms, Due.GRACE_END, member.member_id)
        member.grace_due_ms = None
    if status != MEMBER_AGED_OUT:
        plan.dequeue(member.age_out_ms, Due.AGE_OUT, member.member_id)
    plan.set_identity(member.identity, None)
    remove_juror(plan, totals, member)
    totals.active_members -= 1
    assert totals.active_members >= 0


# --- arrears --------------------------------------------------------------------------------

def flag_arrears(plan: PlanState, totals: Totals, params: Params, member: Member) -> None:
    """``member``'s deposits no longer cover a published share: start the grace period."""
    assert member.active and member.arrears_since_ms is None
    plan.unindex_arrears(member)
    member.arrears_since_ms = totals.last_settlement_ms
    member.grace_due_ms = totals.last_settlement_ms + params.grace_ms
    plan.enqueue(member.grace_due_ms, Due.GRACE_END, member.member_id)


def reindex_after_payment(plan: PlanState, totals: Totals, member: Member) -> None:
    """Re-file an active member in the arrears index after their deposits changed."""
    if member.arrears_since_ms is None:
        plan.unindex_arrears(member)
        plan.index_arrears(member)
    elif member.balance_fen(totals.cum_index_fen) >= 0:
        assert member.grace_due_ms is not None
        plan.dequeue(member.grace_due_ms, Due.GRACE_END, member.member_id)
        member.arrears_since_ms = None
        member.grace_due_ms = None
        plan.index_arrears(member)


# --- handlers -------------------------------------------------------------------------------

def enroll(plan: PlanState, env: TxEnv, body: dict) -> dict:
    """member.enroll (registrar): a new member, free to join, cover by age at enrollment."""
    require_role(plan, "registrar", env.sender)
    params = plan.params()
    public_key, identity, birth_ms = body["public_key"], body["identity"], body["birth_ms"]
    member_id = member_id_of(public_key)
    if plan.member(member_id) is not None:
        raise reject("already_member", "this key has (had) a membership; enroll a new key")
    if plan.identity_holder(identity) is not None:
        raise reject("identity_enrolled", "this identity already has an active membership")
    now = env.time_ms
    if now - birth_ms < params.min_enroll_age_ms:
        raise reject("too_young", "members must be at least the minimum age")
    age = age_years(birth_ms, now)
    if age > params.max_enroll_age_years:
        raise reject("too_old", f"members join up to age {params.max_enroll_age_years}")
    totals = plan.totals()
    member = Member(
        member_id=member_id,
        public_key=public_key,
        identity=identity,
        birth_ms=birth_ms,
        enrolled_ms=now,
        age_out_ms=birthday_ms(birth_ms, params.leave_age_years),
        tier_cap_fen=params.tier_cap_fen(age),
        join_index_fen=totals.cum_index_fen,
        identity_key_id=body.get("identity_key_id"),
    )
    plan.index_arrears(member)
    plan.enqueue(member.age_out_ms, Due.AGE_OUT, member_id)
    plan.set_identity(identity, member_id)
    plan.put_member(member)
    totals.active_members += 1
    totals.enrolled_total += 1
    plan.put_totals(totals)
    return {"member_id": member_id.hex(), "tier_cap_fen": member.tier_cap_fen}


def deposit(plan: PlanState, env: TxEnv, body: dict) -> dict:
    """member.deposit (treasurer): credit a payment received off chain, once per reference."""
    require_role(plan, "treasurer", env.sender)
    params = plan.params()
    amount = body["amount_fen"]
    if amount > params.max_deposit_fen:
        raise reject("bad_body", f"amount_fen above max_deposit_fen {params.max_deposit_fen}")
    member = plan.member(body["member_id"])
    if member is None:
        raise reject("unknown_member", "no such member")
    totals = plan.totals()
    if not member.active:
        # A former member may still pay what they owe, but not more: there are no refunds.
        owing = -member.balance_fen(totals.cum_index_fen)
        if amount > owing:
            raise reject("member_not_active", f"membership ended; {max(owing, 0)} fen owed")
    reference_hash = sha256(body["reference"].encode())
    if plan.state.get(payment_key(reference_hash)) is not None:
        raise reject("duplicate_payment", "this payment reference was already credited")
    plan.state.set(payment_key(reference_hash), member.member_id)
    member.deposits_fen += amount
    totals.deposits_fen += amount
    if member.active:
        reindex_after_payment(plan, totals, member)
    plan.put_member(member)
    plan.put_totals(totals)
    return {"balance_fen": member.balance_fen(totals.cum_index_fen)}


def exit_plan(plan: PlanState, env: TxEnv, body: dict) -> dict:
    """member.exit (the member): leave at once; no refund, published shares still owed."""
    member = sender_member(plan, env)
    totals = plan.totals()
    leave(plan, totals, member, MEMBER_EXITED, env.time_ms)
    plan.put_member(member)
    plan.put_totals(totals)
    return {"owed_fen": member.owed_fen(totals.cum_index_fen),
            "balance_fen": member.balance_fen(totals.cum_index_fen)}


def qualify_juror(plan: PlanState, env: TxEnv, body: dict) -> dict:
    """member.qualify_juror (registrar): the member passed the juror exam; join the pool."""
    require_role(plan, "registrar", env.sender)
    member = plan.member(body["member_id"])
    if member is None:
        raise reject("unknown_member", "no such member")
    if not member.active:
        raise reject("member_not_active", "only active members can be jurors")
    if member.juror_slot is not None:
        raise reject("already_juror", "already qualified")
    totals = plan.totals()
    member.juror_slot = totals.juror_slots
    member.juror_since_ms = env.time_ms
    plan.set_juror_at(member.juror_slot, member.member_id)
    totals.juror_slots += 1
    plan.put_member(member)
    plan.put_totals(totals)
    return {"juror_slot": member.juror_slot}
