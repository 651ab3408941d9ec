"""Raw message bytes → :class:`~mailflow.model.ParsedMail` (pipeline step 3, pure).

``parse_mail`` is the one entry point. It parses with the lenient compat32 policy (fast,
and it keeps the raw bytes of bad headers) and decodes every header and part itself.
"""

from __future__ import annotations

from email.message import Message
from email.parser import Parser
from email.policy import compat32

from mailflow.errors import ProcessingError
from mailflow.model import Address, BounceReport, ForwardedMail, ParsedMail
from mailflow.parse import bounce as bounces
from mailflow.parse.attachments import safe_name
from mailflow.parse.body import Collected, collect, first_header, forwarded_from_message
from mailflow.parse.charsets import decode_bytes
from mailflow.parse.content_type import content_type_of
from mailflow.parse.flat import read_flat
from mailflow.parse.forward import find_inline_forward
from mailflow.parse.headers import (
    decode_header,
    message_ids,
    parse_addresses,
    parse_date,
    unfold,
)
from mailflow.parse.html import html_to_text
from mailflow.parse.lift import lift as lift_runs
from mailflow.parse.lift import settle
from mailflow.parse.quotes import split_quoted

__all__ = [
    "decode_bytes",
    "decode_header",
    "html_to_text",
    "parse_addresses",
    "parse_mail",
    "safe_name",
    "split_quoted",
]

_PARSER = Parser(policy=compat32)


def parse_mail(raw: bytes) -> ParsedMail:
    """Parse one message; raises ProcessingError only when there is nothing to parse."""
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise ProcessingError(f"message is {type(raw).__name__}, not bytes")
    data = bytes(raw)
    if not data or data.isspace():  # data.strip() would copy a 25 MB message
        raise ProcessingError("message is empty")
    msg = _parse_tree(data)
    try:
        return _build(msg, data)
    except RecursionError as exc:
        raise ProcessingError("message structure is nested too deeply to read") from exc


def _parse_tree(data: bytes) -> Message:
    lifted, runs = lift_runs(data)
    # As BytesParser reads bytes: each 8-bit byte becomes a surrogate escape.
    text = lifted.decode("ascii", "surrogateescape")
    try:
        msg = read_flat(text)
        if msg is None:
            msg = _PARSER.parsestr(text)
        settle(msg, runs)
        return msg
    except RecursionError as exc:
        raise ProcessingError("MIME parts are nested too deeply to parse") from exc
    except (ValueError, TypeError, IndexError, LookupError) as exc:
        # The feed parser is lenient; anything it still rejects is not a message.
        raise ProcessingError(f"not a parseable message: {exc}") from exc


def _build(msg: Message, data: bytes) -> ParsedMail:
    raw_headers = list(msg.raw_items())
    # Header names lower-cased once: every lookup below reads these.
    named = [(key.lower(), value) for key, value in raw_headers]
    first: dict[str, str] = {}
    for key, value in named:
        first.setdefault(key, value)
    content_type = content_type_of(msg)
    headers = tuple((key, decode_header(value)) for key, value in named)
    subject = next((value for key, value in headers if key == "subject"), "")
    found = collect(msg)
    body = found.body_text()
    text, quoted = split_quoted(body)
    senders = _addresses(named, "from")
    date = parse_date(first.get("date"))
    defects = list(found.defects)
    if first.get("date") and date is None:
        defects.append(f"unreadable Date header: {unfold(first['date'])[:80]!r}")
    if not raw_headers:
        defects.append("message has no headers")
    return ParsedMail(
        message_id=next(iter(message_ids(first.get("message-id"))), ""),
        subject=subject,
        sender=senders[0] if senders else None,
        to=_addresses(named, "to"),
        cc=_addresses(named, "cc"),
        reply_to=_addresses(named, "reply-to"),
        date=date,
        in_reply_to=next(iter(message_ids(first.get("in-reply-to"))), ""),
        references=message_ids(first.get("references")),
        text=text,
        quoted=quoted,
        html=found.html[0] if found.html else "",
        attachments=tuple(found.attachments),
        forwarded=_forwarded(found.messages, body, subject),
        headers=headers,
        defects=tuple(dict.fromkeys(defects)),
        size=len(data),
        content_type=content_type,
        bounce=_bounce(content_type, found, body, senders, first.get("from", "")),
    )


def _bounce(
    content_type: str, found: Collected, body: str, senders: tuple[Address, ...], raw_from: str
) -> BounceReport | None:
    """The delivery report of a bounce: RFC 3464 fields first, then the plain text."""
    for inner in found.messages:
        found.report.returned_ids.append(bounces.ids_in(first_header(inner, "message-id")))
    report = bounces.from_report(found.report, body) if found.report.status_fields else None
    if report is not None:
        return report
    sender = senders[0].email if senders else ""
    if (
        content_type == "multipart/report"
        or bounces.sent_by_daemon(sender, raw_from)
        or bounces.opens_like_bounce(body)
    ):
        return bounces.from_text(body, found.report)
    return None


def _addresses(named_headers: list[tuple[str, str]], name: str) -> tuple[Address, ...]:
    """Every address in the headers called ``name`` (header names lower-cased)."""
    found: list[Address] = []
    for key, value in named_headers:
        if key == name:
            found.extend(parse_addresses(value))
    return tuple(found)


def _forwarded(messages: list[Message], body: str, subject: str) -> ForwardedMail | None:
    """An attached original wins over one pasted inline."""
    if messages:
        return forwarded_from_message(messages[0], depth=1)
    return find_inline_forward(body, subject)
