"""`mailflow ingest` inputs: .eml files, mboxes, Maildirs, directories, stdin."""

from __future__ import annotations

import io
import mailbox
from pathlib import Path

from mails import client_mail

from mailflow.sources.files import read_messages


def test_single_eml_file(tmp_path: Path) -> None:
    path = tmp_path / "one.eml"
    path.write_bytes(client_mail())
    [(raw, ref)] = list(read_messages(path))
    assert raw == path.read_bytes() and ref == str(path)


def test_mbox_is_split_and_from_lines_unquoted(tmp_path: Path) -> None:
    box = tmp_path / "box.mbox"
    box.write_bytes(
        b"From a@x Thu Nov 26 10:00:00 2026\nSubject: one\n\n>From the start\n\n"
        b"From b@x Thu Nov 26 10:01:00 2026\nSubject: two\n\nbody two\n"
    )
    messages = list(read_messages(box))
    assert [m[0].split(b"\n")[0] for m in messages] == [b"Subject: one", b"Subject: two"]
    assert b"\nFrom the start" in messages[0][0]
    assert messages[1][1] == f"{box}#1"


def test_maildir_and_directory(tmp_path: Path) -> None:
    maildir = mailbox.Maildir(tmp_path / "md", create=True)
    maildir.add(client_mail(subject="一"))
    maildir.add(client_mail(subject="二"))
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "a.eml").write_bytes(client_mail())
    (tmp_path / "dir" / ".hidden").write_bytes(b"x")
    assert len(list(read_messages(tmp_path / "md"))) == 2
    assert len(list(read_messages(tmp_path / "dir"))) == 1


def test_stdin(tmp_path: Path) -> None:
    raw = client_mail()
    assert list(read_messages("-", stdin=io.BytesIO(raw))) == [(raw, "stdin")]
