"""Walk a compat32 message tree: body text, HTML, attachments and attached messages.

The walk is iterative with a depth limit, because hostile mail nests parts thousands deep.
Parts are decoded from ``get_payload(decode=True)`` bytes through our charset layer, never
through ``get_content()`` (see FIELD-NOTES: the stock codecs lose Windows characters).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email.message import Message

from mailflow.model import Address, Attachment, ForwardedMail
from mailflow.parse.attachments import default_name, part_filename, safe_name
from mailflow.parse.bounce import ReportParts, returned_id, status_blocks
from mailflow.parse.charsets import decode_bytes, is_known_charset
from mailflow.parse.content_type import content_charset, content_type_of
from mailflow.parse.headers import decode_header, parse_addresses, parse_date
from mailflow.parse.html import html_to_text
from mailflow.parse.lift import lifted_payload

MAX_DEPTH = 40
_REPORT_PARTS = frozenset(
    {
        "message/delivery-status",
        "message/global-delivery-status",
        "message/disposition-notification",
        "message/feedback-report",
        "text/rfc822-headers",
        "message/global-headers",
    }
)
_MESSAGE_TYPES = frozenset({"message/rfc822", "message/global"})
_STATUS_TYPES = frozenset({"message/delivery-status", "message/global-delivery-status"})
_HEADER_TYPES = frozenset({"text/rfc822-headers", "message/global-headers"})
_LEAF_TYPES = _MESSAGE_TYPES | _STATUS_TYPES
_FILE_TYPES = frozenset({"image", "application", "audio", "video", "model", "font"})


@dataclass
class Collected:
    """Everything the walk found, in message order."""

    plain: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    defects: list[str] = field(default_factory=list)
    report: ReportParts = field(default_factory=ReportParts)

    def body_text(self) -> str:
        if self.plain:
            return "\n".join(self.plain)
        return "\n".join(html_to_text(source) for source in self.html)


def first_header(msg: Message, name: str) -> str | None:
    """The raw (surrogate-escaped) value of a header; compat32 ``get`` may return objects."""
    wanted = name.lower()
    return next((value for key, value in msg.raw_items() if key.lower() == wanted), None)


def collect(msg: Message, depth: int = 0) -> Collected:
    found = Collected()
    _note_defects(msg, found)
    stack: list[tuple[Message, int]] = [(msg, depth)]
    while stack:
        part, level = stack.pop()
        if level > MAX_DEPTH:
            found.defects.append(f"MIME parts nested deeper than {MAX_DEPTH} levels were skipped")
            continue
        ctype = content_type_of(part)
        children = _children(part, ctype)
        if children is not None:
            for child in reversed(children):
                _note_defects(child, found)
                stack.append((child, level + 1))
            continue
        _leaf(part, ctype, found)
    return found


def _children(part: Message, ctype: str) -> list[Message] | None:
    """Sub-parts of a multipart; None for leaves (message/rfc822 is a leaf for us)."""
    if ctype in _LEAF_TYPES or not part.is_multipart():
        return None
    payload = part.get_payload()
    return [p for p in payload if isinstance(p, Message)] if isinstance(payload, list) else None


def _note_defects(part: Message, found: Collected) -> None:
    for defect in part.defects:
        doc = (type(defect).__doc__ or type(defect).__name__).strip().splitlines()[0]
        found.defects.append(f"{part.get_content_type()}: {doc}")


def _leaf(part: Message, ctype: str, found: Collected) -> None:
    if ctype in _MESSAGE_TYPES:
        _attached_message(part, found)
        return
    disposition = _disposition(part)
    filename = part_filename(part)
    if ctype in ("text/plain", "text/html") and disposition != "attachment" and not filename:
        text = _text(part, found)
        (found.plain if ctype == "text/plain" else found.html).append(text)
        return
    if ctype.startswith("multipart/"):  # a multipart without a usable boundary
        found.plain.append(_text(part, found))
        return
    if ctype in _REPORT_PARTS and not filename:
        _report_part(part, ctype, found)
        return
    found.attachments.append(_attachment(part, ctype, filename, disposition))


def _report_part(part: Message, ctype: str, found: Collected) -> None:
    """Keep what a delivery report says for the bounce reader; it is not a file."""
    if ctype in _STATUS_TYPES:
        payload = b"" if part.is_multipart() else _payload(part)
        found.report.status_fields += status_blocks(part, payload)
    elif ctype in _HEADER_TYPES:
        found.report.returned_ids.append(returned_id(decode_bytes(_payload(part), "utf-8")))


def _disposition(part: Message) -> str:
    try:
        return (part.get_content_disposition() or "").lower()
    except (ValueError, TypeError, IndexError):
        return ""


def _payload(part: Message) -> bytes:
    lifted = lifted_payload(part)
    if lifted is not None:
        return lifted
    try:
        data = part.get_payload(decode=True)
    except (ValueError, TypeError, LookupError, IndexError):
        return b""
    return data if isinstance(data, bytes) else b""


def _text(part: Message, found: Collected) -> str:
    charset = content_charset(part)
    if charset and not is_known_charset(charset):
        found.defects.append(f"unknown charset {charset!r}: decoded by guessing")
    text = decode_bytes(_payload(part), charset)
    if _may_have_param(part, "format") and part.get_param("format", "", "content-type") == "flowed":
        text = _unflow(text, delsp=str(part.get_param("delsp", "")).lower() == "yes")
    return text


def _may_have_param(part: Message, param: str) -> bool:
    """False when Content-Type surely has no ``param``: its name is nowhere in the header.

    Reading parameters parses the whole header each time; most parts need not.
    """
    raw = first_header(part, "content-type")
    if raw is None:
        return False
    return not raw.isascii() or param in raw.lower()


def _unflow(text: str, *, delsp: bool) -> str:
    """RFC 3676: a line ending in a space continues on the next one."""
    out: list[str] = []
    joined = ""
    for line in text.replace("\r\n", "\n").split("\n"):
        soft = line.endswith(" ") and line != "-- "
        piece = line[:-1] if soft and delsp else line
        joined += piece
        if not soft:
            out.append(joined)
            joined = ""
    if joined:
        out.append(joined)
    return "\n".join(out)


def _attachment(part: Message, ctype: str, filename: str, disposition: str) -> Attachment:
    content_id = (first_header(part, "content-id") or "").strip().strip("<>").strip()
    name = filename or default_name(ctype)
    return Attachment(
        filename=name,
        safe_name=safe_name(name),
        content_type=ctype,
        payload=_payload(part),
        inline=disposition != "attachment" and bool(content_id),
        content_id=content_id,
    )


def _attached_message(part: Message, found: Collected) -> None:
    payload = part.get_payload()
    inner = payload[0] if isinstance(payload, list) and payload else None
    if not isinstance(inner, Message):
        found.attachments.append(_attachment(part, "message/rfc822", "", ""))
        return
    found.messages.append(inner)
    subject = decode_header(first_header(inner, "subject") or "")
    name = part_filename(part) or f"{subject or 'message'}.eml"
    found.attachments.append(
        Attachment(
            filename=name,
            safe_name=safe_name(re.sub(r"\s+", " ", name)),
            content_type="message/rfc822",
            payload=_message_bytes(inner, found),
            inline=False,
        )
    )


def _message_bytes(inner: Message, found: Collected) -> bytes:
    try:
        return inner.as_bytes()
    except (
        ValueError,
        TypeError,
        LookupError,
        UnicodeError,
        IndexError,
        AttributeError,
        RecursionError,
    ) as exc:
        # The generator cannot always re-serialise what the lenient parser accepted.
        found.defects.append(f"attached message could not be re-serialised: {exc}")
        return b""


def forwarded_from_message(inner: Message, depth: int) -> ForwardedMail:
    """The original of an attached message/rfc822: sender, date, subject and text."""
    senders: tuple[Address, ...] = parse_addresses(first_header(inner, "from") or "")
    body = collect(inner, depth + 1)
    return ForwardedMail(
        sender=senders[0] if senders else None,
        date=parse_date(first_header(inner, "date")),
        subject=decode_header(first_header(inner, "subject") or ""),
        text=_normalise(body.body_text()),
    )


def _normalise(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return "\n".join(line.rstrip() for line in text.split("\n")).strip("\n")
