"""Business days in Japan: weekends, public holidays and the company's own closures.

Deadlines ("3営業日以内", the rules' default of N business days) are counted on this
calendar. Public holidays come from jpholiday, which already knows 振替休日 (a holiday
moved off a Sunday) and 国民の休日 (a day squeezed between two holidays); closures such
as the New Year break (12/29–1/3) are not national holidays, so they are added here.
The module is pure: jpholiday is a table lookup, nothing here touches I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING

import jpholiday

if TYPE_CHECKING:
    from mailflow.rules import Defaults

MonthDay = tuple[int, int]
Closure = tuple[MonthDay, MonthDay]
HOLIDAY_CALENDARS = ("jp", "none")
NEW_YEAR_BREAK: tuple[Closure, ...] = (((12, 29), (1, 3)),)

# No real calendar is closed this long; walking further means the closures cover the whole
# year and counting would never end.
_LONGEST_WALK = 370
_DAY = timedelta(days=1)


@lru_cache(maxsize=8192)
def is_public_holiday(day: date) -> bool:
    """A Japanese public holiday (incl. 振替休日 and 国民の休日); cached, as it is asked often."""
    return bool(jpholiday.is_holiday(day))


def _in_closure(day: date, closure: Closure) -> bool:
    start, end = closure
    month_day = (day.month, day.day)
    if start <= end:
        return start <= month_day <= end
    # A range such as 12/29–1/3 wraps the year end: it is the two tails of the year.
    return month_day >= start or month_day <= end


@dataclass(frozen=True)
class BusinessCalendar:
    """Which days count as business days; ``holidays`` is ``"jp"`` or ``"none"``."""

    holidays: str = "jp"
    closures: tuple[Closure, ...] = NEW_YEAR_BREAK

    def __post_init__(self) -> None:
        if self.holidays not in HOLIDAY_CALENDARS:
            raise ValueError(
                f"unknown holiday calendar '{self.holidays}': use one of "
                + ", ".join(HOLIDAY_CALENDARS)
            )

    @classmethod
    def from_defaults(cls, defaults: Defaults) -> BusinessCalendar:
        """The calendar that rules.yaml's ``defaults`` (holidays, closures) describe."""
        return cls(holidays=defaults.holidays, closures=tuple(defaults.closures))

    def is_business_day(self, day: date) -> bool:
        if day.weekday() >= 5:
            return False
        if self.holidays == "jp" and is_public_holiday(day):
            return False
        return not any(_in_closure(day, closure) for closure in self.closures)

    def next_business_day(self, day: date) -> date:
        """The first business day strictly after ``day``."""
        return self._walk(day, 1)

    def previous_business_day(self, day: date) -> date:
        """The last business day strictly before ``day``."""
        return self._walk(day, -1)

    def on_or_before(self, day: date) -> date:
        """``day`` itself when it is a business day, else the business day before it."""
        return day if self.is_business_day(day) else self.previous_business_day(day)

    def on_or_after(self, day: date) -> date:
        """``day`` itself when it is a business day, else the business day after it."""
        return day if self.is_business_day(day) else self.next_business_day(day)

    def add_business_days(self, day: date, n: int) -> date:
        """The n-th business day after ``day`` (``day`` itself is not counted).

        ``n == 0`` gives ``day`` back unchanged; a negative ``n`` counts backwards.
        """
        step = 1 if n >= 0 else -1
        for _ in range(abs(n)):
            day = self._walk(day, step)
        return day

    def business_days_between(self, start: date, end: date) -> int:
        """Business days in (start, end]: the inverse of ``add_business_days``.

        Negative when ``end`` is before ``start``; ``start`` itself is never counted.
        """
        if end < start:
            return -self.business_days_between(end, start)
        days = (end - start).days
        return sum(self.is_business_day(start + _DAY * offset) for offset in range(1, days + 1))

    def _walk(self, day: date, step: int) -> date:
        for _ in range(_LONGEST_WALK):
            day += _DAY * step
            if self.is_business_day(day):
                return day
        raise ValueError("the closures leave no business day in a whole year")
