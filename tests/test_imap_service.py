"""`mailflow run --once` drains the configured IMAP mailboxes into requests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from mails import client_mail, english_mail

from mailflow.cli import main

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
