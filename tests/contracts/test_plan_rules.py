"""Rules DOMAIN.md used to leave open, decided: age by calendar birthday, no resubmission of a
rejected condition, jurors who leave after the draw, who may anchor evidence."""

from __future__ import annotations

import datetime

from contract_helpers import REGISTRAR, Chain, key, mid

from contracts.members import age_years, birthday_ms
from ledger.hashing import sha256


def utc_ms(year: int, month: int, day: int, hour: int = 0, second: int = 0) -> int:
    moment = datetime.datetime(year, month, day, hour, 0, second, tzinfo=datetime.timezone.utc)
    return int(moment.timestamp()) * 1_000


def test_age_counts_calendar_birthdays_in_integers() -> None:
    born = utc_ms(1990, 3, 15)
    assert age_years(born, utc_ms(2050, 3, 14, 23, 59)) == 59
    assert age_years(born, utc_ms(2050, 3, 15)) == 60
    assert birthday_ms(born, 60) == utc_ms(2050, 3, 15)
    # Born at 18:00: the birthday is the calendar date, whatever the hour.
    assert age_years(utc_ms(1990, 3, 15, 18), utc_ms(2050, 3, 15)) == 60
    # Before 1970 (negative times) the dates are as exact.
    before_epoch = utc_ms(1963, 12, 1)
    assert before_epoch < 0 and birthday_ms(before_epoch, 60) == utc_ms(2023, 12, 1)
    assert age_years(before_epoch, utc_ms(2023, 11, 30, 23, 59)) == 59
    # A 29 February birthday falls on 1 March in a common year.
    leap = utc_ms(2000, 2, 29)
    assert age_years(leap, utc_ms(2001, 2, 28, 23, 59)) == 0
    assert age_years(leap, utc_ms(2001, 3, 1)) == 1
    assert birthday_ms(leap, 1) == utc_ms(2001, 3, 1)
    assert birthday_ms(leap, 4) == utc_ms(2004, 2, 29)


def test_members_leave_on_their_sixtieth_birthday_and_join_the_day_before() -> None:
    chain = Chain()  # genesis 2023-11-14 22:13 UTC
    turning = key("turning")
    # 60 on 2023-12-01: 59 at enrollment, leaves exactly at midnight of the birthday (365.2425
    # days a year put it half a day early).
    assert chain.run(REGISTRAR, "member.enroll", {
        "public_key": turning.public_key, "identity": sha256(b"turning"),
        "birth_ms": utc_ms(1963, 12, 1)}).ok
    assert chain.member(turning)["age_out_ms"] == utc_ms(2023, 12, 1)
    # 60 tomorrow: still 59 today, so may join.
    tomorrow = key("tomorrow")
    assert chain.run(REGISTRAR, "member.enroll", {
        "public_key": tomorrow.public_key, "identity": sha256(b"tomorrow"),
        "birth_ms": utc_ms(1963, 11, 16)}).ok
    chain.advance_to(utc_ms(2023, 11, 30, 23, 59))
    assert chain.member(turning)["status"] == "active"
    chain.advance_to(utc_ms(2023, 12, 1))
    assert chain.member(turning)["status"] == "aged_out"
    assert chain.q(f"member/{mid(tomorrow).hex()}")["status"] == "aged_out"


def test_birthdays_agree_with_the_calendar_over_centuries() -> None:
    first = datetime.date(1899, 12, 25)
    for step in range(0, 80_000, 97):  # every 97th day, 1899 to 2118
        born = first + datetime.timedelta(days=step)
        born_ms = utc_ms(born.year, born.month, born.day)
        for years in (1, 59, 60):
            try:
                expected = datetime.date(born.year + years, born.month, born.day)
            except ValueError:  # 29 February in a common year
                expected = datetime.date(born.year + years, 3, 1)
            at_ms = utc_ms(expected.year, expected.month, expected.day)
            assert birthday_ms(born_ms, years) == at_ms
            assert age_years(born_ms, at_ms) == years
            assert age_years(born_ms, at_ms - 1) == years - 1
