"""Fault suite (issue 7): the desk loses nothing and does nothing twice when its parts fail.

Every fault is produced for real where that is cheap: a relay port that is closed and
then served again, a private Dovecot restarted in the middle of a drain, another SQLite
connection holding ``BEGIN EXCLUSIVE``, a PostgreSQL cluster restart, a full tmpfs
mounted over ``data/raw`` (or, without mount rights, an ``open`` that raises ENOSPC),
``kill -9`` of ``mailflow run --once``, and a 5,000-mail loop with an out-of-office
robot. Clocks are advanced instead of sleeping. Run with ``pytest -m faults``.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import random
import re
import shutil
import signal
import smtplib
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import peewee
import pytest
from conftest import Relay, _SinkHandler, flush_after_leases, free_port, set_database
from mails import client_mail, english_mail

import mailflow.store
from mailflow.errors import StoreError
from mailflow.outbox import BACKOFF, OutboxSender, SmtpRelay
from mailflow.service import Service
from mailflow.sources.imap import ImapSource, MailboxError, Tuning
from mailflow.sources.smtp import start_listener
from mailflow.store import OUTBOX_LEASE, Accepted, utcnow

pytestmark = pytest.mark.faults

DESK = "desk@secretary.example"
MAILFLOW = [sys.executable, "-m", "mailflow"]
_MESSAGE_ID = re.compile(rb"^Message-ID:[ \t]*(\S+)", re.IGNORECASE | re.MULTILINE)


# -- helpers --------------------------------------------------------------------------------


def _request_mail(index: int, tag: str) -> bytes:
    """A request from its own contact of Delta Trading (an ``@domain`` client): distinct
    senders, so the per-recipient limit on automatic mail never comes into play."""
    make = client_mail if index % 3 else english_mail
    return make(
        sender=f"staff{index}@delta-trading.example",
        subject=f"依頼 {tag} {index}",
        message_id=f"<{tag}-{index}@delta-trading.example>",
    )


def _use_relay(home: Path, url: str) -> None:
    toml = home / "mailflow.toml"
    text = toml.read_text(encoding="utf-8")
    assert 'smtp = ""' in text
    toml.write_text(text.replace('smtp = ""', f'smtp = "{url}"', 1), encoding="utf-8")


def _use_imap(home: Path, dovecot: Any, user: str) -> None:
    toml = home / "mailflow.toml"
    toml.write_text(
        toml.read_text(encoding="utf-8")
        + f'\n[[imap]]\nname = "desk"\nhost = "{dovecot.host}"\nport = {dovecot.port}\n'
        f'tls = "none"\nusername = "{user}"\npassword = "{dovecot.passwords[user]}"\n'
        'folder = "INBOX"\nprocessed_folder = "mailflow/processed"\n',
        encoding="utf-8",
    )


def _message_ids(raws: Sequence[bytes]) -> Counter[bytes]:
    found = (_MESSAGE_ID.search(raw) for raw in raws)
    return Counter(match.group(1) for match in found if match)


def _sink_ids(relay: Relay) -> Counter[bytes]:
    return _message_ids([raw for _, _, raw in relay.messages])


@contextlib.contextmanager
def _sink_on(port: int) -> Iterator[Relay]:
    """An aiosmtpd relay sink on a given port (the one the desk was told to use)."""
    from aiosmtpd.controller import Controller

    sink = Relay("127.0.0.1", port)
    controller = Controller(_SinkHandler(sink), hostname=sink.host, port=port)
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()


@contextlib.contextmanager
def _listener(service: Service) -> Iterator[int]:
    """The SMTP intake of ``service`` on a free port, as the daemon starts it."""
    port = free_port()
    controller = start_listener(
        "127.0.0.1",
        port,
        accept=service.store.accept,
        on_accepted=lambda: None,
        max_bytes=service.config.settings.max_message_bytes,
    )
    try:
        yield port
    finally:
        controller.stop()


def _smtp_send(port: int, raw: bytes) -> tuple[int, bytes | str]:
    """Hand one mail to the listener as an MTA would: the final reply code and text."""
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        try:
            client.sendmail("mta@delta-trading.example", [DESK], raw)
        except smtplib.SMTPDataError as refused:
            return refused.smtp_code, refused.smtp_error
    return 250, b""


def _kinds(service: Service) -> Counter[str]:
    return Counter(row["kind"] for row in service.store.list_outbox())


# -- 1. relay down for a while, then back -------------------------------------------------


def test_relay_down_then_back_retries_and_sends_every_mail_once(
    home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    count = 12
    service = Service(home)
    try:
        service.store.accept_many([(_request_mail(i, "relay"), "smtp", "") for i in range(count)])
        service.desk.process_pending()
        queued = {row["message_id"].encode() for row in service.store.list_outbox()}
        assert len(queued) == 2 * count  # a confirmation and a director notice each

        port = free_port()  # nothing listens here yet: the relay is down
        start = utcnow()
        now = [start]
        sender = OutboxSender(
            service.store, SmtpRelay(f"smtp://127.0.0.1:{port}", DESK, timeout=5), lambda: now[0]
        )
        with caplog.at_level(logging.INFO, logger="mailflow.outbox"):
            for attempt in range(2):  # the outage outlasts two backoff periods
                report = sender.flush()
                assert (report.sent, report.retried, report.failed) == (0, 1, 0)
                rows = service.store.list_outbox()
                assert {row["state"] for row in rows} == {"pending"}, "retried, never failed"
                now[0] += BACKOFF[attempt] + timedelta(seconds=1)
            assert now[0] - start < OUTBOX_LEASE

            with _sink_on(port) as sink:  # the relay is back on the same port
                # Past the backoff, well inside the outbox lease: mail that the first
                # flush claimed but never tried must not wait for the lease to run out.
                report = sender.flush()
                assert (report.sent, report.retried, report.failed) == (2 * count, 0, 0)
                assert sender.flush().sent == 0

        outages = [r for r in caplog.records if "will retry" in r.getMessage()]
        assert len(outages) == 1, "one outage, one warning"
        assert sum("reachable again" in r.getMessage() for r in caplog.records) == 1
        arrived = _sink_ids(sink)
        assert set(arrived) == queued
        assert max(arrived.values()) == 1, "a mail arrived twice"
        assert {row["state"] for row in service.store.list_outbox()} == {"sent"}
    finally:
        service.store.close()


# -- 2. IMAP server restarted mid-drain ------------------------------------------------------


@pytest.mark.imap
@pytest.mark.parametrize("when", ["between_commit_and_move", "while_fetching"])
def test_imap_restart_mid_drain_processes_every_mail_once(
    home: Path, dovecot: Any, when: str
) -> None:
    count = 300
    user = dovecot.add_user()
    _use_imap(home, dovecot, user)
    dovecot.append_many(user, "INBOX", [_request_mail(i, "restart") for i in range(count)])
    service = Service(home)
    try:
        settings = service.config.settings.imap[0]
        tuning = Tuning(batch_size=20, timeout=10)
        batches = 0
        restarted = threading.Event()
        committed = threading.Event()

        def accept_many(messages: Sequence[tuple[bytes, str, str]]) -> list[Accepted]:
            nonlocal batches
            results = service.store.accept_many(messages)
            batches += 1
            if batches == 4:
                if when == "between_commit_and_move":
                    # Committed, not yet moved: the server goes away right here.
                    dovecot.restart()
                    restarted.set()
                else:
                    committed.set()
            if when == "while_fetching" and not restarted.is_set():
                time.sleep(0.05)  # leave the restart time to land inside a FETCH
            return results

        source = ImapSource(settings, tuning=tuning)
        errors: list[BaseException] = []

        def drain() -> None:
            try:
                source.drain(accept_many)
            except BaseException as error:  # noqa: BLE001 - inspected below
                errors.append(error)
            finally:
                source.close()

        # Dovecot is (re)started from the main thread only: PR_SET_PDEATHSIG ties the
        # server to the thread that started it, and would stop it when a worker ends.
        if when == "between_commit_and_move":
            drain()
        else:
            thread = threading.Thread(target=drain)
            thread.start()
            assert committed.wait(30)
            dovecot.restart()
            restarted.set()
            thread.join(60)
            assert not thread.is_alive()
        assert restarted.is_set()
        assert len(errors) == 1 and isinstance(errors[0], MailboxError), errors
        assert len(dovecot.list_uids(user, "INBOX")) > 0, "the drain was cut short"

        report = service.run_once(drain_mailboxes=True)  # `mailflow run --once`
        assert report.failed_mailboxes == {}
        assert service.run_once(drain_mailboxes=True).processed == []

        assert dovecot.list_uids(user, "INBOX") == []
        moved = dovecot.fetch_all(user, "mailflow.processed")
        on_server = _message_ids([bytes(item[b"BODY[]"]) for item in moved.values()])
        assert len(on_server) == count and max(on_server.values()) == 1, "duplicated on server"
        assert service.store.counts()["inbox"] == count
        requests = service.store.list_requests()
        assert len(requests) == count
        assert len({r["subject"] for r in requests}) == count
        assert _kinds(service) == {"confirmation": count, "new_request": count}
    finally:
        service.store.close()


# -- 3. SQLite locked; PostgreSQL restarted ---------------------------------------------------


@pytest.mark.parametrize(
    ("busy_timeout", "expected"),
    [(10.0, "250 after the commit"), (0.3, "451 then 250 on retry")],
    ids=["waits", "refuses"],
)
def test_sqlite_locked_smtp_answers_250_after_commit_or_451(
    home: Path, busy_timeout: float, expected: str
) -> None:
    hold = 2.0
    service = Service(home)
    database = service.store.database
    assert isinstance(database, peewee.SqliteDatabase)
    database.timeout = busy_timeout  # the listener thread connects with it
    try:
        service.store.accept(_request_mail(0, "locked"), "smtp", "")  # waiting to be processed
        with _listener(service) as port:
            locker = sqlite3.connect(
                service.config.settings.db_path, isolation_level=None, check_same_thread=False
            )
            locker.execute("BEGIN EXCLUSIVE")
            locked_at = time.monotonic()
            released = threading.Event()

            def release() -> None:
                time.sleep(hold)
                locker.execute("COMMIT")
                released.set()

            releaser = threading.Thread(target=release)
            releaser.start()
            if busy_timeout < hold:
                # A processing round while the lock is held fails as a whole ...
                with pytest.raises(StoreError):
                    service.run_once()
            code, _text = _smtp_send(port, _request_mail(1, "locked"))
            answered_at = time.monotonic()
            if expected.startswith("250"):
                assert code == 250
                assert released.is_set() and answered_at - locked_at >= hold
            else:
                assert code == 451 and not released.is_set()
                releaser.join()
                assert _smtp_send(port, _request_mail(1, "locked"))[0] == 250
            releaser.join()
            locker.close()
        # ... and the next round processes everything: nothing was lost.
        report = service.run_once()
        assert len(report.processed) == 2
        assert service.store.counts()["inbox"] == 2
        assert len(service.store.list_requests()) == 2
        assert _kinds(service)["confirmation"] == 2
    finally:
        service.store.close()


def _postgres_cluster(url: str) -> tuple[str, str]:
    """The (version, name) of the local cluster serving ``url``; skip if there is none."""
    if shutil.which("pg_lsclusters") is None or shutil.which("pg_ctlcluster") is None:
        pytest.skip("no pg_ctlcluster: cannot restart PostgreSQL here")
    port = re.search(r":(\d+)/", url)
    wanted = port.group(1) if port else "5432"
    listing = subprocess.run(["pg_lsclusters", "--no-header"], capture_output=True, text=True)
    for line in listing.stdout.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[2] == wanted and fields[3].startswith("online"):
            return fields[0], fields[1]
    pytest.skip(f"no local online cluster on port {wanted}")


def _restart_postgres(cluster: tuple[str, str]) -> None:
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", *cluster, "restart"],
        check=True,
        capture_output=True,
        timeout=60,
    )


@pytest.fixture
def pg_home(home: Path, pg_database: str) -> Path:
    from conftest import _reset_pg

    _reset_pg(pg_database)
    set_database(home, pg_database)
    return home


def _accept_and_restart(home: Path, pg_database: str) -> Service:
    service = Service(home)
    cluster = _postgres_cluster(pg_database)
    service.store.accept(_request_mail(0, "pg"), "smtp", "")
    _restart_postgres(cluster)
    return service


def _rounds(service: Service, rounds: int) -> list[BaseException]:
    """Run rounds as the daemon does; what a round raised is collected, not fatal."""
    errors: list[BaseException] = []
    for _ in range(rounds):
        try:
            service.run_once()
        except Exception as error:  # noqa: BLE001 - the fault under test
            errors.append(error)
    return errors


@pytest.mark.pg
def test_postgres_restart_loses_nothing(pg_home: Path, pg_database: str) -> None:
    service = _accept_and_restart(pg_home, pg_database)
    try:
        _rounds(service, 2)
        late = _request_mail(1, "pg")
        with _listener(service) as port:  # a mail arriving now: 250 only if it is stored
            code = _smtp_send(port, late)[0]
        assert code in {250, 451}
    finally:
        service.store.close()
    # The daemon, started again (systemd Restart=on-failure), finds the mail and does it
    # once; the sending MTA retries what got 451.
    again = Service(pg_home)
    try:
        if code == 451:
            with _listener(again) as port:
                assert _smtp_send(port, late)[0] == 250
        again.run_once()
        again.run_once()
        subjects = sorted(r["subject"] for r in again.store.list_requests())
        assert subjects == ["依頼 pg 0", "依頼 pg 1"]
        assert again.store.list_quarantine() == []
        assert _kinds(again) == {"confirmation": 2, "new_request": 2}
    finally:
        again.store.close()


@pytest.mark.pg
def test_postgres_restart_the_running_desk_reconnects(pg_home: Path, pg_database: str) -> None:
    service = _accept_and_restart(pg_home, pg_database)
    try:
        # At most the first round after the restart may fail; the next one reconnects.
        errors = _rounds(service, 3)
        assert len(errors) <= 1, errors
        assert [r["subject"] for r in service.store.list_requests()] == ["依頼 pg 0"]
        with _listener(service) as port:
            assert _smtp_send(port, _request_mail(1, "pg"))[0] == 250
        service.run_once()
        assert len(service.store.list_requests()) == 2
    finally:
        service.store.close()


# -- 4. disk full while storing raw mail ----------------------------------------------------


@contextlib.contextmanager
def _full_disk(raw_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], None]]:
    """Make writes under ``raw_dir`` fail with ENOSPC; yields ``free()`` to end it.

    As root, a 1 MB tmpfs is mounted over ``raw_dir`` and filled up (a real ENOSPC from
    the kernel); elsewhere ``open`` in mailflow.store hands out files whose writes fail.
    """
    raw_dir.mkdir(parents=True, exist_ok=True)
    mounted = (
        os.geteuid() == 0
        and shutil.which("mount") is not None
        and subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(raw_dir)],
            capture_output=True,
        ).returncode
        == 0
    )
    if not mounted:
        yield _failing_open(raw_dir, monkeypatch)
        return
    try:
        filler = raw_dir / "filler"
        descriptor = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while os.write(descriptor, b"\0" * 4096):
                pass
        except OSError as full:
            assert full.errno == errno.ENOSPC
        finally:
            os.close(descriptor)
        yield filler.unlink
    finally:
        subprocess.run(["umount", "-l", str(raw_dir)], check=False)


def _failing_open(raw_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """Without mount rights: files opened for writing in ``raw_dir`` refuse every write."""
    real_open = open

    class Full:
        def __init__(self, path: Any, mode: str) -> None:
            self._handle = real_open(path, mode)

        def write(self, data: bytes) -> int:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def __getattr__(self, name: str) -> Any:
            return getattr(self._handle, name)

        def __enter__(self) -> Full:
            return self

        def __exit__(self, *exc: object) -> None:
            self._handle.close()

    def full_open(path: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if "w" in mode and Path(path).parent == raw_dir:
            return Full(path, mode)
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr(mailflow.store, "open", full_open, raising=False)
    return monkeypatch.undo


def _mailbox(dovecot: Any, user: str) -> dict[int, tuple[set[bytes], bytes]]:
    """INBOX as UID → (flags, bytes); \\Recent is per session, not a change anyone made."""
    return {
        uid: ({bytes(f) for f in item[b"FLAGS"]} - {rb"\Recent"}, bytes(item[b"BODY[]"]))
        for uid, item in dovecot.fetch_all(user, "INBOX").items()
    }


@pytest.mark.imap
def test_disk_full_answers_451_moves_nothing_and_loses_nothing(
    home: Path, dovecot: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    count = 20
    user = dovecot.add_user()
    _use_imap(home, dovecot, user)
    dovecot.append_many(user, "INBOX", [_request_mail(i, "full") for i in range(count)])
    before = _mailbox(dovecot, user)
    smtp_mail = _request_mail(count, "full")
    service = Service(home)
    try:
        with _full_disk(service.store.raw.root, monkeypatch) as free, _listener(service) as port:
            code, text = _smtp_send(port, smtp_mail)
            assert code == 451, text  # the sending MTA keeps the mail and retries
            report = service.run_once(drain_mailboxes=True)
            assert isinstance(report.failed_mailboxes.get("desk"), StoreError)
            assert report.processed == []
            # Nothing moved, nothing flagged on the server.
            assert _mailbox(dovecot, user) == before
            assert dovecot.list_uids(user, "mailflow.processed") == []
            assert service.store.counts()["inbox"] == 0

            assert list(service.store.raw.root.glob(".*.tmp")) == [], "half-written files"
            free()  # space comes back
            assert _smtp_send(port, smtp_mail)[0] == 250
            report = service.run_once(drain_mailboxes=True)
            assert report.failed_mailboxes == {}
            assert len(report.processed) == count + 1
        assert dovecot.list_uids(user, "INBOX") == []
        assert len(dovecot.list_uids(user, "mailflow.processed")) == count
        assert service.store.counts()["inbox"] == count + 1
        assert len(service.store.list_requests()) == count + 1
        assert _kinds(service) == {"confirmation": count + 1, "new_request": count + 1}
    finally:
        service.store.close()


# -- 5. kill -9 at 10 random points of a 500-message drain ---------------------------------


def _mailflow(home: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*MAILFLOW, "--home", str(home), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _json(home: Path, *args: str) -> Any:
    done = subprocess.run(
        [*MAILFLOW, "--home", str(home), *args, "--json"], capture_output=True, check=True
    )
    return json.loads(done.stdout)


def _phase(home: Path, dovecot: Any, user: str) -> str:
    """Where the run about to be killed is, read from the outside (a rough picture)."""
    database = home / "data" / "mailflow.db"
    try:
        with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
            waiting = db.execute("SELECT count(*) FROM inbox_item WHERE state = 'accepted'")
            unsent = db.execute("SELECT count(*) FROM outbox_item WHERE state = 'pending'")
            counts = (waiting.fetchone()[0], unsent.fetchone()[0])
    except sqlite3.Error:
        return "start"
    if dovecot.list_uids(user, "INBOX"):
        return "drain"
    if counts[0]:
        return "process"
    return "send" if counts[1] else "done"


@pytest.mark.imap
def test_kill_9_at_ten_points_of_a_500_mail_drain(
    home: Path, dovecot: Any, relay: Relay, record_property: Callable[[str, object], None]
) -> None:
    count = 500
    user = dovecot.add_user()
    _use_imap(home, dovecot, user)
    _use_relay(home, relay.url)
    mails = [_request_mail(i, "kill") for i in range(count)]

    # Mail keeps arriving while the desk is killed again and again: each run finds a
    # tenth of the 500 waiting, so the kills land in the drain, in processing and in
    # sending, not only in whatever the first run left over.
    chance = random.Random(20261127)
    kills = 0
    phases: Counter[str] = Counter()
    for start in range(0, count, count // 10):
        dovecot.append_many(user, "INBOX", mails[start : start + count // 10])
        process = _mailflow(home, "run", "--once")
        # Start-up takes about half a second; a run over 50 mails about as long again.
        time.sleep(chance.uniform(0.4, 1.2))
        if process.poll() is None:
            kills += 1
            phases[_phase(home, dovecot, user)] += 1
        process.send_signal(signal.SIGKILL)
        process.wait()
    finished = subprocess.run(
        [*MAILFLOW, "--home", str(home), "run", "--once"], capture_output=True, timeout=300
    )
    assert finished.returncode == 0, finished.stderr.decode(errors="replace")
    # How many runs are still busy when the kill comes depends on the machine's speed.
    assert kills >= 3, f"only {kills} runs were still working when killed: {dict(phases)}"

    # Rows a killed sender had claimed wait for their lease to run out; then they go.
    service = Service(home)
    try:
        flush_after_leases(service)
        outbox = service.store.list_outbox()
        inbox_rows = service.store.counts()["inbox"]
    finally:
        service.store.close()

    assert dovecot.list_uids(user, "INBOX") == []
    assert len(dovecot.list_uids(user, "mailflow.processed")) == count
    assert inbox_rows == count
    requests = _json(home, "requests", "list")
    assert sorted(r["subject"] for r in requests) == sorted(f"依頼 kill {i}" for i in range(count))
    assert Counter(row["kind"] for row in outbox) == {"confirmation": count, "new_request": count}
    assert {row["state"] for row in outbox} == {"sent"}

    arrived = _sink_ids(relay)
    assert set(arrived) == {row["message_id"].encode() for row in outbox}
    # A kill between the relay's 250 and the commit of "sent" is the one window no sender
    # can close: that row goes again — with its own Message-ID, so the copy is
    # recognisable — at most one row per kill.
    again = {mid: n for mid, n in arrived.items() if n > 1}
    assert sum(n - 1 for n in again.values()) <= kills, again
    copies: dict[bytes, set[bytes]] = {}
    for _, _, raw in relay.messages:
        found = _MESSAGE_ID.search(raw)
        if found and found.group(1) in again:
            copies.setdefault(found.group(1), set()).add(raw)
    assert all(len(versions) == 1 for versions in copies.values()), "a resent mail changed"
    resent = sum(n - 1 for n in again.values())
    record_property("kills", kills)
    record_property("resent_after_kill", resent)
    print(f"kill -9: {kills} kills {dict(phases)}, {len(relay.messages)} sent, {resent} again")


# -- 6. a 5,000-mail auto-reply storm with an out-of-office robot --------------------------

ROBOT = "yamada@acme.example"  # a client's own contact address: the robot hides behind it
_REF = re.compile(r"\s*\[MF-\d+\]\s*")


def _robot_reply(to_desk: dict[str, Any], style: str, serial: int) -> bytes:
    """The robot's answer to one desk mail."""
    subject = str(to_desk["subject"])
    if style == "polite":  # RFC 3834: says what it is
        return client_mail(
            sender=ROBOT,
            subject=f"自動応答: {subject}",
            body="ただいま不在にしております。\n",
            in_reply_to=to_desk["message_id"],
            message_id=f"<robot-{serial}@acme.example>",
            extra_headers="Auto-Submitted: auto-replied\r\n",
        )
    quoted = "".join(f"> {line}\n" for line in str(to_desk["body_text"]).splitlines()[:5])
    if style == "hiding":  # no automatic header at all; a normal reply to the desk's mail
        return client_mail(
            sender=ROBOT,
            subject=f"Re: {subject}",
            body=f"ただいま不在にしております。\n\n{quoted}",
            in_reply_to=to_desk["message_id"],
            message_id=f"<robot-{serial}@acme.example>",
        )
    # "hiding-new": no automatic header and no threading at all — the desk's subject
    # without its ref, as a fresh mail: every one looks like a new request.
    bare = _REF.sub(" ", subject).strip()
    return client_mail(
        sender=ROBOT,
        subject=f"Re: {bare}",
        body="ただいま不在にしております。\n",
        message_id=f"<robot-{serial}@acme.example>",
    )


@dataclass(frozen=True)
class Storm:
    style: str
    robot_mails: int
    inbox: int
    to_robot: list[dict[str, Any]]
    to_staff: list[dict[str, Any]]
    suppressed: list[dict[str, Any]]
    requests: int
    quarantined: int
    held_as_loop: int
    minutes: int

    def figures(self) -> dict[str, int]:
        return {
            "robot_mails": self.robot_mails,
            "desk_to_robot": len(self.to_robot),
            "desk_to_staff": len(self.to_staff),
            "suppressed": len(self.suppressed),
            "requests": self.requests,
            "held_as_loop": self.held_as_loop,
            "simulated_minutes": self.minutes,
        }


STYLES = ["polite", "hiding", "hiding-new"]


@pytest.fixture(scope="module")
def storm(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Storm:
    """5,000 robot mails against one desk, once per robot style for the whole module."""
    from mailflow.instance import init_instance

    style: str = request.param
    home = tmp_path_factory.mktemp(f"storm-{style}") / "instance"
    init_instance(home, demo=True, force=False)
    total, per_round, step = 5_000, 250, timedelta(minutes=5)
    start = utcnow().replace(microsecond=0)
    now = [start]
    with pytest.MonkeyPatch.context() as patch:
        # One clock for the desk's limits and for the times the store writes down.
        patch.setattr(mailflow.store, "utcnow", lambda: now[0])
        service = Service(home)
        service.desk.clock = lambda: now[0]
        try:
            # A client's first mail starts it; the robot answers whatever the desk sends.
            service.store.accept(client_mail(sender=ROBOT), "smtp", "")
            service.desk.process_pending()
            answered: set[int] = set()
            last: dict[str, Any] | None = None
            sent = 0
            while sent < total:
                fresh = [
                    row
                    for row in service.store.list_outbox()
                    if ROBOT in row["to"] and row["id"] not in answered
                ]
                answered.update(row["id"] for row in fresh)
                last = fresh[-1] if fresh else last
                assert last is not None
                # It answers every new desk mail, and a stuck robot keeps repeating its
                # last answer, so the storm goes on whatever the desk does.
                targets = fresh + [last] * max(0, per_round - len(fresh))
                raws = [_robot_reply(row, style, sent + i) for i, row in enumerate(targets)]
                service.store.accept_many([(raw, "smtp", "") for raw in raws])
                sent += len(raws)
                service.desk.process_pending()
                now[0] += step
            outbox = service.store.list_outbox()
            result = Storm(
                style=style,
                robot_mails=sent,
                inbox=service.store.counts()["inbox"],
                to_robot=[row for row in outbox if ROBOT in row["to"]],
                to_staff=[row for row in outbox if ROBOT not in row["to"]],
                suppressed=[
                    s for s in service.store.list_suppressions() if s["recipient"] == ROBOT
                ],
                requests=len(service.store.list_requests()),
                quarantined=sum(
                    row["state"] == "quarantined" for row in service.store.list_quarantine()
                ),
                held_as_loop=sum(
                    "possible mail loop" in row["reason"] for row in service.store.list_quarantine()
                ),
                minutes=int((now[0] - start).total_seconds() // 60),
            )
        finally:
            service.store.close()
    print(f"storm {style}: {result.figures()}")
    return result


@pytest.mark.parametrize("storm", STYLES, indirect=True)
def test_auto_reply_storm_mail_to_the_robot_is_bounded_and_suppressions_recorded(
    storm: Storm, record_property: Callable[[str, object], None]
) -> None:
    record_property("storm", storm.figures())
    assert storm.robot_mails == 5_000
    assert storm.inbox == storm.robot_mails + 1, "every robot mail was accepted once"
    assert storm.quarantined == 0
    # The windows of rules.yaml: 3 per 10 minutes and 20 per day to one address.
    assert len(storm.to_robot) <= 20
    times = sorted(datetime.fromisoformat(row["created_at"]) for row in storm.to_robot)
    for index, moment in enumerate(times):
        window = [t for t in times[index:] if t - moment < timedelta(minutes=10)]
        assert len(window) <= 3, f"more than 3 automatic mails within 10 minutes: {window}"
    if storm.style == "hiding-new":
        # Each robot mail looked like a new request and is one (nothing lost); each got
        # a confirmation or a recorded suppression saying why not — the per-recipient
        # windows first, then the cap on mail one sender may cause.
        confirmations = [row for row in storm.to_robot if row["kind"] == "confirmation"]
        assert storm.requests == storm.robot_mails + 1
        assert len(confirmations) + len(storm.suppressed) == storm.requests
        assert len(storm.suppressed) >= storm.robot_mails - 20
        assert all(
            "rate limit" in s["reason"] or "possible mail loop" in s["reason"]
            for s in storm.suppressed
        )
    else:
        # Recognised (polite) or threaded into the first request (hiding): the desk
        # never answers the robot at all, so there is nothing to suppress.
        assert [row["kind"] for row in storm.to_robot] == ["confirmation"]
        assert storm.suppressed == []
        assert storm.requests == 1


@pytest.mark.parametrize(
    "storm",
    [
        "polite",
        "hiding",
        "hiding-new",
    ],
    indirect=True,
)
def test_auto_reply_storm_does_not_flood_the_director(storm: Storm) -> None:
    """Staff are rightly exempt from the per-recipient windows, but a stream of
    5,000 near-identical mails from one sender must not become 5,000 mails to staff."""
    assert len(storm.to_staff) <= 100, Counter(row["kind"] for row in storm.to_staff)
