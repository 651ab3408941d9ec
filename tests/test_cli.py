"""Every command through click's CliRunner: output, JSON keys, exit codes, help text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from mails import client_mail, english_mail

from mailflow.cli import main

REQUEST_KEYS = {
    "ref",
    "state",
    "model",
    "client",
    "director",
    "assignee",
    "subject",
    "due",
    "skills",
    "priority",
    "revision_count",
    "hours_estimate",
    "hours_spent",
    "events",
    "attachments",
}
OUTBOX_KEYS = {
    "id",
    "kind",
    "to",
    "cc",
    "subject",
    "state",
    "request",
    "reply_to",
    "message_id",
    "attachments",
    "body_text",
}
EXPLAIN_KEYS = {
    "subject",
    "from",
    "date",
    "text",
    "quoted",
    "attachments",
    "classification",
    "sender",
    "request",
    "decision",
}


def invoke(home: Path, *args: str, input: bytes | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["--home", str(home), *args], input=input)
    return result.exit_code, result.output


def _write(tmp_path: Path, name: str, raw: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(raw)
    return str(path)


def test_init_writes_an_instance_once(tmp_path: Path) -> None:
    target = tmp_path / "fresh"
    target.mkdir()  # an existing empty directory is fine
    code, output = invoke(tmp_path, "init", str(target), "--demo")
    assert code == 0, output
    assert (target / "mailflow.toml").exists() and (target / "people.yaml").exists()
    assert (target / "data").is_dir()
    code, output = invoke(tmp_path, "init", str(target))
    assert code == 1 and "--force" in output
    assert invoke(tmp_path, "init", str(target), "--force")[0] == 0


def test_home_comes_from_the_environment(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILFLOW_HOME", str(home))
    result = CliRunner().invoke(main, ["check"])
    assert result.exit_code == 0 and "ok:" in result.output


def test_check_catches_a_broken_people_file_with_line_and_fix(home: Path) -> None:
    people = home / "people.yaml"
    text = people.read_text(encoding="utf-8")
    people.write_text(text.replace("member: suzuki", "member: suzki", 1), encoding="utf-8")
    line = next(i for i, row in enumerate(people.read_text().splitlines(), 1) if "suzki" in row)
    code, output = invoke(home, "check")
    assert code == 2
    assert f"people.yaml:{line}:" in output
    assert "suzki" in output and "fix:" in output


def test_run_refuses_to_start_on_a_config_error(home: Path) -> None:
    (home / "mailflow.toml").write_text("[desk\naddress = 1\n", encoding="utf-8")
    code, output = invoke(home, "run", "--once")
    assert code == 2 and "mailflow.toml:1" in output


def test_ingest_then_inspect_with_json(home: Path, tmp_path: Path) -> None:
    files = [_write(tmp_path, "a.eml", client_mail()), _write(tmp_path, "b.eml", english_mail())]
    code, output = invoke(home, "ingest", *files)
    assert code == 0 and "accepted 2 message(s)" in output

    code, output = invoke(home, "requests", "list", "--json")
    requests = json.loads(output)
    assert code == 0 and len(requests) == 2
    assert REQUEST_KEYS <= set(requests[0])

    code, output = invoke(home, "requests", "show", "MF-0001", "--json")
    shown = json.loads(output)
    assert shown["ref"] == "MF-0001" and shown["events"][0]["kind"] == "created"

    code, output = invoke(home, "outbox", "list", "--json")
    rows = json.loads(output)
    assert len(rows) == 4 and OUTBOX_KEYS <= set(rows[0])
    assert {r["state"] for r in rows} == {"pending"}

    code, output = invoke(home, "outbox", "flush")
    assert code == 0 and "sent 4" in output
    assert len(list((home / "data" / "sent" / "new").iterdir())) == 4


def test_ingest_reads_stdin(home: Path) -> None:
    code, output = invoke(home, "ingest", "-", input=client_mail())
    assert code == 0 and "accepted 1" in output


def test_explain_prints_the_trace_and_changes_nothing(home: Path, tmp_path: Path) -> None:
    path = _write(tmp_path, "a.eml", client_mail())
    code, output = invoke(home, "explain", path, "--json")
    trace = json.loads(output)
    assert code == 0 and EXPLAIN_KEYS <= set(trace)
    assert trace["classification"] == "human"
    assert trace["sender"]["role"] == "client" and trace["decision"]["route"] == "director"
    assert json.loads(invoke(home, "requests", "list", "--json")[1]) == []


def test_quarantine_list_show_and_replay(home: Path, tmp_path: Path) -> None:
    invoke(home, "ingest", _write(tmp_path, "x.eml", client_mail(sender="who@nowhere.example")))
    code, output = invoke(home, "quarantine", "list", "--json")
    [held] = json.loads(output)
    assert "unknown sender" in held["reason"]
    code, output = invoke(home, "quarantine", "show", str(held["id"]))
    assert code == 0 and json.loads(output)["sender"].endswith("who@nowhere.example>")
    code, output = invoke(home, "quarantine", "show", str(held["id"]), "--raw")
    assert "who@nowhere.example" in output
    code, output = invoke(home, "quarantine", "replay", str(held["id"]))
    assert code == 0 and "held" in output
    assert invoke(home, "quarantine", "replay", "999")[0] == 1


def test_run_once_processes_and_sends(home: Path, tmp_path: Path) -> None:
    from mailflow.service import Service

    service = Service(home)
    service.store.accept(client_mail(), "smtp")
    service.store.close()
    code, output = invoke(home, "run", "--once")
    assert code == 0 and "processed 1 message(s); sent 2" in output


def test_unknown_request_is_exit_1(home: Path) -> None:
    assert invoke(home, "requests", "show", "MF-9999")[0] == 1


COMMANDS = [
    [],
    ["demo"],
    ["tick"],
    ["digest"],
    ["rules"],
    ["rules", "test"],
    ["init"],
    ["check"],
    ["run"],
    ["ingest"],
    ["explain"],
    ["requests"],
    ["requests", "list"],
    ["requests", "show"],
    ["outbox"],
    ["outbox", "list"],
    ["outbox", "flush"],
    ["quarantine"],
    ["quarantine", "list"],
    ["quarantine", "show"],
    ["quarantine", "replay"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "main")
def test_every_command_has_help(command: list[str]) -> None:
    result = CliRunner().invoke(main, [*command, "--help"])
    assert result.exit_code == 0
    assert "Usage:" in result.output
    summary = result.output.split("\n\n")[1].strip()
    assert len(summary) > 10, f"{command} needs a help text"


def test_requests_show_tells_the_whole_story(home: Path, tmp_path: Path) -> None:
    invoke(home, "ingest", _write(tmp_path, "a.eml", client_mail()))
    code, output = invoke(home, "requests", "show", "MF-0001")
    assert code == 0
    for part in (
        "MF-0001  競合調査のお願い",
        "state           new",
        "hours           0 spent",
        "files:",
        "events:",
        "yamada@acme.example created",
        "decision:",
        "rule default → director",
        "messages:",
    ):
        assert part in output, part


def test_demo_plays_both_models_to_the_end() -> None:
    result = CliRunner().invoke(main, ["demo"])
    assert result.exit_code == 0, result.output
    assert "MF-0001 closed" in result.output and "MF-0002 closed" in result.output
    assert "2 requests closed" in result.output
