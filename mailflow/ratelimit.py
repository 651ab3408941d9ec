"""Caps on automatic mail per recipient, by sliding windows.

Pure: given when earlier automatic mail to one recipient was written, say whether one
more would break a window. This is what keeps an out-of-office robot and the desk from
writing to each other forever, even if classification misses the robot.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Window:
    count: int
    span: timedelta

    def describe(self) -> str:
        minutes = int(self.span.total_seconds() // 60)
        if minutes % (24 * 60) == 0:
            return f"{self.count} per {minutes // (24 * 60)} day(s)"
        if minutes % 60 == 0:
            return f"{self.count} per {minutes // 60} hour(s)"
        return f"{self.count} per {minutes} minute(s)"


DEFAULT_WINDOWS = (Window(3, timedelta(minutes=10)), Window(20, timedelta(days=1)))

# Kinds of automatic mail that go to one address at most once per interval, whatever
# the windows allow: answers to strangers and refusals must not feed a loop.
ONCE_PER = {
    "unknown_sender": timedelta(hours=24),
    "too_large": timedelta(hours=24),
    "security_alert": timedelta(hours=24),
    "quarantined": timedelta(hours=1),
}


def over_limit(earlier: Sequence[datetime], now: datetime, windows: Sequence[Window]) -> str | None:
    """The reason one more automatic mail is refused, or None when it may go."""
    recent = [sum(1 for moment in earlier if now - moment < window.span) for window in windows]
    return over_counts(recent, windows)


def window_starts(now: datetime, windows: Sequence[Window]) -> list[datetime]:
    """Where each window begins: mail written *after* it counts (as in over_limit)."""
    return [now - window.span for window in windows]


def over_counts(recent: Sequence[int], windows: Sequence[Window]) -> str | None:
    """over_limit, given how many were written within each window (in order)."""
    for window, count in zip(windows, recent, strict=True):
        if count >= window.count:
            return f"rate limit: {count} automatic mails in the window of {window.describe()}"
    return None
