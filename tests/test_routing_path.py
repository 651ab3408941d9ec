"""Routing wired into the pipeline: rules.yaml, skills, member choice, deadlines, explain."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import deliver
from mails import client_mail, english_mail

from mailflow.cli import main
from mailflow.service import Service


@pytest.fixture
def service(home: Path) -> Iterator[Service]:
    running = Service(home)
    yield running
    running.store.close()


def _outbox(service: Service, kind: str) -> list[dict]:  # type: ignore[type-arg]
    return [row for row in service.store.list_outbox() if row["kind"] == kind]


def test_director_gets_a_suggested_member_with_reasons(service: Service) -> None:
    deliver(
        service, client_mail(subject="競合調査のお願い", body="競合3社の料金を調査してください。\n")
    )
    [request] = service.store.list_requests()
    assert request["skills"] == ["research"]
    shown = service.store.show_request(request["ref"])
    assert shown is not None
    decision = shown["decision"]
    assert decision["route"] == "director" and decision["rule"] == "default"
    # research: sato and emma; emma does not work in ja for acme? both have ja → least loaded
    assert decision["suggested_member"] in {"sato", "emma"}
    assert decision["runner_up"] in {"sato", "emma"} - {decision["suggested_member"]}
    assert any("skills: research" in reason for reason in decision["reasons"])
    [new_request] = _outbox(service, "new_request")
    assert "佐藤" in new_request["body_text"] or "Emma" in new_request["body_text"]


def test_load_spreads_assignments_over_members(service: Service) -> None:
    """The suggestion moves on as the first choice gets work (least loaded first)."""
    deliver(service, client_mail(subject="調査A", body="市場を調査してください。\n"))
    first = service.store.show_request("MF-0001")
    assert first is not None
    suggested = first["decision"]["suggested_member"]
    # Give the suggested member the request, as `#assign` would.
    from mailflow.store import Event, Request

    Request.update(assignee=suggested, state="assigned").where(Request.ref == "MF-0001").execute()
    Event.create(
        request=Request.get(Request.ref == "MF-0001"),
        at=first["created_at"][:19],
        actor="tanaka",
        kind="assigned",
        detail=json.dumps({"member": suggested}),
    )
    deliver(service, client_mail(subject="調査B", body="別の市場も調査してください。\n"))
    second = service.store.show_request("MF-0002")
    assert second is not None
    assert second["decision"]["suggested_member"] != suggested


def test_the_clients_deadline_and_format_are_read(service: Service) -> None:
    body = "お世話になっております。\n顧客リストの入力を12月3日までにExcelでお願いします。\n"
    deliver(service, client_mail(subject="データ入力", body=body))
    [request] = service.store.list_requests()
    assert request["due"].startswith("2026-12-03")
    shown = service.store.show_request(request["ref"])
    assert shown is not None
    assert shown["events"][0]["detail"]["format"] == "excel"
    assert "12月3日までに" in shown["events"][0]["detail"]["due_phrase"]


def test_without_a_deadline_the_default_business_days_apply(service: Service) -> None:
    # Thu 2026-11-26 10:00 JST + 3 business days → Tue 2026-12-01.
    deliver(service, client_mail(subject="資料作成", body="営業資料を作成してください。\n"))
    [request] = service.store.list_requests()
    assert request["due"].startswith("2026-12-01")


def test_phone_work_is_out_of_scope_for_client_and_director(service: Service) -> None:
    deliver(service, client_mail(subject="予約の件", body="電話での予約代行をお願いします。\n"))
    [request] = service.store.list_requests()
    assert request["state"] == "on_hold"
    notices = _outbox(service, "out_of_scope")
    assert sorted(n["to"][0] for n in notices) == [
        "tanaka@secretary.example",
        "yamada@acme.example",
    ]
    assert _outbox(service, "confirmation") == []


def test_direct_member_lacking_a_skill_flags_client_and_coordinator(service: Service) -> None:
    # gamma's dedicated member takahashi does accounting, data entry and scheduling.
    deliver(
        service,
        client_mail(
            sender="kato@gamma.example",
            subject="翻訳のお願い",
            body="契約書を英語に翻訳してください。\n",
        ),
    )
    [request] = service.store.list_requests()
    assert request["state"] == "on_hold" and request["assignee"] is None
    recipients = sorted(n["to"][0] for n in _outbox(service, "out_of_scope"))
    assert recipients == ["ito@secretary.example", "kato@gamma.example"]
    assert _outbox(service, "assignment") == []


def test_auto_assign_rule_assigns_without_the_director(home: Path) -> None:
    rules = home / "rules.yaml"
    text = rules.read_text(encoding="utf-8")
    auto = (
        "routes:\n  - name: translation_auto\n    when: {skill: translation}\n"
        "    then: {route: auto_assign}\n"
    )
    rules.write_text(text.replace("routes:\n", auto, 1), encoding="utf-8")
    service = Service(home)
    try:
        deliver(
            service,
            english_mail(
                sender="lee@delta.example",
                subject="Translation",
                body="Please translate our brochure into Japanese.\n",
            ),
        )
        [request] = service.store.list_requests()
        assert request["state"] == "assigned"
        assert request["assignee"] in {"suzuki", "emma"}
        assert [n["to"][0] for n in _outbox(service, "assignment")] == [
            f"{request['assignee']}@members.example"
        ]
        assert _outbox(service, "new_request") == []
    finally:
        service.store.close()


def test_rules_test_prints_a_table_and_fails_on_unroutable_mail(home: Path, tmp_path: Path) -> None:
    saved = tmp_path / "saved"
    saved.mkdir()
    (saved / "a.eml").write_bytes(
        client_mail(subject="至急：競合調査", body="競合を調査してください。\n")
    )
    (saved / "b.eml").write_bytes(english_mail())
    runner = CliRunner()
    result = runner.invoke(main, ["--home", str(home), "rules", "test", str(saved)])
    assert result.exit_code == 0, result.output
    assert "a.eml" in result.output and "research" in result.output and "director" in result.output
    assert "2 file(s), 0 failed to route" in result.output
    (saved / "c.eml").write_bytes(client_mail(sender="who@nowhere.example"))
    result = runner.invoke(main, ["--home", str(home), "rules", "test", str(saved), "--json"])
    assert result.exit_code == 1
    rows = {row["file"]: row for row in json.loads(result.output)}
    assert rows["a.eml"]["ok"] and not rows["c.eml"]["ok"]
    assert "unknown sender" in rows["c.eml"]["error"]


def test_explain_shows_the_rule_and_every_reason(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "a.eml"
    path.write_bytes(client_mail(subject="至急：競合調査", body="競合を調査してください。\n"))
    result = CliRunner().invoke(main, ["--home", str(home), "explain", str(path)])
    assert result.exit_code == 0
    assert "rule default → director" in result.output
    assert "route 'urgent': matched" in result.output
    assert "would send: new_request to tanaka@secretary.example" in result.output
