"""DOMAIN.md's settlement arithmetic, including its worked example with 1,000,000 members."""

from __future__ import annotations

import pytest
from contract_helpers import (
    GENESIS_MS,
    REVIEWER,
    Chain,
    bulk_enroll,
    key,
    mid,
    plan_genesis,
)
from hypothesis import given
from hypothesis import strategies as st

from contracts.genesis import DAY_MS, YEAR_MS
from contracts.settlement import settlement_math
from ledger.hashing import sha256


def test_worked_example_one_million_members() -> None:
    # Two claims final in the period, RMB 300,000 and RMB 100,000; carry 0; fee 8%.
    math = settlement_math(payouts_fen=30_000_000 + 10_000_000, carry_in_fen=0,
                           members=1_000_000, fee_bps=800, share_cap_fen=783)
    assert math.fee_fen == 3_200_000
    assert math.total_fen == 43_200_000
    assert math.share_fen == 43
    assert math.carry_fen == 200_000


def test_cap_moves_the_excess_to_the_next_period() -> None:
    math = settlement_math(payouts_fen=10_000_000, carry_in_fen=5, members=1_000,
                           fee_bps=800, share_cap_fen=783)
    assert math.total_fen == 10_800_005
    assert math.share_fen == 783
    assert math.carry_fen == 10_800_005 - 783 * 1_000


def test_no_members_carries_everything() -> None:
    math = settlement_math(payouts_fen=100, carry_in_fen=7, members=0, fee_bps=800,
                           share_cap_fen=783)
    assert (math.fee_fen, math.share_fen, math.carry_fen) == (8, 0, 115)


@given(st.integers(0, 10**12), st.integers(0, 10**9), st.integers(0, 10**8),
       st.integers(0, 10_000), st.integers(1, 10**6))
def test_arithmetic_conserves_and_floors(payouts, carry_in, members, fee_bps, cap) -> None:
    math = settlement_math(payouts, carry_in, members, fee_bps, cap)
    assert math.fee_fen == payouts * fee_bps // 10_000
    assert math.share_fen * members + math.carry_fen == payouts + math.fee_fen + carry_in
    assert 0 <= math.share_fen <= cap
    if members and math.share_fen < cap:
        assert math.carry_fen < members  # only the rounding remainder carries


@pytest.mark.slow
@pytest.mark.timeout(3_600)  # a million enrollments take minutes
def test_worked_example_through_the_plan_with_one_million_members() -> None:
    """DOMAIN.md's example end to end: 1,000,000 members at the boundary, claims of
    RMB 300,000 and RMB 100,000 final in the period, carry 0 -> share 43, carry 200,000."""
    chain = Chain(plan_genesis())
    young, older = key("young-claimant"), key("older-claimant")
    assert chain.enroll(young, age_years=30).ok
    assert chain.enroll(older, age_years=45).ok
    bulk_enroll(chain, 999_998, deposit_fen=1_000)
    assert chain.totals()["active_members"] == 1_000_000
    chain.advance_to(GENESIS_MS + 92 * DAY_MS)
    for pair, amount in ((young, 30_000_000), (older, 10_000_000)):
        receipt = chain.run(pair, "claim.submit", {
            "condition": "CI001", "diagnosis_ms": chain.time_ms, "amount_fen": amount,
            "evidence_root": sha256(b"docs")})
        assert receipt.ok, receipt
        assert chain.run(REVIEWER, "claim.review", {"claim_id": receipt.result["claim_id"],
                                                    "decision": "approve",
                                                    "amount_fen": amount}).ok
    chain.advance_to(chain.time_ms + 3 * DAY_MS)
    totals = chain.totals()
    assert totals["pending_payouts_fen"] == 40_000_000 and totals["carry_fen"] == 0
    period = totals["next_period"]
    chain.advance_to(GENESIS_MS + period * (YEAR_MS // 24))
    settlement = chain.q(f"settlement/{period}")
    assert settlement["members"] == 1_000_000
    assert settlement["fee_fen"] == 3_200_000 and settlement["total_fen"] == 43_200_000
    assert settlement["share_fen"] == 43 and settlement["carry_fen"] == 200_000
    assert chain.totals()["conservation_holds"]
    assert chain.q(f"balance/{mid(key('young-claimant')).hex()}")["owed_fen"] == 43
