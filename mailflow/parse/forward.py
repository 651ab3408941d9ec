"""The original of a forwarded mail written inline in the body.

Gmail, Outlook, Apple Mail, Thunderbird, Lotus Notes and Japanese clients each introduce a
forwarded mail with a marker line and a small header block (From/差出人, Date/Sent/送信日時,
Subject/件名). A director forwarding a client's mail relies on the sender read from here.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from mailflow.model import ForwardedMail
from mailflow.parse.headers import parse_addresses, parse_date
from mailflow.parse.quotes import normalise

_JST = timezone(timedelta(hours=9), "JST")
_STRONG = re.compile(
    r"^\s*(-{2,}|={2,})?\s*(forwarded message|転送されたメッセージ|転送メッセージ|転送\s*メール|"
    r"forwarded by .*)\s*(-{2,}|={2,})?\s*$|"
    r"^\s*(begin forwarded message|以下、?転送(します|メッセージ))\s*[:：]?\s*$",
    re.IGNORECASE,
)
_WEAK = re.compile(
    r"^\s*(-{2,}|_{5,})\s*(original message|元のメッセージ|オリジナル\s*メッセージ)?\s*-*\s*$",
    re.IGNORECASE,
)
_FORWARD_SUBJECT = re.compile(r"^\s*((re|aw)\s*[:：]\s*)*(fwd?|fw|wg|tr|転送)\s*[:：]", re.I)
_FIELD = re.compile(r"^\s*\*?([\w\u3000-\u9fff-]{1,16})\*?\s*[:：]\s?(.*)$")
_KEYS = {
    "from": "from", "差出人": "from", "送信者": "from", "送信元": "from", "von": "from",
    "de": "from", "date": "date", "sent": "date", "送信日時": "date", "日付": "date",
    "日時": "date", "送信日": "date", "datum": "date", "gesendet": "date",
    "subject": "subject", "件名": "subject", "betreff": "subject", "objet": "subject",
    "to": "to", "宛先": "to", "cc": "cc", "an": "to", "reply-to": "reply-to",
}  # fmt: skip
_MAILTO = re.compile(r"\[mailto:([^\]]+)\]", re.IGNORECASE)
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")


def is_forward_subject(subject: str) -> bool:
    return bool(_FORWARD_SUBJECT.match(subject))


def find_inline_forward(text: str, subject: str) -> ForwardedMail | None:
    """The forwarded original inside ``text``, or None when there is none."""
    lines = normalise(text).split("\n")
    start = _marker_index(lines, weak=is_forward_subject(subject))
    if start is None:
        return None
    fields, body_at = _read_fields(lines, start)
    if "from" not in fields and "subject" not in fields:
        return None
    senders = parse_addresses(_MAILTO.sub(r"<\1>", fields.get("from", "")))
    return ForwardedMail(
        sender=senders[0] if senders else None,
        date=parse_loose_date(fields.get("date", "")),
        subject=fields.get("subject", "").strip(),
        text=_unquote("\n".join(lines[body_at:])),
    )


def _marker_index(lines: list[str], *, weak: bool) -> int | None:
    """Index of the first header line after a forward marker (or of a bare From: block)."""
    for i, line in enumerate(lines):
        if _STRONG.match(line) or (weak and _WEAK.match(line)):
            return i + 1
        if weak and _FIELD.match(line) and _key(line) == "from" and _has_fields_after(lines, i):
            return i
    return None


def _key(line: str) -> str:
    match = _FIELD.match(line.lstrip("> "))
    return _KEYS.get(match.group(1).lower(), "") if match else ""


def _has_fields_after(lines: list[str], i: int) -> bool:
    return any(_key(line) in ("date", "subject") for line in lines[i + 1 : i + 6])


def _read_fields(lines: list[str], start: int) -> tuple[dict[str, str], int]:
    """Header lines after the marker; returns them and where the forwarded body starts."""
    fields: dict[str, str] = {}
    i = start
    while i < len(lines) and not lines[i].strip(" >"):
        i += 1  # blank lines between the marker and the header block
    last = ""
    while i < len(lines) and lines[i].strip(" >"):
        line = lines[i].lstrip("> ")
        key = _key(line)
        if key:
            match = _FIELD.match(line)
            value = match.group(2) if match else ""
            fields.setdefault(key, value.strip())
            last = key
        elif last in ("to", "cc"):
            fields[last] = f"{fields[last]} {line.strip()}"  # a wrapped address list
        else:
            break
        i += 1
    return fields, i


def _unquote(body: str) -> str:
    """Drop one ``>`` level when the whole forwarded body was quoted (Apple Mail, plain text)."""
    lines = body.strip("\n").split("\n")
    if lines and all(not line or line.startswith(">") for line in lines):
        lines = [line[1:].removeprefix(" ") for line in lines]
    return "\n".join(lines).strip("\n")


def parse_loose_date(value: str) -> datetime | None:
    """Dates as clients print them in forward blocks; no zone given means Japan time."""
    value = value.strip()
    if not value:
        return None
    when = parse_date(value) if re.search(r"[+-]\d{4}|GMT|UT", value) else None
    return when or _numeric_date(value) or _english_date(value)


def _numeric_date(value: str) -> datetime | None:
    match = re.search(r"(\d{4})\s*[年/.-]\s*(\d{1,2})\s*[月/.-]\s*(\d{1,2})", value)
    if not match:
        return None
    year, month, day = (int(g) for g in match.groups())
    return _build(year, month, day, value[match.end() :])


def _english_date(value: str) -> datetime | None:
    lowered = value.lower()
    month_match = re.search(r"\b(" + "|".join(_MONTHS) + r")[a-z]*\.?\b", lowered)
    year_match = re.search(r"\b(\d{4})\b", lowered)
    day_match = re.search(r"\b(\d{1,2})(st|nd|rd|th)?\b(?!:)", lowered)
    if not (month_match and year_match and day_match):
        return None
    month = _MONTHS.index(month_match.group(1)) + 1
    return _build(int(year_match.group(1)), month, int(day_match.group(1)), lowered)


def _build(year: int, month: int, day: int, rest: str) -> datetime | None:
    hour = minute = 0
    time_match = re.search(r"(\d{1,2})\s*[:時]\s*(\d{2})?", rest)
    if time_match:
        hour, minute = int(time_match.group(1)), int(time_match.group(2) or 0)
        if re.search(r"\bpm\b|午後", rest.lower()) and hour < 12:
            hour += 12
        elif re.search(r"\bam\b|午前", rest.lower()) and hour == 12:
            hour = 0
    try:
        return datetime(year, month, day, hour, minute, tzinfo=_JST)
    except ValueError:
        return None
