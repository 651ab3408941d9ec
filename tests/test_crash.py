"""kill -9 at random points: after restart every accepted message is processed exactly once.

Real processes on a real instance: `mailflow ingest` and `mailflow run --once` are killed
while accepting, processing and sending, then run again to completion.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import flush_after_leases, listen_on_free_port
from mails import client_mail, english_mail

from mailflow.service import Service

MAILFLOW = [sys.executable, "-m", "mailflow"]


def _mailflow(home: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*MAILFLOW, "--home", str(home), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _json(home: Path, *args: str) -> list[dict]:  # type: ignore[type-arg]
    done = subprocess.run(
        [*MAILFLOW, "--home", str(home), *args, "--json"], capture_output=True, check=True
    )
    return json.loads(done.stdout)  # type: ignore[no-any-return]


@pytest.mark.slow
def test_kill_9_anywhere_loses_nothing_and_doubles_nothing(any_home: Path, tmp_path: Path) -> None:
    home = any_home
    mail_dir = tmp_path / "incoming"
    mail_dir.mkdir()
    count = 120
    for index in range(count):
        # Distinct contacts of one company (its @domain entry), so that the per-recipient
        # limit on automatic mail does not come into play.
        make = client_mail if index % 3 else english_mail
        raw = make(
            sender=f"staff{index}@delta-trading.example",
            subject=f"依頼 {index}",
            message_id=f"<crash-{index}@client.example>",
        )
        (mail_dir / f"{index:04d}.eml").write_bytes(raw)

    chance = random.Random(20261127)
    for _ in range(5):
        for command in (["ingest", str(mail_dir)], ["run", "--once"]):
            process = _mailflow(home, *command)
            time.sleep(chance.uniform(0.3, 1.6))
            process.send_signal(signal.SIGKILL)
            process.wait()

    assert (
        subprocess.run(
            [*MAILFLOW, "--home", str(home), "ingest", str(mail_dir)], capture_output=True
        ).returncode
        == 0
    )
    assert (
        subprocess.run(
            [*MAILFLOW, "--home", str(home), "run", "--once"], capture_output=True
        ).returncode
        == 0
    )

    requests = _json(home, "requests", "list")
    assert sorted(r["subject"] for r in requests) == sorted(f"依頼 {i}" for i in range(count))
    outbox = _json(home, "outbox", "list")
    kinds = Counter(row["kind"] for row in outbox)
    assert kinds["confirmation"] == count
    assert kinds["new_request"] + kinds["assignment"] == count
    assert {row["state"] for row in outbox} <= {"sent", "pending"}
    # Rows a killed sender had claimed wait for their lease to run out; then they go.
    service = Service(home)
    try:
        flush_after_leases(service)
        outbox = service.store.list_outbox()
    finally:
        service.store.close()
    assert {row["state"] for row in outbox} == {"sent"}
    # One file per outbox row in the sent Maildir: nothing was written twice.
    sent = list((home / "data" / "sent" / "new").iterdir())
    assert len(sent) == len(outbox)
    message_ids = [re.search(rb"Message-ID: (\S+)", p.read_bytes(), re.I) for p in sent]
    assert len({m.group(1) for m in message_ids if m}) == len(outbox)


def test_the_daemon_answers_smtp_within_two_seconds(home: Path) -> None:
    """What `make run` promises: a mail to the listener → a confirmation in data/sent/."""
    import smtplib

    port = listen_on_free_port(home)
    daemon = _mailflow(home, "run")
    try:
        _wait_for_port(port)
        started = time.monotonic()
        with smtplib.SMTP("127.0.0.1", port) as client:
            client.sendmail("yamada@acme.example", ["desk@secretary.example"], client_mail())
        sent_dir = home / "data" / "sent" / "new"
        while time.monotonic() - started < 2.0 and not _confirmations(sent_dir):
            time.sleep(0.02)
        elapsed = time.monotonic() - started
        assert _confirmations(sent_dir), f"no confirmation after {elapsed:.2f}s"
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=10) == 0


def _confirmations(directory: Path) -> list[Path]:
    """Sent mail about MF-0001 (digests of the first tick may lie there too)."""
    return [path for path in _files(directory) if b"MF-0001" in path.read_bytes()]


def _files(directory: Path) -> list[Path]:
    return list(directory.iterdir()) if directory.exists() else []


def _wait_for_port(port: int, timeout: float = 10.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port}")


if os.name != "posix":  # pragma: no cover
    pytestmark = pytest.mark.skip("needs POSIX signals")
