"""Header values: RFC 2047 words, raw 8-bit bytes, addresses, dates and message ids.

The compat32 parser hands header values over as str where every non-ASCII byte is a
surrogate escape; we turn those back into bytes and decode them with our charset layer,
so that raw Shift_JIS or UTF-8 headers and ISO-2022-JP encoded words all come out right.
"""

from __future__ import annotations

import binascii
import re
from datetime import UTC, datetime
from email.utils import getaddresses, parsedate_to_datetime
from functools import lru_cache

from mailflow.model import Address
from mailflow.parse.charsets import decode_bytes, sniff

_FOLD = re.compile(r"\r?\n(?=[ \t])|\r?\n|\r")
_LINE_BREAK = re.compile(r"[ \t]*(?:\r\n|[\r\n\v\f\x1c-\x1e\x85\u2028\u2029])[ \t]*")
_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=")
_QP_HEX = re.compile(rb"=([0-9A-Fa-f]{2})")
_MSG_ID = re.compile(r"<[^<>\s]+>")
_BARE_EMAIL = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w.-]+")


def unfold(value: str) -> str:
    """Remove folding line breaks (RFC 5322 §2.2.3), keep the whitespace after them."""
    if "\n" not in value and "\r" not in value:
        return value.strip()  # most headers fit on one line
    return _FOLD.sub("", value).strip()


def raw_to_text(value: str) -> str:
    """Recover surrogate-escaped 8-bit header bytes and decode them by sniffing."""
    if value.isascii():
        if "\x1b" in value:
            return sniff(value.encode("ascii"))
        return value
    try:
        data = value.encode("ascii", "surrogateescape")
    except UnicodeEncodeError:
        return value  # already real text
    return sniff(data)


def decode_header(value: str) -> str:
    """A header value as display text: unfolded, 8-bit sniffed, encoded words decoded."""
    text = raw_to_text(unfold(value))
    if "=?" not in text:
        return text
    if len(text) > _CACHED_LENGTH:
        return _one_line(text)
    return _cached_one_line(text)


def _one_line(text: str) -> str:
    # An encoded word may carry CR/LF; a header value is one line, so a subject such as
    # "Hello\r\nBcc: x" must not show up as separate lines in what we write.
    return _LINE_BREAK.sub(" ", _decode_words(text))


def _decode_words(text: str) -> str:
    """Decode encoded words, joining adjacent words of one charset at the byte level.

    Joining first matters: mailers split one ISO-2022-JP or UTF-8 sequence across words.
    """
    pieces: list[str | tuple[str, bytes]] = []
    pos = 0
    for match in _ENCODED_WORD.finditer(text):
        gap = text[pos : match.start()]
        previous_is_word = bool(pieces) and isinstance(pieces[-1], tuple)
        if gap and not (previous_is_word and gap.isspace()):
            pieces.append(gap)
        charset = match.group(1).split("*", 1)[0].lower()
        payload = _word_bytes(match.group(2), match.group(3))
        last = pieces[-1] if pieces else None
        if isinstance(last, tuple) and last[0] == charset:
            pieces[-1] = (charset, last[1] + payload)
        else:
            pieces.append((charset, payload))
        pos = match.end()
    pieces.append(text[pos:])
    return "".join(p if isinstance(p, str) else decode_bytes(p[1], p[0]) for p in pieces)


def _word_bytes(encoding: str, encoded: str) -> bytes:
    if encoding in "bB":
        return _lenient_b64(encoded)
    data = encoded.replace("_", " ").encode("ascii", "replace")
    return _QP_HEX.sub(lambda m: bytes((int(m.group(1), 16),)), data)


def _lenient_b64(encoded: str) -> bytes:
    cleaned = re.sub(r"[^A-Za-z0-9+/]", "", encoded)
    cleaned = cleaned[: len(cleaned) - (len(cleaned) % 4 == 1)]
    cleaned += "=" * (-len(cleaned) % 4)
    try:
        return binascii.a2b_base64(cleaned)
    except binascii.Error:
        return b""


def parse_addresses(value: str) -> tuple[Address, ...]:
    """An address list; display names decoded, emails lower-cased, empties skipped."""
    if len(value) > _CACHED_LENGTH:
        return _parse_addresses(value)
    return _cached_addresses(value)


def _parse_addresses(value: str) -> tuple[Address, ...]:
    text = raw_to_text(unfold(value))
    found: list[Address] = []
    try:
        pairs = getaddresses([text])
    except (RecursionError, ValueError, IndexError):
        pairs = []  # hostile group syntax recurses in the stdlib: fall back to bare addresses
    for name, email in pairs:
        email = email.strip().strip("<>").lower()
        if not email:
            continue
        found.append(Address(email, _clean_name(name)))
    if not found:
        found = [Address(m.lower()) for m in _BARE_EMAIL.findall(text)]
    return tuple(found)


# The same senders and subjects (a thread's "Re: …") come back mail after mail, and
# decoding them is slow (the stdlib address parser, ISO-2022-JP words): recent results
# are kept. Long, odd values are not.
_CACHED_LENGTH = 1000
_cached_addresses = lru_cache(maxsize=1024)(_parse_addresses)
_cached_one_line = lru_cache(maxsize=1024)(_one_line)


def _clean_name(name: str) -> str:
    decoded = _decode_words(name) if "=?" in name else name
    return " ".join(decoded.split()).strip("\"' ")


def parse_date(value: str | None) -> datetime | None:
    """An aware datetime (UTC when the zone is -0000 or missing), or None when unreadable."""
    if not value:
        return None
    try:
        when = parsedate_to_datetime(unfold(value))
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def message_ids(value: str | None) -> tuple[str, ...]:
    """Every ``<id>`` in a header, brackets kept; a bare token is wrapped in brackets."""
    if not value:
        return ()
    text = unfold(value)
    found = _MSG_ID.findall(text)
    if found:
        return tuple(found)
    token = text.split()[0] if text.split() else ""
    return (f"<{token}>",) if token else ()
