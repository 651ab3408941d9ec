"""What the client asked for: the deadline, the delivery format and hours, read from text.

Pure functions of a mail's new text, its ``Date`` and the business calendar.

Deadlines are read by a small table of named forms (``_FORMS``), tried in order; each
claims the text it matched so that a later, looser form cannot read part of it again
("12月3日" is one date, not also a bare "3日"). Every match becomes a candidate with a score:

- 2: a deadline word is attached (まで, 締切, 納期, 期限, by, due, deadline…) or the form
  says so itself (明日中, 3営業日以内, within 3 business days, EOD);
- 1: a plain date that may stand alone ("12月3日", "Dec 3", "明日", "来週金曜");
- 0: not a deadline: "12月3日の会議" (の and a noun, no まで), "10時から" (a start), and
  a weekday, a time or a bare "12/3" without a deadline word ("1/2 price", "金曜に会議"
  is kept, "金曜の会議" is not).

The deadline is the first future candidate with the best score; failing that, a past one
with a deadline word (the client may be late). A past plain date is never a deadline.

Year rule: a month/day without a year means its occurrence within [sent - 60 days,
sent + 305 days]: "12/3" written on 2026-12-10 is 2026-12-03 (a few days late), "1/5"
written on 2026-12-10 is 2027-01-05, "12/28" written on 2027-01-05 is 2026-12-28.

Relative forms keep the calendar day the client named ("明日中" written on a Friday is the
Saturday, "3日以内" counts calendar days); forms that name a period end on its last business
day (今週中 → Friday or before, 今月末 → the month's last business day, 年内 → the last
business day before the New Year closure).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from mailflow.calendar_jp import BusinessCalendar
from mailflow.skills import nfkc

END_OF_DAY = time(18, 0)
_PAST_WINDOW = timedelta(days=60)
_FUTURE_WINDOW = timedelta(days=305)


@dataclass(frozen=True)
class Deadline:
    """A deadline read from a client's text; ``phrase`` is the text it was read from."""

    due: datetime
    phrase: str
    kind: str
    end_of_day: bool


@dataclass(frozen=True)
class _Context:
    now: datetime  # the mail's Date in the desk's time zone
    calendar: BusinessCalendar
    end_of_day: time

    @property
    def today(self) -> date:
        return self.now.date()


# A resolver turns a match into a day (the end of the business day applies) or an exact
# moment; None when the numbers do not make a real date ("2月30日").
Resolved = date | datetime
Resolver = Callable[[re.Match[str], _Context], Resolved | None]


@dataclass(frozen=True)
class _Form:
    kind: str
    pattern: re.Pattern[str]
    resolve: Resolver
    # "self": the words are a deadline by themselves (明日中, 3営業日以内);
    # "free": a plain date that may stand alone (12月3日, Dec 3, 明日);
    # "needs": only a deadline word, a weekday or a time makes it one (12/3, 金曜, 17時).
    attach: str
    # Words (lower case) one of which is in every text the pattern matches: a text with
    # none of them is not searched, which spares most of the regex scans of a mail.
    # Empty: always search.
    hint: tuple[str, ...]


_FORMS: list[_Form] = []


def _form(
    kind: str, pattern: str, attach: str = "free", *, hint: tuple[str, ...] = ()
) -> Callable[[Resolver], Resolver]:
    """Register a deadline form; registration order is the order the forms are tried."""

    def register(resolve: Resolver) -> Resolver:
        compiled = re.compile(pattern, re.IGNORECASE)
        _FORMS.append(_Form(kind, compiled, resolve, attach, hint))
        return resolve

    return register


# IGNORECASE also matches i to İ and ı, s to ſ and k to the Kelvin sign; lower() alone
# does not fold these (and makes two characters of İ), so they are folded first.
_CASE_TWINS = str.maketrans({"\u0130": "i", "\u0131": "i", "\u017f": "s", "\u212a": "k"})


@lru_cache(maxsize=8)
def _caseless(text: str) -> str:
    """``text`` in lower case such that any lower-case word (ASCII or without case) that an
    IGNORECASE pattern finds in ``text`` is a substring of it: what hints are checked in."""
    # str.translate walks a non-ASCII text character by character in Python objects (some
    # 10 µs a mail); the twins are rare, so a few searches in C decide whether it is needed.
    if text.isascii() or not any(twin in text for twin in _TWIN_CHARACTERS):
        return text.lower()
    return text.translate(_CASE_TWINS).lower()


_TWIN_CHARACTERS = tuple(chr(code) for code in _CASE_TWINS)


# -- words around a date -------------------------------------------------------------------

_WEEKDAYS_JA = "月火水木金土日"
_WEEKDAYS_EN = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WEEKDAY_EN = (
    r"(?:monday|mon|tuesday|tues|tue|wednesday|wed|thursday|thurs|thur|thu"
    r"|friday|fri|saturday|sat|sunday|sun)"
)
_MONTHS_EN = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_MONTH_EN = (
    r"(?:january|jan|february|feb|march|mar|april|apr|may|june|jun|july|jul|august|aug"
    r"|september|sept|sep|october|oct|november|nov|december|dec)"
)
_ORDINAL = r"(?:st|nd|rd|th)?"
# "(木)", "(木・祝)", "(Thu)" after a date; it is not checked against the date.
_PAREN_WEEKDAY = (
    rf"(?:\s*\((?P<paren>[{_WEEKDAYS_JA}祝][^()\d]{{0,6}}|(?:{_WEEKDAY_EN})[a-z]*\.?)\))?"
)
_CLOCK = (
    r"(?:(?P<ja_ap>午前|午後)\s*)?(?P<h>\d{1,2})\s*時(?!間)(?:\s*(?P<jm>\d{1,2})\s*分|(?P<half>半))?"
    r"|(?P<ch>\d{1,2}):(?P<cm>\d{2})(?![:\d])(?:\s*(?P<cap>[ap])\.?m\b\.?)?"
    r"|(?P<eh>\d{1,2})\s*(?P<eap>[ap])\.?m\b\.?"
    r"|(?P<noon>正午|午前中|\bnoon\b)"
)
_CLOCK_AFTER = re.compile(r"\s*(?:の|at\b|@|,)?\s*(?:" + _CLOCK + ")", re.IGNORECASE)

_PREFIX_WORD = re.compile(
    r"(?:締め?切り?日?|〆切?|納期|提出期限|期限|納品日|期日|\bdue(?:\s+date)?|\bdeadline"
    r"|\bby|\bbefore|\buntil|\btill|\bno\s+later\s+than|\bon\s+or\s+before)"
    r"\s*(?:は|が|を|:|is)?\s*(?:the\s+)?$",
    re.IGNORECASE,
)
# Deadline words after a date; the ones in the lookahead (a request: "にお願いします")
# count but are not part of the phrase shown to people.
_SUFFIX_WORD = re.compile(
    r"\s*(?:まで(?:に)?|迄(?:に)?|が?締め?切り?|〆切?|必着|厳守|が?納期|が?期限"
    r"|を?目[処途](?:に)?|を?めど(?:に)?"
    r"|(?=(?:に|で)\s*(?:ご|お)?(?:納品|提出|送付|送って|送り|お願い|ください|下さい|いただ|頂)))"
)
# "12月3日の午前中まで" is still a deadline; digits stop the look so that
# "12月3日の会議の議事録を12月5日まで" does not lend its まで to the first date.
_NOUN_THEN_DEADLINE = re.compile(r"\s*の[^、。,.\n\d]{0,8}?(?:まで|迄|締め?切|期限|納期)")
_NOUN = re.compile(r"\s*の")
# A start, not an end: "12/1から", "10時より", "12/1〜12/3".
_START_WORD = re.compile(r"\s*(?:から|より|以降|[~〜\-–—]|from\b)", re.IGNORECASE)
_PARTICLE = re.compile(r"\s*[にで]")


# -- date arithmetic -----------------------------------------------------------------------


def _real_date(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _nearest(ctx: _Context, month: int, day: int) -> date | None:
    """A month/day without a year: see the year rule in the module docstring."""
    year = ctx.today.year
    candidate = _real_date(year, month, day)
    if candidate is not None and candidate < ctx.today - _PAST_WINDOW:
        return _real_date(year + 1, month, day)
    if candidate is not None and candidate > ctx.today + _FUTURE_WINDOW:
        return _real_date(year - 1, month, day)
    return candidate


def _weekday_index(name: str) -> int:
    if name[0] in _WEEKDAYS_JA:
        return _WEEKDAYS_JA.index(name[0])
    return _WEEKDAYS_EN.index(name[:3].lower())


def _week_start(day: date, weeks_ahead: int = 0) -> date:
    """The Monday of the week of ``day``, or of a later week."""
    return day - timedelta(days=day.weekday()) + timedelta(weeks=weeks_ahead)


def _next_weekday(day: date, weekday: int) -> date:
    """The nearest such weekday on or after ``day`` ("by Friday" on a Friday is that day)."""
    return day + timedelta(days=(weekday - day.weekday()) % 7)


def _month_end(day: date, months_ahead: int = 0) -> date:
    # The first of the following month, less a day; ``index`` counts months from 0.
    index = day.month + months_ahead
    return date(day.year + index // 12, index % 12 + 1, 1) - timedelta(days=1)


def _period_end(ctx: _Context, last_day: date) -> date:
    """The last business day of a period ending on ``last_day``; never before today."""
    day = ctx.calendar.on_or_before(last_day)
    return day if day >= ctx.today else ctx.calendar.on_or_after(ctx.today)


def _time_of_day(hour: int, minute: int, meridiem: str) -> time | None:
    if meridiem and hour > 12:
        return None
    if meridiem == "p" and hour < 12:
        hour += 12
    elif meridiem == "a" and hour == 12:
        hour = 0
    return time(hour, minute) if hour < 24 and minute < 60 else None


def _clock(match: re.Match[str]) -> time | None:
    """The time of day in a ``_CLOCK`` match: 17時, 午後3時半, 17:00, 5pm, 正午."""
    groups = match.groupdict()
    if groups["noon"]:
        return time(12, 0)
    if groups["h"]:
        minute = int(groups["jm"] or (30 if groups["half"] else 0))
        meridiem = {"午前": "a", "午後": "p"}.get(groups["ja_ap"] or "", "")
        return _time_of_day(int(groups["h"]), minute, meridiem)
    if groups["ch"]:
        return _time_of_day(int(groups["ch"]), int(groups["cm"]), (groups["cap"] or "").lower())
    return _time_of_day(int(groups["eh"]), 0, groups["eap"].lower())


# -- the forms, most specific first --------------------------------------------------------

_WHICH_WEEK = {"今週": 0, "this": 0, "来週": 1, "next": 1, "再来週": 2}
_WHICH_MONTH = {"今月": 0, "this": 0, "来月": 1, "next": 1, "再来月": 2}


@_form(
    "date",
    r"(?P<y>20\d{2})\s*年\s*(?P<m>\d{1,2})\s*月\s*(?P<d>\d{1,2})\s*日" + _PAREN_WEEKDAY,
    hint=("年",),
)
def _ja_full_date(match: re.Match[str], ctx: _Context) -> Resolved | None:
    return _real_date(int(match["y"]), int(match["m"]), int(match["d"]))


@_form(
    "date",
    r"(?<![\d.])(?P<y>20\d{2})([-/.])(?P<m>\d{1,2})\2(?P<d>\d{1,2})(?!\d)" + _PAREN_WEEKDAY,
    hint=("20",),
)
def _iso_date(match: re.Match[str], ctx: _Context) -> Resolved | None:
    return _ja_full_date(match, ctx)


@_form(
    "date",
    r"(?<![\d/])(?P<m>\d{1,2})/(?P<d>\d{1,2})/(?P<y>20\d{2})(?!\d)" + _PAREN_WEEKDAY,
    hint=("/20",),
)
def _us_full_date(match: re.Match[str], ctx: _Context) -> Resolved | None:
    return _ja_full_date(match, ctx)


@_form("date", r"(?<!\d)(?P<m>\d{1,2})\s*月\s*(?P<d>\d{1,2})\s*日" + _PAREN_WEEKDAY, hint=("月",))
def _ja_month_day(match: re.Match[str], ctx: _Context) -> Resolved | None:
    return _nearest(ctx, int(match["m"]), int(match["d"]))


@_form(
    "date",
    rf"\b(?P<mon>{_MONTH_EN})\.?\s+(?P<d>\d{{1,2}}){_ORDINAL}\b(?:,?\s+(?P<y>20\d{{2}}))?"
    rf"|\b(?P<d2>\d{{1,2}}){_ORDINAL}\s+(?:of\s+)?(?P<mon2>{_MONTH_EN})\b\.?"
    rf"(?:,?\s+(?P<y2>20\d{{2}}))?",
    hint=_MONTHS_EN,
)
def _en_month_day(match: re.Match[str], ctx: _Context) -> Resolved | None:
    month = _MONTHS_EN.index((match["mon"] or match["mon2"])[:3].lower()) + 1
    day, year = int(match["d"] or match["d2"]), match["y"] or match["y2"]
    return _real_date(int(year), month, day) if year else _nearest(ctx, month, day)


# 12/3 is also a fraction ("1/2 price"): it needs a deadline word, a weekday or a time.
@_form(
    "date",
    r"(?<![\d/.\-])(?P<m>\d{1,2})/(?P<d>\d{1,2})(?![\d/]|[.:]\d)" + _PAREN_WEEKDAY,
    "needs",
    hint=("/",),
)
def _slash_month_day(match: re.Match[str], ctx: _Context) -> Resolved | None:
    return _ja_month_day(match, ctx)


@_form(
    "business_days",
    r"(?P<n>\d{1,2})\s*営業日\s*(?:以内に?|後|で|まで(?:に)?)?"
    r"|\b(?:within|in)\s+(?P<en>\d{1,2})\s+(?:business|working)\s+days?\b",
    "self",
    hint=("営業日", "business", "working"),
)
def _business_days(match: re.Match[str], ctx: _Context) -> Resolved | None:
    return ctx.calendar.add_business_days(ctx.today, int(match["n"] or match["en"]))


@_form(
    "hours",
    r"(?P<n>\d{1,2})\s*時間\s*以内|\bwithin\s+(?P<en>\d{1,2})\s+hours?\b",
    "self",
    hint=("時間", "within"),
)
def _within_hours(match: re.Match[str], ctx: _Context) -> Resolved | None:
    return ctx.now + timedelta(hours=int(match["n"] or match["en"]))


@_form(
    "days",
    r"(?<![月\d])(?P<n>\d{1,3})\s*(?P<unit>日|週間)\s*(?:以内|後)"
    r"|\b(?:within|in)\s+(?P<en>\d{1,3})\s+(?P<en_unit>days?|weeks?)\b",
    "self",
    hint=("以内", "後", "day", "week"),
)
def _within_days(match: re.Match[str], ctx: _Context) -> Resolved | None:
    weeks = match["unit"] == "週間" or (match["en_unit"] or "").lower().startswith("week")
    count = int(match["n"] or match["en"])
    return ctx.today + (timedelta(weeks=count) if weeks else timedelta(days=count))


_EOD = r"(?:eod|cob|(?:the\s+)?end\s+of\s+(?:the\s+)?(?:business\s+)?day|close\s+of\s+business)"


@_form(
    "relative",
    rf"\b(?:by\s+)?{_EOD}\s+(?P<a>today|tomorrow)\b|\b(?P<b>today|tomorrow)\s*,?\s*(?:by\s+)?{_EOD}\b",
    "self",
    hint=("today", "tomorrow"),
)
def _eod_of_named_day(match: re.Match[str], ctx: _Context) -> Resolved | None:
    tomorrow = (match["a"] or match["b"]).lower() == "tomorrow"
    return ctx.today + timedelta(days=1 if tomorrow else 0)


@_form(
    "relative",
    rf"\b{_EOD}\b|(?:本日|今日)\s*(?:中|じゅう)",
    "self",
    hint=("eod", "cob", "end", "close", "本日", "今日"),
)
def _today_within(match: re.Match[str], ctx: _Context) -> Resolved | None:
    return ctx.today


@_form(
    "relative",
    r"本日|今日|\btoday\b|\btonight\b",
    "needs",
    hint=("本日", "今日", "today", "tonight"),
)
def _today(match: re.Match[str], ctx: _Context) -> Resolved | None:
    return ctx.today


@_form("relative", r"明日\s*(?:中|じゅう)", "self", hint=("明日",))
def _tomorrow_within(match: re.Match[str], ctx: _Context) -> Resolved | None:
    return ctx.today + timedelta(days=1)


@_form(
    "relative",
    r"明後日|あさって|\b(?:the\s+)?day\s+after\s+tomorrow\b",
    hint=("明後日", "あさって", "tomorrow"),
)
def _day_after_tomorrow(match: re.Match[str], ctx: _Context) -> Resolved | None:
    return ctx.today + timedelta(days=2)


@_form("relative", r"明日|あした|\btomorrow\b", hint=("明日", "あした", "tomorrow"))
def _tomorrow(match: re.Match[str], ctx: _Context) -> Resolved | None:
    return ctx.today + timedelta(days=1)


@_form(
    "end_of_week",
    r"(?P<which>今週|来週|再来週)\s*(?:中|いっぱい|末)"
    r"|\bend\s+of\s+(?:the\s+)?(?P<en>this|next)?\s*week\b",
    "self",
    hint=("週", "week"),
)
def _week_end(match: re.Match[str], ctx: _Context) -> Resolved | None:
    weeks = _WHICH_WEEK[(match["which"] or match["en"] or "this").lower()]
    return _period_end(ctx, _week_start(ctx.today, weeks) + timedelta(days=4))


@_form(
    "weekday",
    rf"(?P<which>今週|来週|再来週)\s*の?\s*(?P<wd>[{_WEEKDAYS_JA}])\s*曜\s*日?",
    hint=("曜",),
)
def _ja_weekday_of_week(match: re.Match[str], ctx: _Context) -> Resolved | None:
    weeks = _WHICH_WEEK[match["which"].lower()]
    return _week_start(ctx.today, weeks) + timedelta(days=_weekday_index(match["wd"]))


# "next Friday" is the Friday of next week, like 来週金曜; "coming Friday" the nearest one.
@_form(
    "weekday",
    rf"\b(?P<which>this|next|coming)\s+(?P<wd>{_WEEKDAY_EN})\b\.?",
    "needs",
    hint=("this", "next", "coming"),
)
def _en_weekday_of_week(match: re.Match[str], ctx: _Context) -> Resolved | None:
    if match["which"].lower() == "coming":
        return _next_weekday(ctx.today + timedelta(days=1), _weekday_index(match["wd"]))
    return _ja_weekday_of_week(match, ctx)


@_form(
    "weekday",
    rf"(?<![\d月週])(?P<wd>[{_WEEKDAYS_JA}])\s*曜\s*日?|\b(?P<en_wd>{_WEEKDAY_EN})\b\.?",
    "needs",
    hint=("曜", *_WEEKDAYS_EN),
)
def _weekday(match: re.Match[str], ctx: _Context) -> Resolved | None:
    return _next_weekday(ctx.today, _weekday_index(match["wd"] or match["en_wd"]))


@_form("end_of_month", r"(?P<which>今月|来月|再来月)\s*(?:中|いっぱい)", "self", hint=("月",))
def _month_within(match: re.Match[str], ctx: _Context) -> Resolved | None:
    return _period_end(ctx, _month_end(ctx.today, _WHICH_MONTH[match["which"]]))


@_form(
    "end_of_month",
    r"(?P<which>今月|来月|再来月)\s*末|\bend\s+of\s+(?:the\s+)?(?P<en>this|next)?\s*month\b",
    hint=("末", "month"),
)
def _named_month_end(match: re.Match[str], ctx: _Context) -> Resolved | None:
    months = _WHICH_MONTH[(match["which"] or match["en"] or "this").lower()]
    return _period_end(ctx, _month_end(ctx.today, months))


# 毎月末 is a routine, not a deadline.
@_form("end_of_month", r"(?<![今来先毎月])月\s*末|\bmonth[- ]end\b", hint=("末", "month"))
def _month_end_bare(match: re.Match[str], ctx: _Context) -> Resolved | None:
    # Once this month's last business day has passed, 月末 means next month's.
    this_month = ctx.calendar.on_or_before(_month_end(ctx.today))
    if this_month >= ctx.today:
        return this_month
    return ctx.calendar.on_or_before(_month_end(ctx.today, 1))


@_form(
    "start_of_month",
    r"来月\s*(?:頭|初め|はじめ)|\bbeginning\s+of\s+next\s+month\b",
    hint=("来月", "beginning"),
)
def _next_month_start(match: re.Match[str], ctx: _Context) -> Resolved | None:
    return ctx.calendar.on_or_after(_month_end(ctx.today) + timedelta(days=1))


# 年末 alone is a season ("年末年始"); only 年末まで is a deadline.
@_form(
    "end_of_year",
    r"年内|今年\s*中|年末(?=\s*(?:まで|迄))|\bend\s+of\s+(?:the\s+|this\s+)?year\b|\byear[- ]end\b",
    hint=("年", "year"),
)
def _year_end(match: re.Match[str], ctx: _Context) -> Resolved | None:
    return _period_end(ctx, date(ctx.today.year, 12, 31))


@_form("end_of_fiscal_year", r"(?:今)?年度\s*(?:内|中|末)", hint=("年度",))
def _fiscal_year_end(match: re.Match[str], ctx: _Context) -> Resolved | None:
    # The Japanese fiscal year ends on March 31.
    year = ctx.today.year + (1 if ctx.today.month >= 4 else 0)
    return _period_end(ctx, date(year, 3, 31))


@_form(
    "date",
    r"(?<![月\d/])(?P<d>\d{1,2})\s*日(?=\s*(?:まで|迄|締|必着))",
    hint=("まで", "迄", "締", "必着"),
)
def _day_of_month(match: re.Match[str], ctx: _Context) -> Resolved | None:
    # "5日まで": this month's 5th, or next month's when that has passed.
    day = int(match["d"])
    this_month = _real_date(ctx.today.year, ctx.today.month, day)
    if this_month is not None and this_month >= ctx.today:
        return this_month
    following = _month_end(ctx.today) + timedelta(days=1)
    return _real_date(following.year, following.month, day)


@_form(
    "time", _CLOCK, "needs", hint=("時", ":", "am", "pm", "a.m", "p.m", "正午", "午前中", "noon")
)
def _time_today(match: re.Match[str], ctx: _Context) -> Resolved | None:
    # "17:00まで" alone means today, or the next business day once that hour has passed.
    clock = _clock(match)
    if clock is None:
        return None
    due = datetime.combine(ctx.today, clock, tzinfo=ctx.now.tzinfo)
    if due > ctx.now:
        return due
    return datetime.combine(ctx.calendar.next_business_day(ctx.today), clock, ctx.now.tzinfo)


# -- candidates and the choice -------------------------------------------------------------

# Every form's hint words: each is looked for once per text, not once per form.
_HINT_WORDS = frozenset(word for form in _FORMS for word in form.hint)


@dataclass(frozen=True)
class _Candidate:
    start: int  # of the phrase, attached deadline words included
    end: int
    deadline: Deadline
    score: int


def _phrase_bounds(text: str, start: int, end: int) -> tuple[int, int, bool]:
    """Widen a span to the deadline words attached to it; True when there are some."""
    window = max(0, start - 24)
    before = _PREFIX_WORD.search(text, window, start)
    after = _SUFFIX_WORD.match(text, end)
    if before is None and after is None:
        return start, end, _NOUN_THEN_DEADLINE.match(text, end) is not None
    return (before.start() if before else start), (after.end() if after else end), True


def _score(
    form: _Form, match: re.Match[str], text: str, end: int, attached: bool, timed: bool
) -> int:
    if _START_WORD.match(text, end):
        return 0
    if attached or form.attach == "self":
        return 2
    if _NOUN.match(text, end):
        return 0
    # A weekday or a time tells "12/3(木)" and "12/3 15:00" from the fraction "1/2".
    told = match.groupdict().get("paren") or timed or _PARTICLE.match(text, end)
    return 0 if form.attach == "needs" and not told else 1


def _due(resolved: Resolved, clock: time | None, ctx: _Context) -> tuple[datetime, bool]:
    if isinstance(resolved, datetime):
        return resolved, False
    if clock is not None:
        return datetime.combine(resolved, clock, tzinfo=ctx.now.tzinfo), False
    return datetime.combine(resolved, ctx.end_of_day, tzinfo=ctx.now.tzinfo), True


def _candidate(
    form: _Form, match: re.Match[str], text: str, ctx: _Context
) -> tuple[int, _Candidate | None]:
    """The candidate a match makes, and where its text ends (a time after it included)."""
    end = match.end()
    clock_match = None if form.kind in ("time", "hours") else _CLOCK_AFTER.match(text, end)
    clock = _clock(clock_match) if clock_match else None
    if clock_match is not None and clock is not None:
        end = clock_match.end()
    resolved = form.resolve(match, ctx)
    if resolved is None:
        return end, None
    due, end_of_day = _due(resolved, clock, ctx)
    start, phrase_end, attached = _phrase_bounds(text, match.start(), end)
    score = _score(form, match, text, end, attached, clock is not None)
    deadline = Deadline(due, text[start:phrase_end].strip().rstrip("."), form.kind, end_of_day)
    return end, _Candidate(start, phrase_end, deadline, score)


def _candidates(text: str, ctx: _Context) -> list[_Candidate]:
    claimed: list[tuple[int, int]] = []
    found: list[_Candidate] = []
    caseless = _caseless(text)
    hinted = {word for word in _HINT_WORDS if word in caseless}
    for form in _FORMS:
        if form.hint and hinted.isdisjoint(form.hint):
            continue  # the form cannot match here
        for match in form.pattern.finditer(text):
            if any(match.start() < stop and start < match.end() for start, stop in claimed):
                continue
            end, candidate = _candidate(form, match, text, ctx)
            claimed.append((match.start(), end))
            if candidate is not None:
                found.append(candidate)
    return sorted(found, key=lambda candidate: candidate.start)


def _choose(candidates: list[_Candidate], today: date) -> _Candidate | None:
    def is_past(candidate: _Candidate) -> bool:
        return candidate.deadline.due.date() < today

    usable = [c for c in candidates if c.score == 2 or (c.score == 1 and not is_past(c))]
    return min(usable, key=lambda c: (is_past(c), -c.score, c.start), default=None)


def _subject_and_text(subject: str, text: str) -> str:
    """The subject's line, then the text, in NFKC ("１２／３（木）" → "12/3(木)").

    NFKC never joins across a line break, so each half is normalised apart: the readers
    of one mail (refs, skills, deadline, format) share the results (``nfkc`` keeps them).
    """
    return nfkc(subject) + "\n" + nfkc(text)


def _local(moment: datetime, tz: ZoneInfo) -> datetime:
    # A naive Date is taken to be desk-local time rather than the server's.
    return moment.replace(tzinfo=tz) if moment.tzinfo is None else moment.astimezone(tz)


# -- public API: deadlines -----------------------------------------------------------------


def read_deadline(
    text: str,
    sent: datetime,
    tz: ZoneInfo,
    calendar: BusinessCalendar,
    *,
    subject: str = "",
    end_of_day: time = END_OF_DAY,
) -> Deadline | None:
    """The deadline a client wrote in a mail's new text (and subject), read from ``sent``."""
    ctx = _Context(_local(sent, tz), calendar, end_of_day)
    normalised = _subject_and_text(subject, text) if subject else nfkc(text)
    chosen = _choose(_candidates(normalised, ctx), ctx.today)
    return chosen.deadline if chosen else None


_ARGUMENT_LEFTOVER = re.compile(r"[\s、。,.!！?？]*")


def read_due_argument(
    text: str,
    now: datetime,
    tz: ZoneInfo,
    calendar: BusinessCalendar,
    *,
    end_of_day: time = END_OF_DAY,
) -> datetime | None:
    """The ``#due`` argument (``2026-12-03``, ``12/3 15:00``, ``来週金曜``, ``3営業日``…).

    The whole argument must be one deadline (deadline words such as まで or by allowed);
    anything left over ("12/3 or 12/4", a typo) gives None rather than a guess.
    """
    ctx = _Context(_local(now, tz), calendar, end_of_day)
    argument = nfkc(text).strip()
    candidates = _candidates(argument, ctx)
    if len(candidates) != 1:
        return None
    only = candidates[0]
    leftover = argument[: only.start] + argument[only.end :]
    return only.deadline.due if _ARGUMENT_LEFTOVER.fullmatch(leftover) else None


def default_due(
    sent: datetime,
    tz: ZoneInfo,
    calendar: BusinessCalendar,
    business_days: int,
    end_of_day: time = END_OF_DAY,
) -> datetime:
    """The deadline when the client gave none: N business days after the mail's day."""
    day = calendar.add_business_days(_local(sent, tz).date(), business_days)
    return datetime.combine(day, end_of_day, tzinfo=tz)


# -- public API: delivery format -----------------------------------------------------------

# Words that make a mention a request for that format: "Excelでお願いします",
# "PDF形式で", "as a PDF", "in Excel", "format: CSV".
_FORMAT_CUE_AFTER = re.compile(
    r"\s*(?:形式|ファイル|データ|\bformat\b|\bfile\b)"
    r"|\s*(?:にて|で)\s*(?:の)?\s*(?:ご|お)?(?:納品|提出|お願い|作成|送付|送って|送り|ください|下さい"
    r"|いただ|頂|まとめ|出力|保存|共有|下さ)",
    re.IGNORECASE,
)
_FORMAT_CUE_BEFORE = re.compile(
    r"(?:形式|\bformat|\bas(?:\s+an?)?|\bin(?:\s+an?)?|\binto|\bto)\s*[:は]?\s*$", re.IGNORECASE
)
_KATAKANA = "ァ-ヺー"


@lru_cache(maxsize=256)
def _keyword_pattern(keyword: str) -> re.Pattern[str]:
    """A keyword as a whole word: "Word" not in "Wordpress", "ワード" not in "パスワード"."""
    word = nfkc(keyword)
    before = r"(?<![A-Za-z0-9_.])" if word[0].isascii() else rf"(?<![{_KATAKANA}])"
    after = r"(?![A-Za-z0-9_])" if word[-1].isascii() else rf"(?![{_KATAKANA}])"
    body = r"\s*".join(re.escape(part) for part in word.split())
    return re.compile(before + body + after, re.IGNORECASE)


_FormatKeyword = tuple[str, str, re.Pattern[str], tuple[str, ...]]


@lru_cache(maxsize=16)
def _longest_first(
    formats: tuple[tuple[str, tuple[str, ...]], ...],
) -> tuple[tuple[_FormatKeyword, ...], tuple[str, ...]]:
    """(keyword, key, pattern, pieces) of each format keyword, longest first (see _pieces);
    and every piece once, for checking which ones a text has."""
    keywords = sorted(
        ((keyword, key) for key, words in formats for keyword in words),
        key=lambda pair: -len(pair[0]),
    )
    compiled = tuple(
        (keyword, key, _keyword_pattern(keyword), _pieces(keyword)) for keyword, key in keywords
    )
    return compiled, tuple(dict.fromkeys(piece for *_, pieces in compiled for piece in pieces))


def _pieces(keyword: str) -> tuple[str, ...]:
    """What every match of the keyword's pattern contains, in ``_caseless`` form.

    Empty (always search) when the keyword has letters other than ASCII that have case:
    their case-insensitive twins are not all folded by ``_caseless``.
    """
    word = nfkc(keyword)
    if not all(ch.isascii() or ch.lower() == ch.upper() for ch in word):
        return ()
    return tuple(word.lower().split())


def _is_common_word(keyword: str, found: str) -> bool:
    # "Word" and "Excel" are also English words: in lower case, only a format cue counts.
    return keyword.istitle() and keyword.isascii() and found != keyword and not found.isupper()


def _format_mentions(
    text: str, formats: Mapping[str, tuple[str, ...]]
) -> list[tuple[int, int, str]]:
    """(score, position, key) of each mention; longer keywords claim their text first."""
    claimed: list[tuple[int, int]] = []
    mentions: list[tuple[int, int, str]] = []
    keywords, pieces = _longest_first(tuple((key, tuple(words)) for key, words in formats.items()))
    caseless = _caseless(text)
    present = {piece for piece in pieces if piece in caseless}
    for keyword, key, pattern, needed in keywords:
        if not present.issuperset(needed):
            continue  # a piece of the keyword is missing: it cannot match
        for match in pattern.finditer(text):
            if any(match.start() < stop and start < match.end() for start, stop in claimed):
                continue
            claimed.append(match.span())
            cue = _FORMAT_CUE_AFTER.match(text, match.end()) or _FORMAT_CUE_BEFORE.search(
                text, max(0, match.start() - 12), match.start()
            )
            if cue is None and _is_common_word(keyword, match.group()):
                continue
            mentions.append((2 if cue else 1, match.start(), key))
    return mentions


def read_format(
    text: str, formats: Mapping[str, tuple[str, ...]], *, subject: str | None = None
) -> str | None:
    """The delivery format asked for (a key of rules.yaml ``formats``), or None.

    A mention next to a format word (形式, で納品, でお願い, format, as a) beats a bare one;
    among equals the first in the text wins. A ``subject`` is read as the text's first line.
    """
    normalised = nfkc(text) if subject is None else _subject_and_text(subject, text)
    mentions = _format_mentions(normalised, formats)
    if not mentions:
        return None
    return min(mentions, key=lambda mention: (-mention[0], mention[1]))[2]


# -- public API: hours ---------------------------------------------------------------------

_HOURS = re.compile(
    r"(?:(?P<h>\d+(?:\.\d+)?)\s*(?:h|hrs?|hours?|時間)"
    r"\s*(?:(?P<half>半)|(?P<hm>\d{1,2})\s*(?:m|mins?|minutes?|分)?)?"
    r"|(?P<m>\d+(?:\.\d+)?)\s*(?:m|mins?|minutes?|分)"
    r"|(?P<bare>\d+(?:\.\d+)?))"
    r"(?=$|[\s,、。()])",
    re.IGNORECASE,
)


def read_hours(text: str) -> float | None:
    """Hours in a command argument: 2h, 1.5h, 90m, 90min, 2時間, 1時間30分, 1時間半, 30分.

    A bare number counts as hours ("#done 2"); only the start of the argument is read, so
    "1.5h 修正込み" is 1.5.
    """
    match = _HOURS.match(nfkc(text).strip())
    if match is None:
        return None
    if match["h"]:
        minutes = 30 if match["half"] else int(match["hm"] or 0)
        return float(match["h"]) + minutes / 60
    if match["m"]:
        return float(match["m"]) / 60
    return float(match["bare"])
