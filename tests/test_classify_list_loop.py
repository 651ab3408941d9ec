"""Classification of mailing-list mail, of mail from the desk itself, and of bounces."""

from __future__ import annotations

import pytest

from mailflow.classify import classify, is_automatic
from mailflow.model import Classification
from mailflow.parse import parse_mail

DESK_DOMAIN = "secretary.example"
DESK = "desk@secretary.example"


def _mail(headers: str = "", sender: str = "taro@client.example") -> bytes:
    head = (
        f"From: {sender}\r\nTo: {DESK}\r\nMessage-ID: <m1@client.example>\r\n"
        "Subject: =?UTF-8?B?6LOH5paZ?=\r\n"
    )
    return (head + headers + "Content-Type: text/plain; charset=utf-8\r\n\r\nbody\r\n").encode()


@pytest.mark.parametrize(
    "headers",
    [
        "List-Id: Users <users.lists.example.org>\r\n",
        "List-Unsubscribe: <mailto:leave@lists.example.org>\r\n",
        "Precedence: list\r\n",
        "List-Id: <news.example.com>\r\nPrecedence: bulk\r\n",
    ],
)
def test_list_mail_is_list_and_never_answered(headers: str) -> None:
    mail = parse_mail(_mail(headers))
    kind, reason = classify(mail, desk_domain=DESK_DOMAIN)
    assert kind is Classification.LIST
    assert "list" in reason.lower()
    assert is_automatic(mail)


def test_autoresponse_from_a_list_member_is_still_an_auto_reply() -> None:
    mail = parse_mail(_mail("List-Id: <news.example.com>\r\nAuto-Submitted: auto-replied\r\n"))
    assert classify(mail, desk_domain=DESK_DOMAIN)[0] is Classification.AUTO_REPLY


def test_bulk_without_list_headers_stays_auto_reply() -> None:
    mail = parse_mail(_mail("Precedence: bulk\r\n"))
    assert classify(mail, desk_domain=DESK_DOMAIN)[0] is Classification.AUTO_REPLY


@pytest.mark.parametrize(
    "sender", [DESK, "Desk <DESK@Secretary.Example>", "desk+MF-12.a1b2c3@secretary.example"]
)
def test_mail_from_the_desk_address_is_a_loop(sender: str) -> None:
    mail = parse_mail(_mail(sender=sender))
    kind, reason = classify(mail, desk_domain=DESK_DOMAIN, desk_address=DESK)
    assert kind is Classification.LOOP
    assert "desk address" in reason


def test_desk_address_is_optional_and_precise() -> None:
    from_desk = parse_mail(_mail(sender=DESK))
    # Without desk_address the old behaviour holds (backwards compatible signature).
    assert classify(from_desk, desk_domain=DESK_DOMAIN)[0] is Classification.HUMAN
    colleague = parse_mail(_mail(sender="desk.admin@secretary.example"))
    assert classify(colleague, desk_domain=DESK_DOMAIN, desk_address=DESK)[0] is (
        Classification.HUMAN
    )


def test_plain_text_bounce_is_classified_from_its_report() -> None:
    raw = (
        b"From: MAILER-DAEMON@mx.example.net\r\nTo: desk@secretary.example\r\n"
        b"Subject: failure notice\r\n\r\n"
        b"Hi. This is the qmail-send program at mx.example.net.\r\n"
        b"I'm afraid I wasn't able to deliver your message to the following addresses.\r\n"
        b"This is a permanent error; I've given up. Sorry it didn't work out.\r\n\r\n"
        b"<yamada@acme.example>:\r\nSorry, no mailbox here by that name. (#5.1.1)\r\n\r\n"
        b"--- Below this line is a copy of the message.\r\n\r\n"
        b"Message-ID: <out-7@secretary.example>\r\nFrom: desk@secretary.example\r\n"
    )
    mail = parse_mail(raw)
    kind, reason = classify(mail, desk_domain=DESK_DOMAIN, desk_address=DESK)
    assert kind is Classification.BOUNCE
    assert "yamada@acme.example" in reason
    assert mail.bounce is not None
    assert mail.bounce.original_message_id == "<out-7@secretary.example>"
