"""Every message of the shared public corpus parses (or is refused with ProcessingError)."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from mailflow.classify import classify
from mailflow.errors import ProcessingError
from mailflow.model import ParsedMail
from mailflow.parse import parse_mail

CORPUS = Path(__file__).parents[2] / "shared" / "corpus"
_MBOX_SPLIT = re.compile(rb"(?m)^(?=From )")


def _messages() -> list[tuple[str, bytes]]:
    found: list[tuple[str, bytes]] = []
    with (CORPUS / "MANIFEST.tsv").open(encoding="utf-8", newline="") as manifest:
        for row in csv.DictReader(manifest, delimiter="\t"):
            raw = (CORPUS / row["path"]).read_bytes()
            if row["format"] == "mbox":
                parts = [p for p in _MBOX_SPLIT.split(raw) if p.strip()]
                found.extend((f"{row['path']}#{i}", p) for i, p in enumerate(parts))
            else:
                found.append((row["path"], raw))
    return found


@pytest.mark.slow
def test_whole_corpus_parses_quietly(capsys: pytest.CaptureFixture[str]) -> None:
    if not (CORPUS / "MANIFEST.tsv").is_file():
        pytest.skip(f"corpus not found at {CORPUS}")
    messages = _messages()
    assert len(messages) > 1000
    refused: list[str] = []
    for path, raw in messages:
        try:
            mail = parse_mail(raw)
        except ProcessingError as exc:
            refused.append(f"{path}: {exc}")
            continue
        _check(mail, raw)
        classify(mail, desk_domain="secretary.example")
    assert len(refused) <= 3, refused  # only truly empty files
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def _check(mail: ParsedMail, raw: bytes) -> None:
    assert mail.size == len(raw)
    assert "\r" not in mail.text and "\r" not in mail.quoted
    for attachment in mail.attachments:
        assert attachment.safe_name
        assert "/" not in attachment.safe_name and "\\" not in attachment.safe_name
        assert len(attachment.safe_name.encode()) <= 200
    if mail.date is not None:
        assert mail.date.tzinfo is not None
