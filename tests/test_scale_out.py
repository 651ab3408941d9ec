"""Two daemons on one PostgreSQL database process every message exactly once."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from conftest import Relay, set_database
from mails import client_mail

from mailflow.service import Service

pytestmark = pytest.mark.pg


def test_two_daemons_share_the_work_and_double_nothing(
    home: Path, pg_database: str, relay: Relay
) -> None:
    from conftest import _reset_pg

    _reset_pg(pg_database)
    set_database(home, pg_database)
    toml = home / "mailflow.toml"
    toml.write_text(
        toml.read_text(encoding="utf-8").replace('smtp = ""', f'smtp = "{relay.url}"', 1),
        encoding="utf-8",
    )
    count = 150
    service = Service(home)
    try:
        service.store.accept_many(
            [
                (
                    client_mail(
                        sender=f"staff{i}@delta-trading.example",
                        subject=f"依頼 {i}",
                        message_id=f"<scale-{i}@client.example>",
                    ),
                    "smtp",
                    "",
                )
                for i in range(count)
            ]
        )
    finally:
        service.store.close()

    command = [sys.executable, "-m", "mailflow", "--home", str(home), "run", "--once"]
    daemons = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)
    ]
    outputs = [daemon.communicate(timeout=300) for daemon in daemons]
    assert all(daemon.returncode == 0 for daemon in daemons), outputs

    processed = [int(out.split()[1]) for out, _ in outputs]
    assert sum(processed) == count
    assert all(n > 0 for n in processed), f"one daemon did all the work: {processed}"

    service = Service(home)
    try:
        requests = service.store.list_requests()
        outbox = service.store.list_outbox()
    finally:
        service.store.close()
    assert len(requests) == count
    assert Counter(row["kind"] for row in outbox) == {"confirmation": count, "new_request": count}
    assert {row["state"] for row in outbox} == {"sent"}
    sent_ids = Counter(
        line.split(b":", 1)[1].strip()
        for _, _, raw in relay.messages
        for line in raw.splitlines()
        if line.lower().startswith(b"message-id:")
    )
    assert len(sent_ids) == len(outbox)
    assert max(sent_ids.values()) == 1, "a mail was sent twice"
