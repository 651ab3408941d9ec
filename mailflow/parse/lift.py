"""Keep big base64 bodies out of the stdlib feed parser.

The feed parser reads a message one line at a time; a 200 KB attachment is 2,700 lines and
a 25 MB one 340,000, each copied several times. Before parsing we *lift* every long run of
base64 lines out of the bytes and leave a one-line token in its place; the parser then sees
a small message. Base64 leaves are decoded straight from the original bytes (one copy of
the encoded text at most); any other part holding a token gets its text put back first,
so the tree reads exactly as if the whole message had been parsed.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Iterator
from email.message import Message

# A long stretch of the base64 alphabet and line breaks is found by marking each byte of it
# "a" and every other byte " " (bytes.translate), then searching the marks for _MIN_RUN
# a's: a long needle lets the search skip ahead, where a regex visits every byte. Only
# pieces that hold a byte outside the alphabet need marking (see _runs).
_MIN_RUN = 4096
_BASE64_BYTES = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=\r\n"
_MARKS = bytes(0x61 if b in _BASE64_BYTES else 0x20 for b in range(256))
_STRETCH = b"a" * _MIN_RUN
_PIECE = 4 * _MIN_RUN
_MARK = "\x00mailflow-lifted-"
_TOKEN = re.compile("\x00mailflow-lifted-(\\d+)\x00")
_ATTRIBUTE = "_mailflow_lifted"


def lift(data: bytes) -> tuple[bytes, list[memoryview]]:
    """``data`` with long base64 runs replaced by tokens, and the runs (as views)."""
    if len(data) < 4096 or _holds_mark(data):
        return data, []
    pieces: list[bytes] = []
    runs: list[memoryview] = []
    view = memoryview(data)
    pos = 0
    for run_start, run_end in _runs(data):
        start, end = _whole_lines(data, run_start, run_end)
        if end - start < 2048:
            continue
        pieces.append(data[pos:start])
        pieces.append(f"{_MARK}{len(runs)}\x00\n".encode("ascii"))
        runs.append(view[start:end])
        pos = end
    if not runs:
        return data, []
    pieces.append(data[pos:])
    return b"".join(pieces), runs


def _holds_mark(data: bytes) -> bool:
    # Mail almost never holds a NUL byte, and finding none is 20x faster than seeking the mark.
    return b"\x00" in data and _MARK.encode() in data


def _runs(data: bytes) -> Iterator[tuple[int, int]]:
    """(start, end) of each whole stretch of base64 alphabet at least _MIN_RUN bytes long."""
    # Read in pieces: a piece that is all alphabet (most of a big attachment) is passed by
    # deleting the alphabet from it, which is cheaper than marking it; and pieces this size
    # reuse the allocator's memory, where one copy of a 200 KB mail takes fresh pages.
    # Measured: 3x faster than marking the whole mail at once.
    stretch_start = 0  # where the stretch reaching the current piece began
    for pos in range(0, len(data), _PIECE):
        piece = data[pos : pos + _PIECE]
        if not piece.translate(None, _BASE64_BYTES):
            continue
        marks = piece.translate(_MARKS)
        gap = marks.find(b" ")
        if pos + gap - stretch_start >= _MIN_RUN:
            yield stretch_start, pos + gap
        for start, end in _marked_runs(marks, gap):
            yield pos + start, pos + end
        stretch_start = pos + marks.rfind(b" ") + 1
    if len(data) - stretch_start >= _MIN_RUN:
        yield stretch_start, len(data)


def _marked_runs(marks: bytes, gap: int) -> Iterator[tuple[int, int]]:
    """The stretches after ``gap`` that end inside ``marks``."""
    # The first _MIN_RUN a's found after a non-alphabet byte start a whole stretch.
    start = marks.find(_STRETCH, gap)
    while start >= 0:
        end = marks.find(b" ", start + _MIN_RUN)
        if end < 0:
            return  # it goes on into the next piece
        yield start, end
        start = marks.find(_STRETCH, end)


def _whole_lines(data: bytes, start: int, end: int) -> tuple[int, int]:
    """Shrink a run to whole lines with text: never the blank line that ends a header."""
    if start and data[start - 1] != 0x0A:
        start = data.find(b"\n", start, end) + 1 or end
    while start < end and data[start] in (0x0D, 0x0A):
        start += 1
    last = data.rfind(b"\n", start, end)
    return start, (last + 1 if last >= 0 else start)


def settle(msg: Message, runs: list[memoryview]) -> None:
    """Put lifted text back where a reader needs it; mark base64 leaves for direct decoding.

    Inside an attached message everything is put back, because that message may be
    re-serialised with ``as_bytes``.
    """
    if not runs:
        return
    stack: list[tuple[Message, bool]] = [(msg, False)]
    while stack:
        part, restore_all = stack.pop()
        # The raw payload: get_payload() would replace 8-bit bytes (surrogates) with U+FFFD.
        payload = getattr(part, "_payload", None)
        if restore_all:
            for name in ("preamble", "epilogue"):
                value = getattr(part, name, None)
                if isinstance(value, str) and _MARK in value:
                    setattr(part, name, "".join(_text(p) for p in _split(value, runs)))
        if isinstance(payload, list):
            inside = restore_all or part.get_content_type() in ("message/rfc822", "message/global")
            stack += [(child, inside) for child in payload if isinstance(child, Message)]
            continue
        if not isinstance(payload, str) or _MARK not in payload:
            continue
        pieces = _split(payload, runs)
        if not restore_all and _is_base64(part):
            setattr(part, _ATTRIBUTE, pieces)
        else:
            part.set_payload("".join(_text(piece) for piece in pieces))


def lifted_payload(part: Message) -> bytes | None:
    """The decoded body of a lifted base64 leaf, or None when the part was not lifted."""
    pieces: list[str | memoryview] | None = getattr(part, _ATTRIBUTE, None)
    if pieces is None:
        return None
    encoded: bytes | memoryview
    if len(pieces) == 1 and isinstance(pieces[0], memoryview):
        encoded = pieces[0]  # the usual single run: decoded where it lies, not copied first
    else:
        encoded = b"".join(
            piece if isinstance(piece, memoryview) else piece.encode("ascii", "ignore")
            for piece in pieces
        )
    try:
        return binascii.a2b_base64(encoded)
    except binascii.Error:
        # Bad padding: decode what is whole, as the stdlib does, rather than give up.
        cleaned = re.sub(rb"[^A-Za-z0-9+/]", b"", bytes(encoded))
        cleaned = cleaned[: len(cleaned) - len(cleaned) % 4]
        return binascii.a2b_base64(cleaned)


def _split(payload: str, runs: list[memoryview]) -> list[str | memoryview]:
    pieces: list[str | memoryview] = []
    pos = 0
    for match in _TOKEN.finditer(payload):
        pieces.append(payload[pos : match.start()])
        index = int(match.group(1))
        run = runs[index] if index < len(runs) else memoryview(b"")
        if match.end() == len(payload):
            # The parser gave the line break before a boundary to the boundary: so do we.
            run = run[: len(run) - 2] if bytes(run[-2:]) == b"\r\n" else run[: len(run) - 1]
        pieces.append(run)
        pos = match.end() + (payload[match.end() : match.end() + 1] == "\n")
    pieces.append(payload[pos:])
    return [piece for piece in pieces if len(piece)]


def _text(piece: str | memoryview) -> str:
    return piece if isinstance(piece, str) else bytes(piece).decode("ascii")


def _is_base64(part: Message) -> bool:
    return str(part.get("content-transfer-encoding", "")).strip().lower() == "base64"
