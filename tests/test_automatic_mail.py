"""Nothing automatic answers something automatic; automatic mail is capped and recorded."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import deliver
from mails import client_mail

from mailflow.service import Service


@pytest.fixture
def service(any_home: Path) -> Iterator[Service]:
    running = Service(any_home)
    yield running
    running.store.close()


def _kinds(service: Service) -> Counter[str]:
    return Counter(row["kind"] for row in service.store.list_outbox())


def test_an_unknown_sender_gets_one_polite_answer_per_day(service: Service) -> None:
    stranger = [client_mail(sender="new@prospect.example", subject=f"ご相談 {i}") for i in range(3)]
    deliver(service, *stranger)
    assert _kinds(service) == {"unknown_sender": 1}
    [answer] = service.store.list_outbox()
    assert answer["to"] == ["new@prospect.example"] and "MF-" not in answer["subject"]
    assert service.store.list_requests() == []
    assert [row["state"] for row in service.store.list_quarantine()] == ["held"] * 3
    suppressions = service.store.list_suppressions()
    assert len(suppressions) == 2
    assert all("already sent" in s["reason"] for s in suppressions)


def test_auto_replies_from_a_client_get_nothing(service: Service) -> None:
    out_of_office = [
        client_mail(
            subject="自動応答: 不在にしております", extra_headers="Auto-Submitted: auto-replied\r\n"
        ),
        client_mail(subject="Out of Office", extra_headers="X-Autoreply: yes\r\n"),
        client_mail(subject="Re: x", extra_headers="Precedence: bulk\r\n"),
    ]
    deliver(service, *out_of_office)
    assert service.store.list_requests() == []
    assert service.store.list_outbox() == []


def test_a_robot_that_hides_is_capped_by_the_rate_limit(service: Service) -> None:
    """An autoresponder without any header: only the windows stop the loop."""
    storm = [client_mail(subject=f"ご連絡 {i}") for i in range(8)]
    deliver(service, *storm)
    kinds = _kinds(service)
    assert kinds["confirmation"] == 3  # 3 per 10 minutes to one client address
    assert kinds["new_request"] == 8  # staff are never capped: the director sees all
    suppressions = service.store.list_suppressions()
    assert len(suppressions) == 5
    assert all(s["recipient"] == "yamada@acme.example" for s in suppressions)
    assert "rate limit" in suppressions[0]["reason"]


def test_mail_from_ourselves_is_a_loop(service: Service) -> None:
    ours = client_mail(sender="desk@secretary.example", name="Desk")
    echoed = client_mail(extra_headers="X-Mailflow-Loop: secretary.example\r\n")
    deliver(service, ours, echoed)
    assert service.store.list_requests() == []
    assert service.store.list_outbox() == []


def _dsn(original_message_id: str, recipient: str) -> bytes:
    return (
        "From: MAILER-DAEMON@mx.acme.example (Mail Delivery System)\r\n"
        "To: desk@secretary.example\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        "Message-ID: <dsn-1@mx.acme.example>\r\nAuto-Submitted: auto-replied\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="R"\r\n\r\n'
        "--R\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        "--R\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.acme.example\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        f"Diagnostic-Code: smtp; 550 5.1.1 <{recipient}>: User unknown\r\n"
        "--R\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"From: desk@secretary.example\r\nTo: {recipient}\r\n"
        f"Message-ID: {original_message_id}\r\nSubject: [MF-0001] confirmation\r\n"
        "--R--\r\n"
    ).encode()


def test_a_bounce_of_our_mail_alerts_the_director_of_the_request(service: Service) -> None:
    deliver(service, client_mail())
    confirmation = next(r for r in service.store.list_outbox() if r["kind"] == "confirmation")
    deliver(service, _dsn(confirmation["message_id"], "yamada@acme.example"))
    alerts = [r for r in service.store.list_outbox() if r["kind"] == "bounce_alert"]
    assert len(alerts) == 1
    assert alerts[0]["to"] == ["tanaka@secretary.example"]
    assert alerts[0]["request"] == "MF-0001"
    assert "User unknown" in alerts[0]["body_text"]
    shown = service.store.show_request("MF-0001")
    assert shown is not None
    assert [e["kind"] for e in shown["events"]] == ["created", "bounce"]
    assert shown["attachments"] == []  # the returned mail is not a client file
    assert _kinds(service)["confirmation"] == 1  # nothing answered the bounce itself


def test_a_bounce_of_mail_we_never_sent_is_only_noted(service: Service) -> None:
    deliver(service, _dsn("<not-ours@elsewhere.example>", "someone@acme.example"))
    assert service.store.list_outbox() == []
    assert service.store.list_requests() == []


def test_an_oversized_mail_is_kept_and_answered_once(any_home: Path) -> None:
    toml = any_home / "mailflow.toml"
    text = toml.read_text(encoding="utf-8")
    toml.write_text(
        text.replace('max_message_size = "25MB"', "max_message_size = 4000"), encoding="utf-8"
    )
    service = Service(any_home)
    try:
        big = client_mail(subject="動画の編集", body="あ" * 5000)
        deliver(service, big, client_mail(subject="動画の編集（再送）", body="い" * 5000))
        held = service.store.list_quarantine()
        assert [row["state"] for row in held] == ["held", "held"]
        assert "too large" in held[0]["reason"]
        assert _kinds(service) == {"too_large": 1}
        assert service.store.list_requests() == []
        assert service.store.raw.get(held[0]["sha256"]) == big
    finally:
        service.store.close()


def test_window_counts_from_the_database_refuse_what_the_times_would() -> None:
    """The store counts mail after each window's start; the verdict is the same as from
    the moments themselves, at the edges too (a mail exactly a window old is out)."""
    from datetime import UTC, datetime, timedelta

    from mailflow.ratelimit import DEFAULT_WINDOWS, over_counts, over_limit, window_starts

    now = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
    for minutes in ([1, 2, 3], [1, 2, 10], [0, 0, 9.99], [*range(0, 20 * 60, 60)], []):
        earlier = [now - timedelta(minutes=m) for m in minutes]
        counts = [
            sum(1 for e in earlier if e > start) for start in window_starts(now, DEFAULT_WINDOWS)
        ]
        assert over_counts(counts, DEFAULT_WINDOWS) == over_limit(earlier, now, DEFAULT_WINDOWS)
