"""Scheduled work through the pipeline: `mailflow tick --at`, digests, idempotency."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from conversation import DESK, Desk, kinds, mail, only

from mailflow.cli import main

YAMADA, TANAKA, SATO = "yamada@acme.example", "tanaka@secretary.example", "sato@members.example"


@pytest.fixture
def desk(any_home: Path) -> Iterator[Desk]:
    opened = Desk.open(any_home)
    yield opened
    opened.close()


def _assigned_request(desk: Desk) -> None:
    rows = desk.send(mail(YAMADA, DESK, "競合調査", "競合3社を調査してください。\n"))
    desk.reply(only(rows, "new_request"), TANAKA, "#担当 sato\n#納期 2026-12-03 18:00\n")


def _tick(home: Path, at: str) -> str:
    result = CliRunner().invoke(main, ["--home", str(home), "tick", "--at", at])
    assert result.exit_code == 0, result.output
    return result.output


def test_reminder_before_the_deadline_once_and_within_working_hours(desk: Desk) -> None:
    _assigned_request(desk)
    desk.new_rows()
    home = desk.service.home
    assert "reminder" not in _tick(home, "2026-12-02T08:00+09:00")  # > 24 h before
    assert "reminder" not in _tick(home, "2026-12-02T20:00+09:00")  # after working hours
    output = _tick(home, "2026-12-03T09:30+09:00")
    assert "reminder:MF-0001" in output
    rows = desk.new_rows()
    assert ("reminder", SATO) in kinds(rows)
    assert "reminder:MF-0001" not in _tick(home, "2026-12-03T10:00+09:00")
    assert desk.events()[-1] == "reminder"


def test_overdue_goes_to_the_director_once_a_business_day(desk: Desk) -> None:
    _assigned_request(desk)
    desk.new_rows()
    home = desk.service.home
    assert "overdue:MF-0001:2026-12-04" in _tick(home, "2026-12-04T10:00+09:00")
    assert ("overdue", TANAKA) in kinds(desk.new_rows())
    assert "overdue:" not in _tick(home, "2026-12-04T15:00+09:00")
    assert "overdue:MF-0001:2026-12-07" in _tick(home, "2026-12-07T10:00+09:00")


def test_daily_digests_go_out_once_and_preview_prints_one(desk: Desk) -> None:
    _assigned_request(desk)
    desk.new_rows()
    home = desk.service.home
    assert "digest:" not in _tick(home, "2026-11-27T07:00+09:00")
    output = _tick(home, "2026-11-27T08:05+09:00")
    assert "digest:tanaka:2026-11-27" in output and "digest:sato:2026-11-27" in output
    assert "digest:acme:2026-11-27" in output
    recipients = {row["to"][0] for row in desk.new_rows() if row["kind"] == "digest"}
    assert {TANAKA, SATO, YAMADA} <= recipients
    assert "digest:" not in _tick(home, "2026-11-27T09:00+09:00")

    result = CliRunner().invoke(
        main, ["--home", str(home), "digest", "--preview", SATO, "--at", "2026-11-27T08:05+09:00"]
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Subject: ") and "MF-0001" in result.output
    unknown = CliRunner().invoke(main, ["--home", str(home), "digest", "--preview", "x@y.example"])
    assert unknown.exit_code == 1
