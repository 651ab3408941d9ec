"""The outbox sender against a real aiosmtpd relay and the sent/ Maildir."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import Relay, free_port

from mailflow.outbox import MaildirSink, OutboxSender, SmtpRelay
from mailflow.store import OutboxDraft, Store, utcnow

# A head that is UTF-8 (RFC 6532), as compose() writes it for this address.
UTF8_MAIL = "To: Jøran <jøran@example.com>\r\nSubject: s\r\n\r\nbody\r\n".encode()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store(f"sqlite:///{tmp_path / 'm.db'}", tmp_path / "data").open()
    yield opened
    opened.close()


def _queue(
    store: Store, n: int, recipient: str = "yamada@acme.example", raw: bytes | None = None
) -> None:
    queued = len(store.list_outbox())  # Message-IDs stay unique over several calls
    with store.transaction():
        for i in range(queued, queued + n):
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
                    raw=raw or f"Message-ID: <mf.{i}@x>\r\nSubject: s{i}\r\n\r\nbody\r\n".encode(),
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


class _Recording:
    """A relay handler that also records whether each mail came with SMTPUTF8."""

    def __init__(self) -> None:
        self.mails: list[tuple[str, list[str], bool, bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        mail = (envelope.mail_from, list(envelope.rcpt_tos), envelope.smtp_utf8)
        self.mails.append((*mail, envelope.original_content))
        return "250 OK"


@contextmanager
def _relay(smtputf8: bool) -> Iterator[tuple[str, _Recording]]:
    """aiosmtpd offering SMTPUTF8 (RFC 6531) or not. Its Controller offers it unless told
    otherwise, so the ``relay`` fixture of conftest does too."""
    from aiosmtpd.controller import Controller

    handler, port = _Recording(), free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, enable_SMTPUTF8=smtputf8)
    controller.start()
    try:
        yield f"smtp://127.0.0.1:{port}", handler
    finally:
        controller.stop()


def _flush(store: Store, url: str) -> tuple[int, int, int]:
    report = OutboxSender(store, SmtpRelay(url, "desk@secretary.example")).flush()
    return report.sent, report.retried, report.failed


def test_an_idna_domain_goes_into_the_envelope_in_a_labels(store: Store) -> None:
    _queue(store, 1, recipient="jb@julián.example.com")
    with _relay(smtputf8=False) as (url, relay):
        assert _flush(store, url) == (1, 0, 0)
    assert relay.mails[0][1:3] == (["jb@xn--julin-0qa.example.com"], False)


@pytest.mark.parametrize(
    ("recipient", "envelope"),
    [
        ("jøran@example.com", "jøran@example.com"),
        ("jdöe@mächine.example", "jdöe@xn--mchine-bua.example"),
    ],
)
def test_a_utf8_local_part_is_sent_with_smtputf8(
    store: Store, recipient: str, envelope: str
) -> None:
    _queue(store, 1, recipient=recipient, raw=UTF8_MAIL)
    with _relay(smtputf8=True) as (url, relay):
        assert _flush(store, url) == (1, 0, 0)
    assert relay.mails == [("desk@secretary.example", [envelope], True, UTF8_MAIL)]


def test_ascii_mail_asks_no_smtputf8(store: Store) -> None:
    _queue(store, 1)
    with _relay(smtputf8=True) as (url, relay):
        assert _flush(store, url) == (1, 0, 0)
    assert relay.mails[0][2] is False


@pytest.mark.parametrize(
    ("recipient", "needed_for"),
    [
        ("jøran@example.com", "jøran@example.com"),
        # An ASCII envelope, but a head that is UTF-8 (say, the desk's own local part).
        ("yamada@acme.example", "the UTF-8 headers of the mail"),
    ],
)
def test_a_relay_without_smtputf8_fails_that_mail_for_good(
    store: Store, recipient: str, needed_for: str
) -> None:
    _queue(store, 1, recipient=recipient, raw=UTF8_MAIL)
    _queue(store, 1)
    with _relay(smtputf8=False) as (url, relay):
        assert _flush(store, url) == (1, 0, 1)
    failed, sent = store.list_outbox()
    assert failed["state"] == "failed" and sent["state"] == "sent"
    where = url.removeprefix("smtp://")
    assert failed["last_error"] == (
        f"relay {where} does not support SMTPUTF8, needed for {needed_for}"
    )
    assert [mail[1] for mail in relay.mails] == [["yamada@acme.example"]]
    assert store.due_outbox(utcnow() + timedelta(days=3)) == []  # never retried


def test_maildir_sink_keeps_a_utf8_head_byte_for_byte(store: Store, tmp_path: Path) -> None:
    _queue(store, 1, recipient="jøran@example.com", raw=UTF8_MAIL)
    sink = MaildirSink(tmp_path / "sent")
    [row] = store.due_outbox(utcnow())
    sink.send(row)
    assert [f.read_bytes() for f in (tmp_path / "sent" / "new").iterdir()] == [UTF8_MAIL]


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
