"""Outgoing mail bytes: headers, Japanese text, attachments, folding, injection."""

from __future__ import annotations

import base64
import email
import email.policy
import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from conftest import CORPUS

from mailflow.compose import compose, idna_address
from mailflow.model import Address, Attachment
from mailflow.parse import parse_mail
from mailflow.render import Rendered

JST = timezone(timedelta(hours=9))
DESK = Address("desk@secretary.example", "Example オンライン秘書")
CLIENT = Address("yamada@acme.example", "山田 太郎")
REPLY_TO = "desk+MF-0012.abcdefghij@secretary.example"
TEXT = "株式会社アクメ\n山田 太郎 様\n\nいつもお世話になっております。\nご依頼を承りました。\n"
HTML = "<p>いつもお世話になっております。</p>\n"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def build(rendered: Rendered | None = None, **overrides: Any) -> bytes:
    arguments: dict[str, Any] = {
        "sender": DESK,
        "to": (CLIENT,),
        "cc": (),
        "reply_to": REPLY_TO,
        "message_id": "<mf.0001@secretary.example>",
        "date": datetime(2026, 12, 1, 9, 30, tzinfo=JST),
        "in_reply_to": "<CAF=abc@mail.acme.example>",
        "references": ("<CAF=abc@mail.acme.example>", "<mf.0000@secretary.example>"),
        "automatic": True,
    }
    rendered = rendered or Rendered(
        subject="[MF-0012] ご依頼を承りました：売上集計", text=TEXT, html=None
    )
    return compose(rendered, **(arguments | overrides))


def parse(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def text_of(message: EmailMessage, subtype: str) -> str:
    part = message.get_body((subtype,))
    assert isinstance(part, EmailMessage)
    content = part.get_content()
    assert isinstance(content, str)
    return content


def test_headers_round_trip() -> None:
    message = parse(build())
    assert message["Subject"] == "[MF-0012] ご依頼を承りました：売上集計"
    assert message["From"] == "Example オンライン秘書 <desk@secretary.example>"
    assert message["To"] == "山田 太郎 <yamada@acme.example>"
    assert message["Cc"] is None
    assert message["Reply-To"] == REPLY_TO
    assert message["Message-ID"] == "<mf.0001@secretary.example>"
    assert message["Date"].datetime == datetime(2026, 12, 1, 9, 30, tzinfo=JST)
    assert message["In-Reply-To"] == "<CAF=abc@mail.acme.example>"
    assert message["References"] == "<CAF=abc@mail.acme.example> <mf.0000@secretary.example>"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["X-Auto-Response-Suppress"] == "All"
    assert message["X-Mailflow-Loop"] == "secretary.example"
    assert message["MIME-Version"] == "1.0"


def test_bytes_are_seven_bit_with_crlf_line_ends() -> None:
    raw = build(
        attachments=(Attachment("見積書.pdf", "mitsumori.pdf", "application/pdf", b"%PDF"),)
    )
    raw.decode("ascii")
    assert b"\r\n" in raw
    assert b"\n" not in raw.replace(b"\r\n", b"")
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998


def test_japanese_body_survives() -> None:
    message = parse(build())
    assert message.get_content_type() == "text/plain"
    assert message.get_content_charset() == "utf-8"
    assert message["Content-Transfer-Encoding"] in ("base64", "quoted-printable")
    assert text_of(message, "plain").replace("\r\n", "\n") == TEXT


def test_html_alternative() -> None:
    rendered = Rendered(subject="[MF-0012] 件名", text=TEXT, html=HTML)
    message = parse(build(rendered))
    assert message.get_content_type() == "multipart/alternative"
    assert text_of(message, "plain").replace("\r\n", "\n") == TEXT
    assert text_of(message, "html").replace("\r\n", "\n") == HTML


def test_attachments_keep_their_japanese_names() -> None:
    files = (
        Attachment("売上 集計（最終版）.xlsx", "uriage.xlsx", XLSX, b"PK\x03\x04 fake xlsx"),
        Attachment("メモ.txt", "memo.txt", "text/plain; charset=utf-8", "メモ".encode()),
        Attachment("転送.eml", "tensou.eml", "message/rfc822", b"Subject: x\r\n\r\nbody"),
    )
    rendered = Rendered(subject="[MF-0012] 納品", text=TEXT, html=HTML)
    message = parse(build(rendered, attachments=files))
    assert message.get_content_type() == "multipart/mixed"
    assert text_of(message, "plain").replace("\r\n", "\n") == TEXT
    parts = list(message.iter_attachments())
    assert [p.get_filename() for p in parts] == [f.filename for f in files]
    assert [p.get_content_type() for p in parts] == [XLSX, "text/plain", "application/octet-stream"]
    assert [p.get_payload(decode=True) for p in parts] == [f.payload for f in files]
    assert b"filename*" in build(rendered, attachments=files)


def test_inline_attachment_gets_its_content_id() -> None:
    logo = Attachment(
        "logo.png", "logo.png", "image/png", b"\x89PNG", inline=True, content_id="logo1"
    )
    message = parse(build(attachments=(logo,)))
    part = next(p for p in message.walk() if p.get_content_type() == "image/png")
    assert part.get_content_disposition() == "inline"
    assert part["Content-ID"] == "<logo1>"


def test_a_bad_content_type_becomes_octet_stream() -> None:
    odd = Attachment("x.bin", "x.bin", "not a type\r\nX-Evil: 1", b"\x00\x01")
    message = parse(build(attachments=(odd,)))
    (part,) = message.iter_attachments()
    assert part.get_content_type() == "application/octet-stream"
    assert message["X-Evil"] is None


def test_japanese_display_names_and_cc() -> None:
    cc = (Address("sato@members.example", "佐藤 一郎"), Address("kim@beta.example", 'Kim, "Jay"'))
    message = parse(build(cc=cc))
    assert message["Cc"].addresses[0].display_name == "佐藤 一郎"
    assert message["Cc"].addresses[1].display_name == 'Kim, "Jay"'
    assert [a.addr_spec for a in message["Cc"].addresses] == [
        "sato@members.example",
        "kim@beta.example",
    ]


def test_human_mail_is_not_marked_automatic() -> None:
    message = parse(build(automatic=False))
    assert message["Auto-Submitted"] is None
    assert message["X-Auto-Response-Suppress"] is None
    assert message["X-Mailflow-Loop"] == "secretary.example"


def test_first_mail_has_no_threading_headers() -> None:
    message = parse(build(in_reply_to=None, references=()))
    assert message["In-Reply-To"] is None
    assert message["References"] is None


def test_long_japanese_subject_is_folded_not_refused() -> None:
    subject = "[MF-0012] " + ("とても長い件名の依頼です。" * 40)[:500]
    raw = build(Rendered(subject=subject, text=TEXT, html=None))
    assert max(len(line) for line in raw.split(b"\r\n")) <= 78 + 2
    assert parse(raw)["Subject"] == subject


@pytest.mark.parametrize(
    "field",
    ["subject", "reply_to", "message_id", "in_reply_to", "name", "email"],
)
def test_crlf_in_any_header_value_is_stripped(field: str) -> None:
    evil = "x\r\nBcc: victim@example.com\nX-Injected: yes"
    overrides: dict[str, Any] = {}
    rendered = Rendered(subject="[MF-0012] ok", text=TEXT, html=None)
    if field == "subject":
        rendered = Rendered(subject=evil, text=TEXT, html=None)
    elif field == "name":
        overrides["to"] = (Address("yamada@acme.example", evil),)
    elif field == "email":
        overrides["to"] = (Address("jøran@exämple.example" + evil, "Jøran"),)
    else:
        overrides[field] = "<a@b>" + evil if field != "reply_to" else REPLY_TO + evil
    message = parse(build(rendered, **overrides))
    assert message["Bcc"] is None
    assert message["X-Injected"] is None
    assert message.defects == [] or all("Bcc" not in str(d) for d in message.defects)


def test_naive_dates_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        build(date=datetime(2026, 12, 1, 9, 30))


@pytest.mark.parametrize("size", [0, 1, 56, 57, 58, 114, 115, 4000, 256 * 57, 256 * 57 + 1, 30000])
def test_base64_lines_are_those_of_encodebytes(size: int) -> None:
    payload = (bytes(range(256)) * 128)[:size]
    file = Attachment(
        filename="a.bin",
        safe_name="a.bin",
        content_type="application/octet-stream",
        payload=payload,
    )
    raw = build(attachments=(file,))
    expected = base64.encodebytes(payload).replace(b"\n", b"\r\n")
    assert b"Content-Transfer-Encoding: base64\r\n\r\n" + expected + b"\r\n--" in raw


@pytest.mark.parametrize("name", ["a" * 38 + "😀b", "é" * 30, "ｱ" * 13 + "a", "😀" * 12, "山" * 13])
def test_encoded_words_are_full_and_never_split_a_character(name: str) -> None:
    raw = build(to=(Address("x@y.example", name),)).decode("ascii")
    to = raw.split("\r\nTo: ", 1)[1].split("\r\nCc: ")[0].split("\r\nReply-To: ")[0]
    words = [base64.b64decode(w) for w in re.findall(r"=\?utf-8\?b\?([^?]*)\?=", to)]
    assert b"".join(words).decode("utf-8") == name
    for word, following in zip(words, words[1:], strict=False):
        word.decode("utf-8")  # whole characters only
        # Each word is as long as it can be: the next character would not have fitted.
        first = following.decode("utf-8")[0].encode("utf-8")
        assert len(word) <= 39 < len(word) + len(first)


# -- internationalised addresses (RFC 5891 IDNA, RFC 6532 UTF-8 headers) -------------------

# The senders of the public corpus that the desk once could not answer, with the address a
# reply goes to: the domain in A-labels; a local part with no ASCII form left as it is.
CORPUS_SENDERS = {
    "cyrus-cassandane/utf8-domain.bin": (
        Address("jb@julián.example.com", "J. Besteiro"),
        "jb@xn--julin-0qa.example.com",
    ),
    "horde-mime/sample_msg_eai_2.txt": (
        Address("jøran@example.com", "Jøran Øygårdvær"),
        "jøran@example.com",
    ),
    "horde-mime/sample_msg_eai_4.txt": (
        Address("jøran@example.com", "Jøran Øygårdvær"),
        "jøran@example.com",
    ),
    "mikel-mail/rfc6532/utf8_headers.eml": (
        Address("jdöe@mächine.example", "Jöhn Doe"),
        "jdöe@xn--mchine-bua.example",
    ),
}


def corpus_sender(path: str) -> Address:
    if not (CORPUS / path).is_file():
        pytest.skip(f"corpus not found at {CORPUS}")
    sender = parse_mail((CORPUS / path).read_bytes()).sender
    assert sender is not None
    return sender


@pytest.mark.parametrize("path", sorted(CORPUS_SENDERS))
def test_a_reply_to_each_international_corpus_sender_reads_back(path: str) -> None:
    sender, written = CORPUS_SENDERS[path]
    assert corpus_sender(path) == sender
    raw = build(to=(sender,))
    [to] = parse(raw)["To"].addresses
    # CPython's bytes parser leaves raw UTF-8 in a header surrogate-escaped (it predates
    # RFC 6532): undone, the address is exactly the one written.
    addr_spec = to.addr_spec.encode("ascii", "surrogateescape").decode("utf-8")
    assert (to.display_name, addr_spec) == (sender.name, written)
    if written.isascii():
        raw.decode("ascii")  # still 7-bit: nothing asks the relay for SMTPUTF8
    else:
        assert raw.decode("utf-8").count(written) == 1  # RFC 6532: raw UTF-8, not a word


def test_only_the_address_without_an_ascii_form_makes_the_head_utf8() -> None:
    """A UTF-8 head differs from the 7-bit one in that address alone: the display name is
    still an encoded word, the body still base64, every other header byte for byte."""
    jøran = build(to=(Address("jøran@example.com", "Jøran Øygårdvær"),))
    joran = build(to=(Address("joran@example.com", "Jøran Øygårdvær"),))
    head, body = jøran.split(b"\r\n\r\n", 1)
    assert body.isascii()
    ascii_head = head.decode("utf-8").replace("jøran@", "joran@").encode("ascii")
    assert ascii_head + b"\r\n\r\n" + body == joran


def test_non_ascii_message_ids_are_left_out_of_threading_headers() -> None:
    raw = build(
        in_reply_to="<jøran.1@example.com>",
        references=("<ok@acme.example>", "<jøran.1@example.com>"),
    )
    message = parse(raw)
    raw.decode("ascii")
    assert message["In-Reply-To"] is None
    assert message["References"] == "<ok@acme.example>"


@pytest.mark.parametrize(
    ("address", "written"),
    [
        ("yamada@acme.example", "yamada@acme.example"),
        ("jb@julián.example.com", "jb@xn--julin-0qa.example.com"),
        ("JB@Julián.Example.com", "JB@xn--julin-0qa.Example.com"),  # ASCII labels as they are
        # IDNA2008, not Python's IDNA2003 codec: that one names strasse.de, another domain.
        ("info@straße.de", "info@xn--strae-oqa.de"),
        ("yamada@例え。テスト", "yamada@xn--r8jz45g.xn--zckzah"),  # a full-width 。 is a dot
        ("jøran@example.com", "jøran@example.com"),  # no ASCII form for the local part
        ("x@" + "é" * 70 + ".example", "x@" + "é" * 70 + ".example"),  # over 63: kept
        ("no-domain-é", "no-domain-é"),
    ],
)
def test_idna_address(address: str, written: str) -> None:
    assert idna_address(address) == written


@pytest.mark.parametrize(
    "zone",
    [
        JST,
        UTC,
        timezone(timedelta(hours=-3, minutes=-30)),
        timezone(timedelta(hours=5, minutes=45)),
        timezone(timedelta(hours=-9, seconds=-1)),
        ZoneInfo("Asia/Tokyo"),
        ZoneInfo("America/St_Johns"),
    ],
)
@pytest.mark.parametrize(
    "moment",
    [datetime(2026, 1, 4, 0, 0, 5, 1), datetime(2026, 12, 31, 23, 59, 59), datetime(1880, 7, 1)],
)
def test_date_header_is_that_of_format_datetime(zone: tzinfo, moment: datetime) -> None:
    date = moment.replace(tzinfo=zone)
    raw = build(date=date)
    assert f"\r\nDate: {format_datetime(date)}\r\n".encode() in raw
