"""Fuzz ``parse_mail`` with mutated real messages: nothing escapes but ProcessingError.

Seeds are small corpus messages (or this suite's own fixtures when the corpus is absent).
Mutations are the ones real mail suffers: flipped, inserted and deleted bytes, truncation,
duplicated headers and broken MIME boundaries. Derandomised, so CI sees the same cases.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailflow.classify import classify
from mailflow.errors import ProcessingError
from mailflow.model import ParsedMail
from mailflow.parse import parse_mail

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
FIXTURES = Path(__file__).resolve().parent / "mail"
_BOUNDARY = re.compile(rb"\n--[^\r\n]{1,200}")
_HEADER_LINE = re.compile(rb"(?m)^[A-Za-z-]{2,40}:[^\r\n]*\r?\n")
_MAX_SEED = 40_000


def _seeds() -> list[bytes]:
    manifest = CORPUS / "MANIFEST.tsv"
    seeds: list[bytes] = []
    if manifest.is_file():
        with manifest.open(encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle, delimiter="\t"):
                if row["format"] == "rfc822" and int(row["bytes"]) <= _MAX_SEED:
                    seeds.append((CORPUS / row["path"]).read_bytes())
    seeds += [path.read_bytes() for path in sorted(FIXTURES.glob("*.eml"))]
    return [seed for seed in seeds if seed.strip()]


SEEDS = _seeds()


def _flip(data: bytes, at: int, value: int) -> bytes:
    return data[:at] + bytes((value,)) + data[at + 1 :] if data else data


def _insert(data: bytes, at: int, chunk: bytes) -> bytes:
    return data[:at] + chunk + data[at:]


def _delete(data: bytes, at: int, size: int) -> bytes:
    return data[:at] + data[at + size :]


def _duplicate_header(data: bytes, at: int, times: int) -> bytes:
    headers = _HEADER_LINE.findall(data[:4000])
    if not headers:
        return data
    line: bytes = headers[at % len(headers)]
    return line * times + data


def _break_boundary(data: bytes, at: int, chunk: bytes) -> bytes:
    found = list(_BOUNDARY.finditer(data))
    if not found:
        return data + b"\r\n--" + chunk
    match = found[at % len(found)]
    return data[: match.start() + 3] + chunk + data[match.end() :]


_NASTY = st.sampled_from(
    [b"\x00", b"\x1b$B", b"\x1b(I", b"=?iso-2022-jp?B?GyRC?=", b"\r\n\r\n", b"--", b"\xff\xfe",
     b"Content-Type: multipart/mixed; boundary=\"\"\r\n", b"; charset=unicode-escape",
     b"Content-Transfer-Encoding: base64\r\n", b"=\r\n", b"\x80\x81\xfc", b"\n\t"]
)  # fmt: skip


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        kind = draw(st.integers(0, 6))
        if kind == 0:
            data = _flip(data, at, draw(st.integers(0, 255)))
        elif kind == 1:
            data = _insert(data, at, draw(_NASTY | st.binary(min_size=1, max_size=16)))
        elif kind == 2:
            data = _delete(data, at, draw(st.integers(1, 64)))
        elif kind == 3:
            data = data[:at]
        elif kind == 4:
            data = _duplicate_header(data, at, draw(st.integers(2, 50)))
        elif kind == 5:
            data = _break_boundary(data, at, draw(_NASTY | st.binary(max_size=8)))
        else:
            data = data[at:] + data[:at]
    return data


@settings(
    max_examples=2500,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(mutated())
def test_mutated_mail_parses_or_is_refused(raw: bytes) -> None:
    try:
        mail = parse_mail(raw)
    except ProcessingError:
        return
    assert isinstance(mail, ParsedMail)
    classify(mail, desk_domain="secretary.example", desk_address="desk@secretary.example")
    assert "\r" not in mail.text and "\r" not in mail.quoted
