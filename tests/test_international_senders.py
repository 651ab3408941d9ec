"""Mail from internationalised addresses (the public corpus's four) is answered end to end:
``mailflow ingest``, then ``outbox flush`` through a real relay that offers SMTPUTF8."""

from __future__ import annotations

import email
import email.policy
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import CORPUS, Relay

from mailflow.cli import main

# Their senders: jb@julián.example.com, jøran@example.com (twice), jdöe@mächine.example.
INTERNATIONAL = (
    "cyrus-cassandane/utf8-domain.bin",
    "horde-mime/sample_msg_eai_2.txt",
    "horde-mime/sample_msg_eai_4.txt",
    "mikel-mail/rfc6532/utf8_headers.eml",
)


def invoke(home: Path, *args: str) -> str:
    result = CliRunner().invoke(main, ["--home", str(home), *args])
    assert result.exit_code == 0, result.output
    return result.output


def use_relay(home: Path, relay: Relay) -> None:
    toml = home / "mailflow.toml"
    text = toml.read_text(encoding="utf-8")
    toml.write_text(text.replace('smtp = ""', f'smtp = "{relay.url}"', 1), encoding="utf-8")


def test_international_senders_are_answered_not_quarantined(home: Path, relay: Relay) -> None:
    paths = [CORPUS / path for path in INTERNATIONAL]
    if not all(path.is_file() for path in paths):
        pytest.skip(f"corpus not found at {CORPUS}")
    use_relay(home, relay)
    assert "accepted 4" in invoke(home, "ingest", *map(str, paths))

    # Unknown senders: held with the reason (as any stranger is), none quarantined.
    inbox = json.loads(invoke(home, "quarantine", "list", "--json"))
    assert [row["state"] for row in inbox] == ["held"] * 4
    assert all(row["reason"].startswith("unknown sender ") for row in inbox)

    # One polite reply per sender and day; jøran's second mail is answered by the first.
    invoke(home, "outbox", "flush")
    rows = json.loads(invoke(home, "outbox", "list", "--json"))
    assert [(row["kind"], row["state"]) for row in rows] == [("unknown_sender", "sent")] * 3
    envelopes = [recipients for _sender, recipients, _raw in relay.messages]
    assert envelopes == [
        ["jb@xn--julin-0qa.example.com"],
        ["jøran@example.com"],
        ["jdöe@xn--mchine-bua.example"],
    ]
    for [envelope], (_, _, raw) in zip(envelopes, relay.messages, strict=True):
        [to] = email.message_from_bytes(raw, policy=email.policy.default)["To"].addresses
        # CPython's bytes parser leaves raw UTF-8 in a header surrogate-escaped.
        assert to.addr_spec.encode("ascii", "surrogateescape").decode("utf-8") == envelope
