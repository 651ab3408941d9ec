"""Classification: human mail versus autoresponders, bounces and our own mail."""

from __future__ import annotations

import pytest

from mailflow.classify import classify, is_automatic
from mailflow.model import Classification
from mailflow.parse import parse_mail

DESK = "secretary.example"


def _mail(headers: str, body: str = "body") -> bytes:
    base = "From: taro@client.example\r\nTo: desk@secretary.example\r\n"
    base += "Message-ID: <m1@client.example>\r\nSubject: 資料\r\n"
    return (base + headers + "Content-Type: text/plain; charset=utf-8\r\n\r\n" + body).encode()


def _classify(headers: str, **overrides: str) -> tuple[Classification, str]:
    raw = _mail(headers)
    for old, new in overrides.items():
        raw = raw.replace(old.encode(), new.encode())
    return classify(parse_mail(raw), desk_domain=DESK)


def test_human() -> None:
    kind, reason = _classify("")
    assert kind is Classification.HUMAN
    assert reason
    assert not is_automatic(parse_mail(_mail("")))


@pytest.mark.parametrize(
    "headers",
    [
        "Auto-Submitted: auto-replied\r\n",
        "Auto-Submitted: auto-generated\r\n",
        "X-Autoreply: yes\r\n",
        "X-Autorespond: yes\r\n",
        "Precedence: bulk\r\n",
        "Precedence: junk\r\n",
        "Precedence: auto_reply\r\n",
        "X-Auto-Response-Suppress: All\r\n",
        "X-Auto-Response-Suppress: DR, OOF, AutoReply\r\n",
    ],
)
def test_auto_reply_headers(headers: str) -> None:
    assert _classify(headers)[0] is Classification.AUTO_REPLY
    assert is_automatic(parse_mail(_mail(headers)))


@pytest.mark.parametrize(
    "subject",
    [
        "Auto: 資料",
        "Automatic reply: 資料",
        "自動応答: 資料",
        "Out of Office: x",
        "不在通知",
        "【不在】",
    ],
)
def test_auto_reply_subjects(subject: str) -> None:
    kind, reason = _classify("", **{"Subject: 資料": f"Subject: {subject}"})
    assert kind is Classification.AUTO_REPLY
    assert "subject" in reason


@pytest.mark.parametrize("subject", ["不在時の対応について", "Re: Auto insurance quote"])
def test_ordinary_subjects_stay_human(subject: str) -> None:
    assert _classify("", **{"Subject: 資料": f"Subject: {subject}"})[0] is Classification.HUMAN


def test_auto_submitted_no_is_human() -> None:
    assert _classify("Auto-Submitted: no\r\n")[0] is Classification.HUMAN


def test_bounce_multipart_report() -> None:
    raw = (
        b"From: Mail Delivery System <MAILER-DAEMON@mx.example>\r\nSubject: Undelivered\r\n"
        b"Content-Type: multipart/report; report-type=delivery-status; boundary=B\r\n\r\n"
        b"--B\r\nContent-Type: text/plain\r\n\r\nfailed\r\n"
        b"--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        b"Reporting-MTA: dns; mx.example\r\n\r\nFinal-Recipient: rfc822; x@y\r\n"
        b"Action: failed\r\nStatus: 5.1.1\r\n\r\n--B--\r\n"
    )
    mail = parse_mail(raw)
    kind, reason = classify(mail, desk_domain=DESK)
    assert kind is Classification.BOUNCE
    assert "delivery-status" in reason
    assert is_automatic(mail)
    assert mail.attachments == ()  # the status part is report data, not a file


@pytest.mark.parametrize("sender", ["MAILER-DAEMON@mx.example", "postmaster@mx.example"])
def test_bounce_from_daemon(sender: str) -> None:
    kind, _ = _classify("", **{"From: taro@client.example": f"From: {sender}"})
    assert kind is Classification.BOUNCE


@pytest.mark.parametrize(
    "subject",
    ["Undelivered Mail Returned to Sender", "Delivery Status Notification (Failure)",
     "配信不能: 資料", "Returned mail: see transcript"],
)  # fmt: skip
def test_bounce_null_return_path_and_subject(subject: str) -> None:
    kind, _ = _classify("Return-Path: <>\r\n", **{"Subject: 資料": f"Subject: {subject}"})
    assert kind is Classification.BOUNCE


def test_null_return_path_alone_is_not_a_bounce() -> None:
    assert _classify("Return-Path: <>\r\n")[0] is Classification.HUMAN


def test_loop_on_our_message_id_or_control_header() -> None:
    kind, reason = _classify("", **{"<m1@client.example>": "<mf.42@secretary.example>"})
    assert kind is Classification.LOOP
    assert "ours" in reason
    # Staff write from the desk's domain too: only ids we made count as ours.
    staff = _classify("", **{"<m1@client.example>": "<out-42@secretary.example>"})
    assert staff[0] is Classification.HUMAN
    assert _classify("X-Mailflow-Ref: MF-1\r\n")[0] is Classification.LOOP
    assert _classify("", **{"<m1@client.example>": "<x@notsecretary.example>"})[0] is (
        Classification.HUMAN
    )


def test_loop_wins_over_auto_reply() -> None:
    kind, _ = _classify("Auto-Submitted: auto-generated\r\nX-Mailflow-Notice: reminder\r\n")
    assert kind is Classification.LOOP
