"""`mailflow run --once` drains the configured IMAP mailboxes into requests."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from mails import client_mail, english_mail

from mailflow.cli import main
from mailflow.service import Service, backlog_workers

pytestmark = pytest.mark.imap


def _configure(home: Path, dovecot: Any, user: str, name: str = "desk") -> None:
    toml = home / "mailflow.toml"
    toml.write_text(
        toml.read_text(encoding="utf-8")
        + f'\n[[imap]]\nname = "{name}"\nhost = "{dovecot.host}"\nport = {dovecot.port}\n'
        f'tls = "none"\nusername = "{user}"\npassword = "{dovecot.passwords[user]}"\n'
        'folder = "INBOX"\nprocessed_folder = "mailflow/processed"\n',
        encoding="utf-8",
    )


def test_run_once_drains_imap_and_answers(home: Path, dovecot: Any) -> None:
    user = dovecot.add_user()
    _configure(home, dovecot, user)
    dovecot.append(user, "INBOX", client_mail(), flags=[b"\\Seen"])
    dovecot.append(user, "INBOX", english_mail())
    result = CliRunner().invoke(main, ["--home", str(home), "run", "--once"])
    assert result.exit_code == 0, result.output
    assert "processed 2 message(s); sent 4" in result.output
    assert dovecot.list_uids(user, "INBOX") == []
    assert len(dovecot.list_uids(user, "mailflow.processed")) == 2
    again = CliRunner().invoke(main, ["--home", str(home), "run", "--once"])
    assert "processed 0 message(s)" in again.output


def test_a_failing_mailbox_is_reported_and_the_other_drained(home: Path, dovecot: Any) -> None:
    good = dovecot.add_user()
    _configure(home, dovecot, good, name="good")
    bad = dovecot.add_user()
    dovecot.passwords[bad] = "wrong-password"
    _configure(home, dovecot, bad, name="bad")
    dovecot.append(good, "INBOX", client_mail())
    result = CliRunner().invoke(main, ["--home", str(home), "run", "--once"])
    assert result.exit_code == 1
    assert "mailbox bad:" in result.output
    assert "processed 1 message(s)" in result.output


@pytest.mark.skipif(backlog_workers() < 2, reason="one core: processed after the drain")
def test_run_once_sends_while_the_drain_goes_on(
    home: Path, dovecot: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = dovecot.add_user()
    _configure(home, dovecot, user)
    dovecot.append(user, "INBOX", client_mail())
    service = Service(home)
    sent = service.config.settings.sent_dir / "new"
    drain_all = service.imap.drain_all

    def slow_drain(accept_many: Any) -> dict[str, int | Exception]:
        # A large mailbox: its first mail is answered while the rest is still fetched.
        results = drain_all(accept_many)
        deadline = time.monotonic() + 30
        while not any(sent.iterdir()):
            assert time.monotonic() < deadline, "nothing sent during the drain"
            time.sleep(0.05)
        return results

    monkeypatch.setattr(service.imap, "drain_all", slow_drain)
    try:
        report = service.run_once(drain_mailboxes=True)
    finally:
        service.store.close()
    assert report.mailboxes == {"desk": 1}
    assert len(report.processed) == 1
    assert report.outbox.sent == 2
