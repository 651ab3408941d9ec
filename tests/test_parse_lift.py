"""Lifting big base64 bodies out of the feed parser changes speed and memory, not results."""

from __future__ import annotations

import base64
import random
import re
import sys
from collections.abc import Iterator
from importlib import import_module
from pathlib import Path

import pytest

import mailflow.parse as parse_package
from mailflow.model import ParsedMail
from mailflow.parse import lift as lift_module
from mailflow.parse import parse_mail

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
generate = import_module("mixgen").generate  # bench/mixgen.py: the benchmark's own mix


@pytest.fixture
def unlifted(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """parse_mail as it was before lifting: the feed parser reads every line."""
    monkeypatch.setattr(parse_package, "lift_runs", lambda data: (data, []))
    yield


def _both(raw: bytes, request: pytest.FixtureRequest) -> tuple[ParsedMail, ParsedMail]:
    lifted = parse_mail(raw)
    request.getfixturevalue("unlifted")
    return lifted, parse_mail(raw)


def _attached_mail(payload: bytes) -> bytes:
    encoded = base64.encodebytes(payload).replace(b"\n", b"\r\n")
    inner = (
        b"From: tanaka@secretary.example\r\nSubject: inner\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n" + encoded
    )
    return (
        b"From: yamada@acme.example\r\nTo: desk@secretary.example\r\nSubject: fwd\r\n"
        b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="B"\r\n\r\n'
        b"--B\r\nContent-Type: text/plain\r\n\r\nsee below\r\n"
        b"--B\r\nContent-Type: application/octet-stream\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n"
        + encoded
        + b"\r\n--B\r\nContent-Type: message/rfc822\r\n\r\n"
        + inner
        + b"\r\n--B--\r\n"
    )


def test_big_attachments_and_attached_mail_read_the_same(request: pytest.FixtureRequest) -> None:
    payload = bytes(range(256)) * 64
    lifted, plain = _both(_attached_mail(payload), request)
    assert lifted == plain
    assert lifted.attachments[0].payload == payload
    inner = lifted.attachments[1].payload
    assert b"mailflow-lifted" not in inner and base64.encodebytes(payload)[:76] in inner


def test_generated_mix_reads_the_same(request: pytest.FixtureRequest) -> None:
    mails = generate(12, seed=3)
    lifted = [parse_mail(raw) for raw in mails]
    request.getfixturevalue("unlifted")
    assert lifted == [parse_mail(raw) for raw in mails]
    assert any(mail.attachments for mail in lifted)


def test_a_token_lookalike_in_the_input_disables_lifting() -> None:
    raw = _attached_mail(b"x" * 9000).replace(b"see below", b"\x00mailflow-lifted-0\x00")
    assert parse_mail(raw).attachments[0].payload == b"x" * 9000


# What lift searched with before it marked bytes with translate: the stretches must be equal.
_RUN = re.compile(rb"(?<![A-Za-z0-9+/=\r\n])[A-Za-z0-9+/=\r\n]{4096,}")


def test_runs_are_the_stretches_the_regex_finds() -> None:
    rng = random.Random(7)
    alphabet = b"QUJD+/=\r\nxyz09"
    for _ in range(300):
        pieces = []
        for _ in range(rng.randrange(1, 6)):
            size = rng.choice([1, 40, 2047, 4095, 4096, 4097, 9000, 16383, 16384, 16385, 40000])
            if rng.random() < 0.6:
                pieces.append(bytes(rng.choice(alphabet) for _ in range(size)))
            else:
                pieces.append(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 4))))
        data = b"".join(pieces)
        assert list(lift_module._runs(data)) == [m.span() for m in _RUN.finditer(data)]


@pytest.mark.parametrize("before", [0, 1, 4095, 12288, 16383, 16384, 16385])
@pytest.mark.parametrize("length", [4095, 4096, 16384, 16385, 32768])
def test_runs_meeting_the_edges_of_the_pieces_read(before: int, length: int) -> None:
    for after in (b"", b" ", b" " + b"A" * 5000):
        data = b"-" * before + b"A" * length + after
        assert list(lift_module._runs(data)) == [m.span() for m in _RUN.finditer(data)]
