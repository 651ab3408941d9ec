"""Headers: encoded words, raw 8-bit values, addresses, dates and message ids."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from mailflow.model import Address
from mailflow.parse import parse_mail
from mailflow.parse.headers import decode_header, message_ids, parse_addresses, parse_date

MAIL = Path(__file__).parent / "mail"
JST = timezone(timedelta(hours=9))


def _b(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_split_iso2022jp_encoded_word_subject_with_windows_chars() -> None:
    mail = parse_mail((MAIL / "iso2022jp_windows_chars.eml").read_bytes())
    assert mail.subject == "①資料作成のお願い"
    assert mail.sender == Address("taro.yamada@example.co.jp", "山田 ㈱")
    assert mail.text == "山田 ①㈱ 髙\n資料の作成をお願いします。"
    assert mail.date == datetime(2026, 11, 26, 10, 0, tzinfo=JST)
    assert mail.message_id == "<jis-1@example.co.jp>"


def test_split_utf8_word_joins_bytes_before_decoding() -> None:
    data = "日本語".encode()
    value = f"=?UTF-8?B?{_b(data[:4])}?= =?utf-8?B?{_b(data[4:])}?="
    assert decode_header(value) == "日本語"


def test_q_encoding_and_plain_text_around_words() -> None:
    assert decode_header("Re: =?utf-8?Q?caf=C3=A9_au_lait?= ok") == "Re: café au lait ok"
    assert decode_header("=?iso-8859-1?q?a?=  =?iso-8859-1?q?b?=") == "ab"


def test_raw_8bit_headers_are_sniffed() -> None:
    for encoding in ("utf-8", "cp932"):
        raw = "Subject: 見積①のご依頼\r\nFrom: 佐藤 <sato@x.jp>\r\n\r\nbody\r\n".encode(encoding)
        mail = parse_mail(raw)
        assert mail.subject == "見積①のご依頼"
        assert mail.sender == Address("sato@x.jp", "佐藤")


def test_address_lists() -> None:
    name = _b("山田 太郎".encode("iso2022_jp"))
    value = f'=?ISO-2022-JP?B?{name}?= <Taro@Example.COM>,\r\n "Sato, H" <h.sato@x.jp>, bare@y.jp'
    assert parse_addresses(value) == (
        Address("taro@example.com", "山田 太郎"),
        Address("h.sato@x.jp", "Sato, H"),
        Address("bare@y.jp"),
    )
    assert parse_addresses("undisclosed-recipients:;") == ()


def test_dates() -> None:
    assert parse_date("Thu, 26 Nov 2026 10:00:00 +0900") == datetime(2026, 11, 26, 1, tzinfo=UTC)
    assert parse_date("26 Nov 2026 10:00:00 -0000") == datetime(2026, 11, 26, 10, tzinfo=UTC)
    assert parse_date("not a date") is None
    assert parse_date(None) is None


def test_message_ids_keep_angle_brackets() -> None:
    assert message_ids("<a@x>\r\n <b@y>") == ("<a@x>", "<b@y>")
    assert message_ids("bare@id") == ("<bare@id>",)
    assert message_ids("") == ()


def test_headers_in_order_decoded_and_unfolded() -> None:
    raw = (
        b"Received: from a\r\n by b; Thu, 26 Nov 2026 10:00:00 +0900\r\n"
        b"Received: from c\r\n"
        b"Subject: =?UTF-8?B?5pel5pys?=\r\n"
        b"In-Reply-To: <p@x>\r\nReferences: <o@x>\r\n <p@x>\r\n"
        b"Date: yesterday\r\n\r\nhi\r\n"
    )
    mail = parse_mail(raw)
    assert mail.headers[:3] == (
        ("received", "from a by b; Thu, 26 Nov 2026 10:00:00 +0900"),
        ("received", "from c"),
        ("subject", "日本"),
    )
    assert mail.header_all("received")[1] == "from c"
    assert mail.in_reply_to == "<p@x>"
    assert mail.references == ("<o@x>", "<p@x>")
    assert mail.date is None
    assert any("Date" in defect for defect in mail.defects)
