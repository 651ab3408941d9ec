"""Rendered parts + threading headers → the bytes of one outgoing email.

The message is written directly as 7-bit MIME with CRLF line ends: text parts in UTF-8
base64, display names and subjects as RFC 2047 encoded words, file names as RFC 2231
parameters (and, for Outlook, an encoded-word ``name``), internationalised domains in IDNA
(``xn--…``). Nothing here needs the relay to support 8BITMIME or SMTPUTF8 — except a mail to
or from an address whose local part is not ASCII: no 7-bit form of it exists, so that mail's
headers are UTF-8 (RFC 6532) and outbox.py sends it with SMTPUTF8.
(``email.message.EmailMessage`` with ``policy.SMTP`` does the same, but its header objects
cost ~6 ms a mail — more than everything else the desk does for one; bench/ingest.py
measures it.)

Header values never carry CR or LF: every value is collapsed to one line first (an address
or a msg-id loses all its whitespace), so text that came from a client (a subject, a file
name) cannot add headers of its own.
"""

from __future__ import annotations

import binascii
import functools
import re
import struct
import unicodedata
from collections.abc import Iterable
from datetime import datetime
from email.utils import format_datetime
from urllib.parse import quote

from mailflow.model import Address, Attachment
from mailflow.parse.attachments import safe_name
from mailflow.randomness import token_hex
from mailflow.render import Rendered, one_line

__all__ = ["LOOP_HEADER", "compose", "idna_address"]

LOOP_HEADER = "X-Mailflow-Loop"

# Types that are not carried as a plain base64 leaf.
_OPAQUE_MAINTYPES = frozenset({"multipart", "message"})
_MIME_TYPE_RE = re.compile(r"([a-z0-9][a-z0-9!#$&^_.+-]*)/([a-z0-9][a-z0-9!#$&^_.+-]*)")
# Display names made only of these need no quoting (RFC 5322 atext and spaces).
_ATOM_RE = re.compile(r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~ ]*")
# UTF-8 bytes per encoded word: 39 bytes are 52 base64 characters, 64 with the markers, so
# even the first line ("Subject: " + word) stays under 78.
_WORD_BYTES = 39
# A msg-id cannot be folded: a longer one (only hostile mail has one) is left out of
# In-Reply-To and References rather than break the 998-octet line limit. So is one that is
# not ASCII: it would turn the whole head into UTF-8 for a header no reader needs.
_MAX_ID = 900
# Characters per line of a base64 body (RFC 2045's limit).
_BASE64_LINE = 76
# Dots other than "." that IDNA reads as label separators (RFC 3490 §3.1): what a Japanese
# input method types for "." when it is left in full-width mode.
_IDEOGRAPHIC_DOTS = str.maketrans("\u3002\uff0e\uff61", "...")
# An A-label: "xn--" and Punycode, letters, digits and hyphens only, 63 characters at most.
_A_LABEL_RE = re.compile(r"xn--[a-z0-9-]{1,59}")


def compose(
    rendered: Rendered,
    *,
    sender: Address,
    to: tuple[Address, ...],
    cc: tuple[Address, ...],
    reply_to: str,
    message_id: str,
    date: datetime,
    in_reply_to: str | None,
    references: tuple[str, ...],
    automatic: bool,
    attachments: tuple[Attachment, ...] = (),
) -> bytes:
    """The RFC 5322 bytes (CRLF) of one outgoing email.

    ``date`` must be timezone-aware. ``automatic`` marks the mail as machine-written
    (``Auto-Submitted``) so auto-responders leave it alone.
    """
    if date.tzinfo is None:
        raise ValueError("compose() needs a timezone-aware date")
    headers = [
        ("From", _address_list([sender])),
        ("To", _address_list(to)),
        ("Cc", _address_list(cc)),
        ("Reply-To", "".join(reply_to.split())),
        ("Subject", _unstructured(rendered.subject)),
        ("Date", _date(date)),
        ("Message-ID", "".join(message_id.split())),
        *_threading(in_reply_to, references),
        *_automation(sender, automatic),
        ("MIME-Version", "1.0"),
    ]
    head = "".join(f"{name}: {value}\r\n" for name, value in headers if value)
    try:
        encoded = head.encode("ascii")
    except UnicodeEncodeError:
        # Only an address without a 7-bit form (a local part like "jøran") gets here: every
        # other value is ASCII or an encoded word. RFC 6532 lets such a head be UTF-8.
        encoded = head.encode("utf-8")
    return encoded + _body(rendered, attachments)


# -- headers ------------------------------------------------------------------------------


_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _date(date: datetime) -> str:
    """``email.utils.format_datetime(date)`` (``Fri, 27 Nov 2026 09:00:05 +0900``) without
    its round trip through strftime, which made it an eighth of the cost of composing."""
    offset = date.utcoffset()
    if offset is None or offset.seconds % 60 or offset.microseconds:
        return format_datetime(date)  # no offset, or one in seconds: only history has those
    minutes = offset.days * 24 * 60 + offset.seconds // 60
    sign = "-" if minutes < 0 else "+"
    hours, minutes = divmod(abs(minutes), 60)
    # One %-format is a third cheaper than an f-string formatting each field on its own.
    return "%s, %02d %s %04d %02d:%02d:%02d %s%02d%02d" % (  # noqa: UP031
        _WEEKDAYS[date.weekday()],
        date.day,
        _MONTHS[date.month - 1],
        date.year,
        date.hour,
        date.minute,
        date.second,
        sign,
        hours,
        minutes,
    )


def _encoded_words(text: str) -> str:
    """RFC 2047 base64 words, each under 76 characters, folded one per line."""
    data = text.encode("utf-8")
    words = []
    start = 0
    while True:
        end = start + _WORD_BYTES
        if end >= len(data):
            words.append(data[start:])
            break
        # A word must not split a character: end before the lead byte of the one that does
        # not fit whole (UTF-8 continuation bytes are 10xxxxxx).
        while data[end] & 0xC0 == 0x80:
            end -= 1
        words.append(data[start:end])
        start = end
    return "\r\n ".join(f"=?utf-8?b?{_b64(word)}?=" for word in words)


def _b64(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).decode("ascii")


def _unstructured(value: str) -> str:
    text = one_line(value)
    if text.isascii() and "=?" not in text and len(text) <= 900:
        return _fold_words(text)
    return _encoded_words(text)


def _fold_words(text: str, width: int = 76) -> str:
    """Fold plain ASCII at spaces so lines stay near 78 characters."""
    lines, line = [], ""
    for word in text.split(" "):
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    lines.append(line)
    return "\r\n ".join(lines)


def _address_list(addresses: Iterable[Address]) -> str:
    return ",\r\n ".join(_address(a) for a in addresses)


# The desk's own address heads every mail, and staff get most of them: worth remembering.
@functools.lru_cache(maxsize=256)
def _address(address: Address) -> str:
    spec = "".join(address.email.split())
    if not spec.isascii():
        spec = idna_address(spec)
    name = one_line(address.name)
    if not name:
        return spec
    if not name.isascii() or "=?" in name:
        return f"{_encoded_words(name)}\r\n <{spec}>"
    if _ATOM_RE.fullmatch(name):
        return f"{name} <{spec}>"
    escaped = name.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}" <{spec}>'


def idna_address(address: str) -> str:
    """``address`` with its domain in IDNA A-labels (``jb@xn--julin-0qa.example.com``).

    An ASCII address, and one whose domain has no A-label form, are returned unchanged:
    the local part is never touched (it has no ASCII form)."""
    if address.isascii():
        return address
    local, at, domain = address.rpartition("@")
    a_labels = _a_labels(domain)
    return f"{local}@{a_labels}" if at and a_labels else address


def _a_labels(domain: str) -> str | None:
    """The domain in A-labels, or None when a label has none (it then stays UTF-8)."""
    labels = domain.translate(_IDEOGRAPHIC_DOTS).split(".")
    for index, label in enumerate(labels):
        if label.isascii():
            continue
        # IDNA2008 (RFC 5891): the label's NFC form in Punycode. Python's "idna" codec is
        # IDNA2003, which turns "straße.de" into "strasse.de" — somebody else's domain.
        normal = unicodedata.normalize("NFC", label.lower())
        labels[index] = "xn--" + normal.encode("punycode").decode("ascii")
        if not _A_LABEL_RE.fullmatch(labels[index]):
            return None
    return ".".join(labels)


def _threading(in_reply_to: str | None, references: tuple[str, ...]) -> list[tuple[str, str]]:
    headers = []
    replying_to = "".join((in_reply_to or "").split())
    if replying_to and len(replying_to) <= _MAX_ID and replying_to.isascii():
        headers.append(("In-Reply-To", replying_to))
    ids = ["".join(mid.split()) for mid in references if mid.strip()]
    ids = [mid for mid in ids if len(mid) <= _MAX_ID and mid.isascii()]
    if ids:
        headers.append(("References", "\r\n ".join(ids)))
    return headers


def _automation(sender: Address, automatic: bool) -> list[tuple[str, str]]:
    headers = []
    if automatic:
        # RFC 3834, and the header Exchange/Outlook honour to suppress out-of-office replies.
        headers += [("Auto-Submitted", "auto-generated"), ("X-Auto-Response-Suppress", "All")]
    domain = sender.email.rpartition("@")[2].strip().lower()
    if domain:
        # Lets classify.py recognise our own mail when a forward or a loop brings it back.
        headers.append((LOOP_HEADER, "".join(domain.split())))
    return headers


# -- body ---------------------------------------------------------------------------------


def _base64_lines(data: bytes) -> bytes:
    """Base64 in lines of 76 characters, each ending in CRLF: ``base64.encodebytes`` with
    CRLF, but one call of the C encoder rather than one per line."""
    encoded = binascii.b2a_base64(data, newline=False)
    if not encoded:
        return b""
    whole = len(encoded) // _BASE64_LINE
    if whole <= _CUT_AT_ONCE:
        lines = list(_line_cutter(whole).unpack_from(encoded))
        if len(encoded) % _BASE64_LINE:
            lines.append(encoded[whole * _BASE64_LINE :])
    else:
        lines = [encoded[i : i + _BASE64_LINE] for i in range(0, len(encoded), _BASE64_LINE)]
    return b"\r\n".join(lines) + b"\r\n"


# A letter's parts are cut into lines by one struct unpack (40 % cheaper than a slice per
# line); an attachment longer than this many lines is sliced, so the cutters stay few.
_CUT_AT_ONCE = 256


@functools.cache
def _line_cutter(lines: int) -> struct.Struct:
    """Unpacks the first ``lines`` whole base64 lines of a body, one bytes object each."""
    return struct.Struct(f"{_BASE64_LINE}s" * lines)


def _text_part(text: str, subtype: str) -> bytes:
    return (
        f'Content-Type: text/{subtype}; charset="utf-8"\r\n'
        "Content-Transfer-Encoding: base64\r\n\r\n"
    ).encode("ascii") + _base64_lines(text.encode("utf-8"))


def _multipart(subtype: str, parts: list[bytes]) -> bytes:
    # 32 random hex digits, as uuid4().hex gave, at a quarter of the cost.
    boundary = f"=_mf_{token_hex(16)}"
    out = [f'Content-Type: multipart/{subtype}; boundary="{boundary}"\r\n\r\n'.encode("ascii")]
    for part in parts:
        out.append(f"--{boundary}\r\n".encode("ascii") + part + b"\r\n")
    out.append(f"--{boundary}--\r\n".encode("ascii"))
    return b"".join(out)


def _body(rendered: Rendered, attachments: tuple[Attachment, ...]) -> bytes:
    text = _text_part(rendered.text, "plain")
    if rendered.html is not None:
        text = _multipart("alternative", [text, _text_part(rendered.html, "html")])
    if not attachments:
        return text
    return _multipart("mixed", [text, *(_attachment(a) for a in attachments)])


def _attachment(attachment: Attachment) -> bytes:
    maintype, subtype = _content_type(attachment.content_type)
    filename = _filename(attachment)
    disposition = "inline" if attachment.inline else "attachment"
    if filename.isascii() and '"' not in filename and "\\" not in filename:
        name_param, filename_param = f'name="{filename}"', f'filename="{filename}"'
    else:
        # RFC 2231 for every modern client; the quoted encoded word is what Outlook reads.
        name_param = f'name="{_encoded_words(filename).replace(chr(13) + chr(10) + " ", " ")}"'
        filename_param = f"filename*=utf-8''{quote(filename, safe='')}"
    lines = [
        f"Content-Type: {maintype}/{subtype};\r\n {name_param}",
        f"Content-Disposition: {disposition};\r\n {filename_param}",
        "Content-Transfer-Encoding: base64",
    ]
    content_id = _content_id(attachment.content_id)
    if content_id:
        lines.append(f"Content-ID: {content_id}")
    head = "\r\n".join(lines) + "\r\n\r\n"
    return head.encode("ascii") + _base64_lines(attachment.payload)


def _content_type(content_type: str) -> tuple[str, str]:
    bare = content_type.split(";")[0].strip().lower()
    match = _MIME_TYPE_RE.fullmatch(bare)
    if match is None or match.group(1) in _OPAQUE_MAINTYPES:
        return "application", "octet-stream"
    return match.group(1), match.group(2)


def _filename(attachment: Attachment) -> str:
    # The sender's own name (Japanese kept), but without directories, controls, reserved
    # names or excess length: a hostile name must not reach the recipient, nor make a
    # parameter line longer than 998 octets.
    name = one_line("".join(ch for ch in attachment.filename if ch.isprintable() or ch.isspace()))
    return safe_name(name) if name else attachment.safe_name or "attachment"


def _content_id(content_id: str) -> str | None:
    bare = "".join(content_id.split()).strip("<>")
    return f"<{bare}>" if bare and bare.isascii() else None
