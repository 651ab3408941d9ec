"""A part's Content-Type and charset, as the stdlib reads them, read once for each field.

``Message.get_content_type`` and ``get_content_charset`` scan every header and parse the
whole field at each call; the same few Content-Type fields come back part after part and
mail after mail.
"""

from __future__ import annotations

from email.message import Message
from functools import lru_cache


def content_type_of(part: Message) -> str:
    """``part.get_content_type()``, read once for each Content-Type field seen."""
    field = _content_type_field(part)
    if field is None:
        return part.get_content_type()  # the default type, which a multipart/digest sets
    return _read_content_type(*field)[0]


def content_charset(part: Message) -> str | None:
    """``part.get_content_charset()`` (None when unreadable), read once for each field seen."""
    field = _content_type_field(part)
    return None if field is None else _read_content_type(*field)[1]


def _content_type_field(part: Message) -> tuple[str, str] | None:
    # The first one, as Message.get would pick it; both readings depend on it alone.
    return next(((k, v) for k, v in part.raw_items() if k.lower() == "content-type"), None)


def _read_content_type(name: str, value: str) -> tuple[str, str | None]:
    if len(value) > _CACHED_LENGTH:
        return _read_content_type_field(name, value)
    return _cached_content_type(name, value)


def _read_content_type_field(name: str, value: str) -> tuple[str, str | None]:
    """(type, charset) as the stdlib reads them from a message with this field alone."""
    scratch = Message()
    scratch.set_raw(name, value)
    try:
        charset = scratch.get_content_charset()
    except (ValueError, TypeError, LookupError, IndexError):
        charset = None
    return scratch.get_content_type(), charset


# The stdlib parses the whole field at each reading, and the same few Content-Type fields
# come back part after part and mail after mail: recent readings are kept, keyed on the
# field's text. Long, odd fields are not.
_CACHED_LENGTH = 1000
_cached_content_type = lru_cache(maxsize=256)(_read_content_type_field)
