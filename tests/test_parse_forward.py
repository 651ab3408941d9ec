"""Forwarded originals: attached message/rfc822 and inline forward blocks."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from mailflow.model import Address
from mailflow.parse import parse_mail

JST = timezone(timedelta(hours=9))


def _plain(subject: str, body: str) -> bytes:
    head = f"From: director@secretary.example\r\nSubject: {subject}\r\n"
    head += "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    return head.encode("utf-8") + body.replace("\n", "\r\n").encode("utf-8")


def test_attached_rfc822_original() -> None:
    inner = (
        b"From: =?UTF-8?B?5bGx55Sw?= <Client@Example.co.jp>\r\n"
        b"Date: Thu, 26 Nov 2026 10:00:00 +0900\r\nSubject: =?UTF-8?B?6LOH5paZ?=\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n\r\n" + "資料をお願いします。\r\n".encode()
    )
    raw = (
        b"From: director@secretary.example\r\nSubject: Fwd\r\n"
        b"Content-Type: multipart/mixed; boundary=B\r\n\r\n"
        b"--B\r\nContent-Type: text/plain\r\n\r\n#assign hanako\r\n"
        b"--B\r\nContent-Type: message/rfc822\r\nContent-Disposition: attachment\r\n\r\n"
        + inner
        + b"\r\n--B--\r\n"
    )
    mail = parse_mail(raw)
    assert mail.text == "#assign hanako"
    forwarded = mail.forwarded
    assert forwarded is not None
    assert forwarded.sender == Address("client@example.co.jp", "山田")
    assert forwarded.date == datetime(2026, 11, 26, 10, tzinfo=JST)
    assert forwarded.subject == "資料"
    assert forwarded.text == "資料をお願いします。"


GMAIL = """#assign hanako
#due 12/3

---------- Forwarded message ---------
From: 山田 太郎 <Taro@Client.example>
Date: 2026年11月26日(木) 10:00
Subject: 資料作成のお願い
To: <director@secretary.example>


お世話になっております。
資料の作成をお願いします。
"""
THUNDERBIRD_JA = """よろしくお願いします。

-------- 転送メッセージ --------
件名: 資料作成のお願い
日付: Thu, 26 Nov 2026 10:00:00 +0900
差出人: 山田 太郎 <taro@client.example>
宛先: director@secretary.example

お世話になっております。
資料の作成をお願いします。
"""
OUTLOOK = """Please handle.

-----Original Message-----
From: 山田 太郎 [mailto:taro@client.example]
Sent: Thursday, November 26, 2026 10:00 AM
To: director@secretary.example
Subject: 資料作成のお願い

お世話になっております。
資料の作成をお願いします。
"""
NOTES = """FYI

----- Forwarded by Director/Secretary on 2026/11/26 10:00 -----
From: taro@client.example
Date: 2026/11/26 10:00
Subject: 資料作成のお願い

お世話になっております。
資料の作成をお願いします。
"""


@pytest.mark.parametrize(
    ("subject", "body", "new_text"),
    [
        ("Fwd: 資料作成のお願い", GMAIL, "#assign hanako\n#due 12/3"),
        ("転送: 資料作成のお願い", THUNDERBIRD_JA, "よろしくお願いします。"),
        ("FW: 資料作成のお願い", OUTLOOK, "Please handle."),
        ("Fw: 資料作成のお願い", NOTES, "FYI"),
    ],
)
def test_inline_forward_blocks(subject: str, body: str, new_text: str) -> None:
    mail = parse_mail(_plain(subject, body))
    assert mail.text == new_text
    forwarded = mail.forwarded
    assert forwarded is not None
    assert forwarded.sender is not None
    assert forwarded.sender.email == "taro@client.example"
    assert forwarded.subject == "資料作成のお願い"
    assert forwarded.date == datetime(2026, 11, 26, 10, tzinfo=JST)
    assert forwarded.text == "お世話になっております。\n資料の作成をお願いします。"


def test_outlook_reply_is_not_a_forward() -> None:
    mail = parse_mail(_plain("RE: 資料作成のお願い", OUTLOOK))
    assert mail.forwarded is None
    assert mail.text == "Please handle."


def test_plain_mail_has_no_forward() -> None:
    assert parse_mail(_plain("hello", "just text\n")).forwarded is None
