"""DOMAIN.md's settlement arithmetic, including its worked example with 1,000,000 members."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from contracts.settlement import settlement_math


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
