"""Messages from files: single .eml files, mbox files, Maildirs, directories, stdin.

Yields ``(raw bytes, source_ref)`` without parsing: the pipeline parses once, later.
"""

from __future__ import annotations

import mailbox
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


def _is_maildir(path: Path) -> bool:
    return path.is_dir() and (path / "cur").is_dir() and (path / "new").is_dir()


def _looks_like_mbox(head: bytes) -> bool:
    return head.startswith(b"From ")


def read_messages(path: str | Path, stdin: BinaryIO | None = None) -> Iterator[tuple[bytes, str]]:
    """Every message under ``path`` (``-`` reads one message or an mbox from stdin)."""
    if str(path) == "-":
        if stdin is None:
            raise ValueError("stdin is not available")
        yield from _split_stream(stdin.read(), "stdin")
        return
    path = Path(path)
    if _is_maildir(path):
        yield from _read_maildir(path)
    elif path.is_dir():
        for child in sorted(path.iterdir()):
            if child.is_file() and not child.name.startswith("."):
                yield from read_messages(child)
            elif _is_maildir(child):
                yield from _read_maildir(child)
    else:
        yield from _split_stream(path.read_bytes(), str(path))


def _split_stream(data: bytes, name: str) -> Iterator[tuple[bytes, str]]:
    if not _looks_like_mbox(data[:5]):
        yield data, name
        return
    yield from _split_mbox(data, name)


def _split_mbox(data: bytes, name: str) -> Iterator[tuple[bytes, str]]:
    """mboxo/mboxrd: messages start at lines beginning "From "; ">From " is unquoted."""
    index = 0
    for chunk in _mbox_chunks(data):
        lines = chunk.split(b"\n")[1:]  # drop the "From " separator line
        body = b"\n".join(_unquote_from(line) for line in lines)
        yield body.rstrip(b"\n") + b"\n", f"{name}#{index}"
        index += 1


def _mbox_chunks(data: bytes) -> Iterator[bytes]:
    start = 0
    while True:
        following = data.find(b"\n\nFrom ", start)
        if following == -1:
            yield data[start:]
            return
        yield data[start : following + 1]
        start = following + 2


def _unquote_from(line: bytes) -> bytes:
    stripped = line.lstrip(b">")
    if stripped.startswith(b"From ") and line.startswith(b">"):
        return line[1:]
    return line


def _read_maildir(path: Path) -> Iterator[tuple[bytes, str]]:
    box = mailbox.Maildir(path, factory=None, create=False)
    for key in sorted(box.keys()):
        with box.get_file(key) as handle:
            yield handle.read(), f"{path}:{key}"
