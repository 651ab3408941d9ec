"""Shared fixtures: real SQLite and PostgreSQL stores, a real aiosmtpd relay, instances.

PostgreSQL tests run when a server answers; with MAILFLOW_TEST_PG set (CI) they are
mandatory and fail instead of skipping.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# -- PostgreSQL -----------------------------------------------------------------------


def _pg_admin_url() -> str:
    value = os.environ.get("MAILFLOW_TEST_PG", "")
    return value if value.startswith("postgres") else DEFAULT_PG


def _pg_connect(url: str) -> Any:
    import psycopg2

    return psycopg2.connect(url, connect_timeout=3)


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A private database for this test session, dropped at the end."""
    try:
        admin = _pg_connect(_pg_admin_url())
    except Exception as exc:  # noqa: BLE001
        if os.environ.get("MAILFLOW_TEST_PG"):
            pytest.fail(f"MAILFLOW_TEST_PG is set but PostgreSQL is unreachable: {exc}")
        pytest.skip(f"PostgreSQL not available: {exc}")
    admin.autocommit = True
    name = f"mailflow_test_{uuid.uuid4().hex[:10]}"
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    admin.close()
    base = _pg_admin_url().rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        # A fresh connection: the server may have been restarted meanwhile (test_faults).
        admin = _pg_connect(_pg_admin_url())
        admin.autocommit = True
        with admin.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.close()


def _reset_pg(url: str) -> None:
    connection = _pg_connect(url)
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    connection.close()


@pytest.fixture(params=["sqlite", pytest.param("pg", marks=pytest.mark.pg)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test using this runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'mailflow.db'}"
    url: str = request.getfixturevalue("pg_database")
    _reset_pg(url)
    return url


# -- instances ------------------------------------------------------------------------


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A demo instance writing outgoing mail to data/sent/."""
    from mailflow.instance import init_instance

    directory = tmp_path / "instance"
    init_instance(directory, demo=True, force=False)
    return directory


def set_database(home: Path, url: str) -> None:
    toml = home / "mailflow.toml"
    text = toml.read_text(encoding="utf-8")
    assert "\n[database]\n" in text
    toml.write_text(
        text.replace("\n[database]\n", f'\n[database]\nurl = "{url}"\n', 1), encoding="utf-8"
    )


@pytest.fixture
def any_home(home: Path, database_url: str) -> Path:
    """The demo instance on SQLite, then on PostgreSQL."""
    if database_url.startswith("postgres"):
        set_database(home, database_url)
    return home


def listen_on_free_port(home: Path) -> int:
    """Point the instance's SMTP listener at a free loopback port; return the port."""
    port = free_port()
    toml = home / "mailflow.toml"
    text = toml.read_text(encoding="utf-8")
    toml.write_text(
        text.replace('listen = "127.0.0.1:2525"', f'listen = "127.0.0.1:{port}"'), encoding="utf-8"
    )
    return port


def deliver(service: Any, *raws: bytes) -> None:
    """Accept mails as the SMTP listener would, then process them."""
    for raw in raws:
        service.store.accept(raw, "smtp", "")
    service.desk.process_pending()


def flush_after_leases(service: Any) -> None:
    """Send what killed senders had claimed, as a sender does once their leases run out."""
    from mailflow.outbox import OutboxSender
    from mailflow.store import OUTBOX_LEASE, utcnow

    def later() -> Any:
        return utcnow() + OUTBOX_LEASE + timedelta(minutes=1)

    OutboxSender(service.store, service.sender.transport, clock=later).flush()


# -- a private Dovecot (tests/dovecot.py) -----------------------------------------------


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Any]:
    """One private Dovecot for the session; each test adds its own user."""
    from dovecot import dovecot_session

    yield from dovecot_session()


# -- a real SMTP relay ------------------------------------------------------------------


@dataclass
class Relay:
    host: str
    port: int
    messages: list[tuple[str, list[str], bytes]] = field(default_factory=list)
    arrived: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"


class _SinkHandler:
    def __init__(self, relay: Relay) -> None:
        self.relay = relay

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.relay.messages.append(
            (envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content)
        )
        self.relay.arrived.set()
        return "250 OK"


@pytest.fixture
def relay() -> Iterator[Relay]:
    """aiosmtpd on a free loopback port, recording what it receives."""
    from aiosmtpd.controller import Controller

    sink = Relay("127.0.0.1", free_port())
    controller = Controller(_SinkHandler(sink), hostname=sink.host, port=sink.port)
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()
