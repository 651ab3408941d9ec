"""Business days: weekends, Japanese public holidays (jpholiday) and company closures."""

from __future__ import annotations

from datetime import date

import pytest

from mailflow.calendar_jp import BusinessCalendar, is_public_holiday
from mailflow.rules import Defaults

JP = BusinessCalendar()


@pytest.mark.parametrize(
    ("day", "expected", "why"),
    [
        (date(2026, 11, 26), True, "a Thursday"),
        (date(2026, 11, 28), False, "a Saturday"),
        (date(2026, 11, 29), False, "a Sunday"),
        (date(2026, 11, 23), False, "勤労感謝の日"),
        (date(2026, 5, 6), False, "振替休日 for 憲法記念日 on a Sunday"),
        (date(2026, 9, 21), False, "敬老の日"),
        (date(2026, 9, 22), False, "国民の休日 between two holidays"),
        (date(2026, 9, 23), False, "秋分の日"),
        (date(2026, 12, 28), True, "the last day before the New Year closure"),
        (date(2026, 12, 29), False, "closure starts"),
        (date(2026, 12, 31), False, "closure"),
        (date(2027, 1, 1), False, "元日 and closure"),
        (date(2027, 1, 4), True, "first day back (a Monday)"),
        (date(2027, 1, 11), False, "成人の日"),
    ],
)
def test_is_business_day(day: date, expected: bool, why: str) -> None:
    assert JP.is_business_day(day) is expected, why


@pytest.mark.parametrize(
    ("start", "n", "expected"),
    [
        # Reference: 3営業日以内 from Thu 2026-11-26 is Tue 2026-12-01.
        (date(2026, 11, 26), 3, date(2026, 12, 1)),
        (date(2026, 11, 26), 1, date(2026, 11, 27)),
        (date(2026, 11, 26), 0, date(2026, 11, 26)),
        (date(2026, 11, 28), 1, date(2026, 11, 30)),  # from a Saturday
        # Golden Week: 5/2–5/6 off, 5/6 being the 振替休日.
        (date(2026, 5, 1), 1, date(2026, 5, 7)),
        # Silver Week: 9/19–9/23 off, 9/22 being the 国民の休日.
        (date(2026, 9, 18), 1, date(2026, 9, 24)),
        # The New Year closure 12/29–1/3 wraps the year.
        (date(2026, 12, 25), 3, date(2027, 1, 5)),
        (date(2026, 12, 1), -1, date(2026, 11, 30)),
        (date(2026, 11, 30), -1, date(2026, 11, 27)),
    ],
)
def test_add_business_days(start: date, n: int, expected: date) -> None:
    assert JP.add_business_days(start, n) == expected


@pytest.mark.parametrize(
    ("day", "next_day", "previous_day"),
    [
        (date(2026, 11, 26), date(2026, 11, 27), date(2026, 11, 25)),
        (date(2026, 11, 27), date(2026, 11, 30), date(2026, 11, 26)),
        (date(2026, 5, 5), date(2026, 5, 7), date(2026, 5, 1)),
        (date(2026, 9, 21), date(2026, 9, 24), date(2026, 9, 18)),
        (date(2026, 12, 31), date(2027, 1, 4), date(2026, 12, 28)),
    ],
)
def test_next_and_previous_business_day(day: date, next_day: date, previous_day: date) -> None:
    assert JP.next_business_day(day) == next_day
    assert JP.previous_business_day(day) == previous_day


def test_on_or_before_and_after() -> None:
    assert JP.on_or_before(date(2026, 11, 26)) == date(2026, 11, 26)
    assert JP.on_or_before(date(2026, 12, 31)) == date(2026, 12, 28)
    assert JP.on_or_after(date(2026, 11, 28)) == date(2026, 11, 30)


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (date(2026, 11, 26), date(2026, 12, 1), 3),
        (date(2026, 11, 26), date(2026, 11, 26), 0),
        (date(2026, 11, 27), date(2026, 11, 29), 0),  # only the weekend after
        (date(2026, 5, 1), date(2026, 5, 7), 1),
        (date(2026, 9, 18), date(2026, 9, 24), 1),
        (date(2026, 12, 28), date(2027, 1, 4), 1),
        (date(2026, 12, 1), date(2026, 11, 26), -3),
    ],
)
def test_business_days_between(start: date, end: date, expected: int) -> None:
    assert JP.business_days_between(start, end) == expected


def test_between_is_the_inverse_of_add() -> None:
    start = date(2026, 12, 20)
    for n in range(0, 30):
        assert JP.business_days_between(start, JP.add_business_days(start, n)) == n


def test_without_public_holidays_only_weekends_and_closures_count() -> None:
    plain = BusinessCalendar(holidays="none", closures=())
    assert plain.is_business_day(date(2026, 11, 23))  # 勤労感謝の日 is worked
    assert plain.is_business_day(date(2026, 12, 30))
    assert not plain.is_business_day(date(2026, 11, 28))


@pytest.mark.parametrize(
    ("closures", "day", "expected"),
    [
        ((((8, 13), (8, 16)),), date(2026, 8, 13), False),  # お盆, not wrapping
        ((((8, 13), (8, 16)),), date(2026, 8, 17), True),
        ((((12, 29), (1, 3)),), date(2027, 1, 4), True),
        ((((12, 26), (1, 5)),), date(2027, 1, 5), False),
        ((((12, 26), (1, 5)),), date(2026, 12, 25), True),
    ],
)
def test_closures(
    closures: tuple[tuple[tuple[int, int], tuple[int, int]], ...], day: date, expected: bool
) -> None:
    assert BusinessCalendar(closures=closures).is_business_day(day) is expected


def test_from_defaults() -> None:
    defaults = Defaults(holidays="none", closures=(((8, 13), (8, 16)),))
    calendar = BusinessCalendar.from_defaults(defaults)
    assert calendar == BusinessCalendar(holidays="none", closures=(((8, 13), (8, 16)),))
    assert BusinessCalendar.from_defaults(Defaults()) == BusinessCalendar()


def test_unknown_holiday_calendar_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown holiday calendar 'us'"):
        BusinessCalendar(holidays="us")


def test_a_year_long_closure_fails_instead_of_looping() -> None:
    closed = BusinessCalendar(closures=(((1, 1), (12, 31)),))
    with pytest.raises(ValueError, match="no business day"):
        closed.next_business_day(date(2026, 11, 26))


def test_holiday_lookups_are_cached() -> None:
    is_public_holiday.cache_clear()
    for _ in range(3):
        JP.add_business_days(date(2026, 4, 28), 10)
    info = is_public_holiday.cache_info()
    assert info.hits > info.misses
