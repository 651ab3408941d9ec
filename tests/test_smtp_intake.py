"""The SMTP/LMTP listener against real clients: 250 only after commit, 451, 552."""

from __future__ import annotations

import smtplib
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import free_port
from mails import client_mail

from mailflow.errors import StoreError
from mailflow.sources.smtp import start_listener
from mailflow.store import Accepted, Store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store(f"sqlite:///{tmp_path / 'm.db'}", tmp_path / "data").open()
    yield opened
    opened.close()


def _listen(accept, *, lmtp: bool = False, max_bytes: int = 1_000_000):  # type: ignore[no-untyped-def]
    port = free_port()
    woken: list[bool] = []
    controller = start_listener(
        "127.0.0.1",
        port,
        accept=accept,
        on_accepted=lambda: woken.append(True),
        max_bytes=max_bytes,
        lmtp=lmtp,
    )
    return controller, port, woken


def test_mail_is_committed_before_250(store: Store) -> None:
    controller, port, woken = _listen(store.accept)
    try:
        with smtplib.SMTP("127.0.0.1", port) as client:
            refused = client.sendmail(
                "yamada@acme.example", ["desk@secretary.example"], client_mail()
            )
        assert refused == {}
        assert len(store.pending()) == 1 and woken == [True]
    finally:
        controller.stop()


def test_store_down_answers_451_so_the_sender_retries(store: Store) -> None:
    def broken(raw: bytes, source: str, ref: str) -> Accepted:
        raise StoreError("disk full")

    controller, port, _ = _listen(broken)
    try:
        with smtplib.SMTP("127.0.0.1", port) as client:
            with pytest.raises(smtplib.SMTPDataError) as caught:
                client.sendmail("a@x.example", ["desk@secretary.example"], client_mail())
        assert caught.value.smtp_code == 451
    finally:
        controller.stop()


def test_oversized_mail_gets_552(store: Store) -> None:
    controller, port, _ = _listen(store.accept, max_bytes=2_000)
    try:
        with smtplib.SMTP("127.0.0.1", port) as client:
            big = client_mail(body="あ" * 5_000)
            with pytest.raises(smtplib.SMTPException) as caught:
                client.sendmail("a@x.example", ["desk@secretary.example"], big)
        assert "552" in str(caught.value)
        assert store.pending() == []
    finally:
        controller.stop()


def _lmtp_exchange(port: int, recipients: list[str], raw: bytes) -> list[bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        reader = sock.makefile("rb")
        reader.readline()
        sock.sendall(b"LHLO test\r\n")
        while reader.readline()[3:4] == b"-":
            pass
        sock.sendall(b"MAIL FROM:<yamada@acme.example>\r\n")
        reader.readline()
        for rcpt in recipients:
            sock.sendall(f"RCPT TO:<{rcpt}>\r\n".encode())
            reader.readline()
        sock.sendall(b"DATA\r\n")
        reader.readline()
        sock.sendall(raw + b"\r\n.\r\n")
        return [reader.readline().strip() for _ in recipients]


def test_lmtp_answers_once_per_recipient(store: Store) -> None:
    controller, port, _ = _listen(store.accept, lmtp=True)
    try:
        statuses = _lmtp_exchange(
            port, ["desk@secretary.example", "desk2@secretary.example"], client_mail()
        )
        assert [s[:3] for s in statuses] == [b"250", b"250"]
        assert len(store.pending()) == 1
    finally:
        controller.stop()
