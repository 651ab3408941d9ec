"""read_flat builds exactly the Message the feed parser builds, or declines."""

from __future__ import annotations

from email.message import Message
from email.parser import Parser
from email.policy import compat32
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailflow.parse.flat import read_flat

FIXTURES = Path(__file__).resolve().parent / "mail"
_PARSER = Parser(policy=compat32)


def _state(msg: Message) -> tuple[object, ...]:
    return (
        list(msg.raw_items()),
        # The raw payload: get_payload() decodes 8-bit text, which could hide a difference.
        msg._payload,  # type: ignore[attr-defined]
        [(type(d), str(d)) for d in msg.defects],
        msg.get_unixfrom(),
        msg.preamble,
        msg.epilogue,
        msg.is_multipart(),
        msg.get_default_type(),
        msg.get_charset(),
    )


def _check(raw: bytes) -> bool:
    """True when read_flat took the message; either way it must agree with the feed parser."""
    text = raw.decode("ascii", "surrogateescape")
    flat = read_flat(text)
    if flat is not None:
        assert _state(flat) == _state(_PARSER.parsestr(text))
    return flat is not None


TAKEN = [
    b"From: a@b.example\r\nSubject: hi\r\n\r\nbody\r\n",
    b"From: a@b.example\nSubject: hi\n\nbody\n",
    b"Subject: folded\r\n  over\r\n\tlines\r\nTo: x\r\n\r\n",
    b"Subject:\r\nTo:   \r\n\r\nbody",
    b"Subject: \xe3\x81\x82 8-bit\r\nX-Empty:\r\n  \r\n\r\n\r\nbody after blank lines",
    b"Subject: mixed\nTo: x\r\n\n\rbody with a CR\r",
    b"Content-Type: text/plain; charset=iso-2022-jp\r\n\r\n\x1b$B$3$s\x1b(B\r\n",
    b"Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n",
    b"Content-Type: bogus\r\n\r\nx",
    b"Subject: a\x00b\x0cc\x0bd\r\n\r\n",
]
DECLINED = [
    b"From sender@example.com Thu Nov 26 09:00:00 2026\r\nSubject: x\r\n\r\nbody",
    b"Subject: x\r\nFrom sender Thu\r\n\r\nbody",
    b" continued first\r\nSubject: x\r\n\r\n",
    b": no name\r\nSubject: x\r\n\r\n",
    b"Subject : space before colon\r\n\r\n",
    b"Subject: bare\rTo: x\r\n\r\n",
    b"Subject: a\r\n\rbody",
    b"Subject: only headers\r\n",
    b"\r\nbody without headers",
    b"not a header\r\nSubject: x\r\n\r\n",
    b"X-\xe3-8-bit-name: x\r\n\r\n",
    b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n\r\nx\r\n--b--\r\n',
    b"Content-Type: MESSAGE/RFC822\r\n\r\nSubject: inner\r\n\r\nx",
    b"Content-Type: message/delivery-status\r\n\r\nStatus: 5.0.0\r\n",
]


@pytest.mark.parametrize("raw", TAKEN)
def test_plain_messages_are_read_without_the_feed_parser(raw: bytes) -> None:
    assert _check(raw)


@pytest.mark.parametrize("raw", DECLINED)
def test_what_the_feed_parser_treats_specially_is_left_to_it(raw: bytes) -> None:
    assert not _check(raw)


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.eml")), ids=lambda p: p.name)
def test_fixtures_read_the_same(path: Path) -> None:
    _check(path.read_bytes())


_NAMES = st.sampled_from(
    ["Subject", "From", "To", "X-A", "Content-Type", "", "From ", "A B", "\udce3"]
)
_VALUES = st.lists(
    st.sampled_from(
        ["", " ", "\t", "value", ":", "\x00", "\x0c", "\x0b", "\udce3", "\r", "=?utf-8?q?x?=",
         "text/plain", "multipart/mixed", "message/rfc822", "; charset=utf-8"]
    ),
    max_size=4,
).map("".join)  # fmt: skip
_ENDS = st.sampled_from(["\r\n", "\n", "\r\n", "\n", "\r", ""])
_LINES = st.one_of(
    st.tuples(_NAMES, st.just(":"), _VALUES, _ENDS),  # a field
    st.tuples(st.sampled_from([" ", "\t", "From ", ""]), _VALUES, _ENDS),  # anything else
).map("".join)


@settings(max_examples=2000, deadline=None, derandomize=True, database=None)
@given(st.lists(_LINES, max_size=12), _ENDS, st.binary(max_size=20))
def test_any_header_block_reads_the_same_or_is_declined(
    lines: list[str], blank: str, body: bytes
) -> None:
    text = "".join(lines) + blank + body.decode("ascii", "surrogateescape")
    flat = read_flat(text)
    if flat is not None:
        assert _state(flat) == _state(_PARSER.parsestr(text))
