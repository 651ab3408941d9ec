"""Attachments: every way a file name is written, and names made safe."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from mailflow.parse import parse_mail
from mailflow.parse.attachments import safe_name

MAIL = Path(__file__).parent / "mail"


def _with_part(part_headers: str, payload: bytes = b"data") -> bytes:
    body = base64.b64encode(payload).decode()
    return (
        "From: a@x.jp\r\nSubject: files\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n"
        "--B\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nsee attached\r\n"
        f"--B\r\n{part_headers}Content-Transfer-Encoding: base64\r\n\r\n{body}\r\n--B--\r\n"
    ).encode("utf-8", "surrogateescape")


def test_outlook_rfc2047_in_quotes() -> None:
    mail = parse_mail((MAIL / "outlook_sjis_rfc2047_filename.eml").read_bytes())
    (attachment,) = mail.attachments
    assert attachment.filename == "見積書①.pdf"
    assert attachment.safe_name == "見積書①.pdf"
    assert attachment.content_type == "application/pdf"
    assert attachment.payload == b"%PDF-1.4 test"
    assert not attachment.inline


def test_rfc2231_utf8_and_shift_jis() -> None:
    utf8 = (
        "Content-Type: application/pdf\r\nContent-Disposition: attachment;"
        " filename*=UTF-8''%E8%A6%8B%E7%A9%8D%E2%91%A0.pdf\r\n"
    )
    assert parse_mail(_with_part(utf8)).attachments[0].filename == "見積①.pdf"
    sjis = "見積①.pdf".encode("cp932")
    quoted = "".join(f"%{b:02X}" for b in sjis)
    header = (
        f"Content-Type: application/pdf\r\nContent-Disposition: attachment;"
        f" filename*=Shift_JIS''{quoted}\r\n"
    )
    assert parse_mail(_with_part(header)).attachments[0].filename == "見積①.pdf"


def test_rfc2231_iso2022jp_with_continuations() -> None:
    # 報告書 from the stock codec, then ① (JIS 2D21, an NEC extension) written by hand.
    jis = "報告書".encode("iso2022_jp")[:-3] + b"-!\x1b(B"
    encoded = "".join(f"%{b:02X}" for b in jis)
    headers = (
        "Content-Type: text/plain; charset=us-ascii\r\n"
        "Content-Disposition: attachment;\r\n"
        f" filename*0*=ISO-2022-JP''{encoded[:21]};\r\n"
        f" filename*1*={encoded[21:]}.txt\r\n"
    )
    (attachment,) = parse_mail(_with_part(headers)).attachments
    assert attachment.filename == "報告書①.txt"
    assert attachment.content_type == "text/plain"


def test_content_type_name_only_and_raw_8bit_name() -> None:
    only_name = 'Content-Type: application/pdf; name="=?UTF-8?B?5aCx5ZGK?=.pdf"\r\n'
    assert parse_mail(_with_part(only_name)).attachments[0].filename == "報告.pdf"
    raw_name = (
        "Content-Type: application/pdf\r\nContent-Disposition: attachment;"
        ' filename="報告書.pdf"\r\n'
    )
    raw = _with_part("@@\r\n").replace(b"@@\r\n", raw_name.encode("cp932"))
    assert parse_mail(raw).attachments[0].filename == "報告書.pdf"


def test_inline_image_with_content_id() -> None:
    headers = "Content-Type: image/png\r\nContent-ID: <img1@x>\r\nContent-Disposition: inline\r\n"
    (attachment,) = parse_mail(_with_part(headers, b"\x89PNG")).attachments
    assert attachment.inline
    assert attachment.content_id == "img1@x"
    assert attachment.filename == "attachment.png"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("../../etc/passwd", "passwd"),
        ("/abs/path/file.txt", "file.txt"),
        ("C:\\Users\\x\\evil.exe", "evil.exe"),
        ("a\x00b.txt", "a_b.txt"),
        ("tab\x07bell.txt", "tab_bell.txt"),
        ("...hidden", "hidden"),
        ("CON.txt", "_CON.txt"),
        ("nul", "_nul"),
        ("com1.tar.gz", "_com1.tar.gz"),
        ("LPT9", "_LPT9"),
        ('a<b>c:d"e|f?g*h.doc', "a_b_c_d_e_f_g_h.doc"),
        ("", "attachment.bin"),
        ("..", "attachment.bin"),
        ("/", "attachment.bin"),
        ("見積書.xlsx", "見積書.xlsx"),
    ],
)
def test_safe_name(name: str, expected: str) -> None:
    assert safe_name(name) == expected


def test_safe_name_limits_length_keeping_extension() -> None:
    name = "あ" * 100 + ".pdf"  # 304 bytes of UTF-8
    safe = safe_name(name)
    assert safe.endswith(".pdf")
    assert len(safe.encode()) <= 200
    assert safe.startswith("あ")
    assert len(safe_name("x" * 300).encode()) == 200


def test_hostile_names_in_a_mail() -> None:
    headers = (
        "Content-Type: application/octet-stream\r\nContent-Disposition: attachment;"
        ' filename="../../etc/passwd"\r\n'
    )
    (attachment,) = parse_mail(_with_part(headers)).attachments
    assert attachment.filename == "../../etc/passwd"
    assert attachment.safe_name == "passwd"


def test_attached_message_becomes_eml_attachment() -> None:
    inner = b"From: c@client.jp\r\nSubject: =?UTF-8?B?5L6d6aC8?=\r\n\r\ninner body\r\n"
    raw = (
        b"From: a@x.jp\r\nSubject: Fwd\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n"
        b"--B\r\nContent-Type: text/plain\r\n\r\nplease see\r\n"
        b"--B\r\nContent-Type: message/rfc822\r\n\r\n" + inner + b"\r\n--B--\r\n"
    )
    mail = parse_mail(raw)
    (attachment,) = mail.attachments
    assert attachment.content_type == "message/rfc822"
    assert attachment.filename == "依頼.eml"
    assert b"inner body" in attachment.payload
    assert mail.text == "please see"
