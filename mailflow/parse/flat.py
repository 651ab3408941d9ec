"""Read a message without MIME structure without the stdlib feed parser.

Most mail to the desk is one text part with a plain header block. The feed parser reads
it line by line through several layers of Python; here the header block is split with two
regular expressions instead (about 3x faster). The result is the very ``Message`` the feed
parser builds; anything it would treat specially (an envelope ``From`` line, a line that
is not a header, a bare CR, a missing blank line, multipart or message/* content) is left
to it: ``read_flat`` then returns None.
"""

from __future__ import annotations

import re
from email.message import Message
from email.policy import compat32

from mailflow.parse.content_type import content_type_of

# The blank line that ends the header block (lines end in LF or CRLF).
_HEADER_END = re.compile(r"\n\r?\n")
# A header field as the feed parser takes it: an RFC 5322 name (printable ASCII but ":"),
# a colon, then the value with its continuation lines (which start with a space or tab).
_NAME = r"[\041-\071\073-\176]+"
_FIELD = re.compile(rf"({_NAME}):[ \t]*(.*\n(?:[ \t].*\n)*)")
_FIELDS = re.compile(rf"(?:{_NAME}:.*\n(?:[ \t].*\n)*)+")
_STRUCTURED = frozenset({"multipart", "message"})


def read_flat(text: str) -> Message | None:
    """The message in ``text`` (surrogate-escaped bytes), or None if it needs the feed parser."""
    end = _HEADER_END.search(text)
    if end is None:
        return None
    block = text[: end.start() + 1]
    # A CR not before LF ends a line for the feed parser: leave such blocks to it.
    if block.count("\r") != block.count("\r\n") or not _FIELDS.fullmatch(block):
        return None
    msg = Message(policy=compat32)
    for name, value in _FIELD.findall(block):
        # What the feed parser stores through compat32: the value without its last line break.
        msg.set_raw(name, value.rstrip("\r\n"))
    if content_type_of(msg).split("/")[0] in _STRUCTURED:
        return None
    msg.set_payload(text[end.end() :])
    return msg
