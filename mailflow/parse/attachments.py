"""Attachment names: decoding every way mailers write them, and making them safe.

Names arrive as RFC 2231 (``filename*=`` in UTF-8, ISO-2022-JP or Shift_JIS, possibly in
continuations), as RFC 2047 words inside quotes (Outlook, Thunderbird), as ``name=`` on
Content-Type only, or as raw 8-bit bytes. ``safe_name`` is what may touch a file system.
"""

from __future__ import annotations

import re
import unicodedata
from email.message import Message

from mailflow.parse.charsets import decode_bytes
from mailflow.parse.headers import decode_header, raw_to_text

_RESERVED = frozenset(
    {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}
)
_UNSAFE = re.compile(r'[<>:"|?*\x00-\x1f\x7f-\x9f\u2028\u2029]')
_MAX_BYTES = 200
# Unicode categories dropped from safe names: format characters (bidi overrides,
# zero-width) and lone surrogates.
_INVISIBLE = frozenset({"Cf", "Cs"})
_EXTENSIONS = {
    "application/pdf": ".pdf", "application/zip": ".zip", "application/msword": ".doc",
    "application/vnd.ms-excel": ".xls", "application/vnd.ms-powerpoint": ".ppt",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ".docx",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": ".xlsx",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": ".pptx",
    "image/jpeg": ".jpg", "image/png": ".png", "image/gif": ".gif", "image/webp": ".webp",
    "image/heic": ".heic", "text/plain": ".txt", "text/html": ".html", "text/csv": ".csv",
    "text/calendar": ".ics", "message/rfc822": ".eml", "audio/mpeg": ".mp3", "video/mp4": ".mp4",
}  # fmt: skip


def part_filename(part: Message) -> str:
    """The decoded file name of a part ("" when it has none)."""
    for header, param in (("content-disposition", "filename"), ("content-type", "name")):
        value = _param(part, param, header)
        if value:
            return value
    return ""


def _param(part: Message, name: str, header: str) -> str:
    raw = next((v for k, v in part.raw_items() if k.lower() == header), None)
    if raw is None:
        return ""  # what get_param says of a missing header, without reading them all again
    if not raw.isascii():
        # compat32 turns raw 8-bit header bytes into U+FFFD before get_param sees them:
        # decode the header ourselves and read the parameter from a scratch message.
        raw = raw_to_text(raw)
        scratch = Message()
        scratch[header] = raw
        part = scratch
    if name not in raw.lower():
        return ""  # the parameter's name is not even written there: nothing to parse
    try:
        value = part.get_param(name, None, header)
    except (ValueError, LookupError, TypeError, IndexError):
        return ""
    if value is None:
        return ""
    if isinstance(value, tuple):
        # RFC 2231: the stdlib hands the %-decoded bytes back as latin-1 text.
        charset, _language, text = value
        data = str(text).encode("latin-1", "surrogateescape")
        return _tidy(decode_bytes(data, str(charset or "") or None))
    return _tidy(decode_header(str(value).strip('"')))


def _tidy(name: str) -> str:
    return re.sub(r"[\r\n\t]+", " ", name).strip()


def default_name(content_type: str) -> str:
    return "attachment" + _EXTENSIONS.get(content_type, ".bin")


def safe_name(filename: str) -> str:
    """A name safe on any file system: no directories, controls, reserved names or excess."""
    # Invisible format characters go first: U+202E makes "invoice\u202etxt.exe" read as
    # "invoiceexe.txt" in a file list.
    filename = "".join(ch for ch in filename if unicodedata.category(ch) not in _INVISIBLE)
    name = re.split(r"[/\\]", filename)[-1]
    name = _UNSAFE.sub("_", name).strip().lstrip(".").strip()
    name = name.rstrip(". ")  # Windows drops trailing dots and spaces silently
    if not name:
        return "attachment.bin"
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    if stem.split(".")[0].lower() in _RESERVED or (not stem and ext.lower() in _RESERVED):
        name = "_" + name
    return _limit(name)


def _limit(name: str) -> str:
    """At most ``_MAX_BYTES`` of UTF-8, keeping the extension and whole characters."""
    if len(name.encode("utf-8")) <= _MAX_BYTES:
        return name
    stem, dot, ext = name.rpartition(".")
    suffix = dot + ext if dot and len(ext.encode("utf-8")) <= 16 else ""
    stem = name[: len(name) - len(suffix)]
    budget = _MAX_BYTES - len(suffix.encode("utf-8"))
    return stem.encode("utf-8")[:budget].decode("utf-8", "ignore") + suffix
