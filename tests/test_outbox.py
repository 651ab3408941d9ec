"""The outbox sender against a real aiosmtpd relay and the sent/ Maildir."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from conftest import Relay, free_port

from mailflow.outbox import MaildirSink, OutboxSender, SmtpRelay
from mailflow.store import OutboxDraft, Store, utcnow


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store(f"sqlite:///{tmp_path / 'm.db'}", tmp_path / "data").open()
    yield opened
    opened.close()


def _queue(store: Store, n: int, recipient: str = "yamada@acme.example") -> None:
    with store.transaction():
        for i in range(n):
            store.add_outbox(
                OutboxDraft(
                    kind="confirmation",
                    request_ref=None,
                    recipients=(recipient,),
                    cc=(),
                    subject=f"s{i}",
                    body_text="b",
                    reply_to="desk@x",
                    message_id=f"<mf.{i}@secretary.example>",
                    raw=f"Message-ID: <mf.{i}@x>\r\nSubject: s{i}\r\n\r\nbody\r\n".encode(),
                    attachments=(),
                    inbox_id=None,
                )
            )


def test_due_mail_goes_through_the_relay(store: Store, relay: Relay) -> None:
    _queue(store, 3)
    report = OutboxSender(store, SmtpRelay(relay.url, "desk@secretary.example")).flush()
    assert report.sent == 3
    assert [m[1] for m in relay.messages] == [["yamada@acme.example"]] * 3
    assert relay.messages[0][0] == "desk@secretary.example"
    assert {row["state"] for row in store.list_outbox()} == {"sent"}


def test_relay_down_is_retried_later_and_logged_once(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    _queue(store, 3)
    sender = OutboxSender(store, SmtpRelay(f"smtp://127.0.0.1:{free_port()}", timeout=2))
    with caplog.at_level(logging.WARNING, logger="mailflow.outbox"):
        report = sender.flush()
        sender.flush()
    assert report.sent == 0 and report.retried == 1
    assert sum("will retry" in r.message for r in caplog.records) == 1
    assert all(row["state"] == "pending" for row in store.list_outbox())
    later = utcnow() + timedelta(minutes=1)
    assert [r.id for r in store.due_outbox(later)][:1] == [1]


def test_relay_back_sends_the_backlog(store: Store, relay: Relay) -> None:
    _queue(store, 2)
    down = OutboxSender(store, SmtpRelay(f"smtp://127.0.0.1:{free_port()}", timeout=2))
    down.flush()
    up = OutboxSender(store, SmtpRelay(relay.url), clock=lambda: utcnow() + timedelta(hours=1))
    assert up.flush().sent == 2


def test_permanent_refusal_is_recorded_not_retried(store: Store, relay: Relay) -> None:
    class Refusing:
        async def handle_RCPT(self, server, session, envelope, address, options):  # type: ignore[no-untyped-def]
            return "550 5.1.1 No such user"

    from aiosmtpd.controller import Controller

    port = free_port()
    controller = Controller(Refusing(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        _queue(store, 1, recipient="nobody@acme.example")
        report = OutboxSender(store, SmtpRelay(f"smtp://127.0.0.1:{port}")).flush()
    finally:
        controller.stop()
    assert report.failed == 1
    row = store.list_outbox()[0]
    assert row["state"] == "failed" and "550" in row["last_error"]


def test_maildir_sink_writes_each_row_once(store: Store, tmp_path: Path) -> None:
    _queue(store, 2)
    sink = MaildirSink(tmp_path / "sent")
    rows = store.due_outbox(utcnow())
    for row in rows + rows:  # a crash between send and mark sends the same row again
        sink.send(row)
    assert len(list((tmp_path / "sent" / "new").iterdir())) == 2


def test_a_refused_client_mail_alerts_the_director(home: Path) -> None:
    from aiosmtpd.controller import Controller
    from mails import client_mail

    from mailflow.service import Service

    class RefuseClients:
        async def handle_RCPT(self, server, session, envelope, address, options):  # type: ignore[no-untyped-def]
            if address.endswith("@acme.example"):
                return "550 5.1.1 <yamada@acme.example>: Recipient address rejected"
            envelope.rcpt_tos.append(address)
            return "250 OK"

        async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
            return "250 OK"

    port = free_port()
    controller = Controller(RefuseClients(), hostname="127.0.0.1", port=port)
    controller.start()
    toml = home / "mailflow.toml"
    toml.write_text(
        toml.read_text(encoding="utf-8").replace(
            'smtp = ""', f'smtp = "smtp://127.0.0.1:{port}"', 1
        ),
        encoding="utf-8",
    )
    service = Service(home)
    try:
        service.store.accept(client_mail(), "smtp", "")
        service.run_once()
        service.run_once()
        rows = {row["kind"]: row for row in service.store.list_outbox()}
    finally:
        service.store.close()
        controller.stop()
    assert rows["confirmation"]["state"] == "failed"
    assert "550" in rows["confirmation"]["last_error"]
    alert = rows["bounce_alert"]
    assert alert["to"] == ["tanaka@secretary.example"] and alert["state"] == "sent"
    assert "yamada@acme.example" in alert["body_text"]
