"""The scheduler's plan: what each tick does, once, at the right time."""

from __future__ import annotations

import ast
from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, time
from pathlib import Path
from typing import Any

import pytest
from test_digest import TZ, at, demo_directory, view

from mailflow.calendar_jp import BusinessCalendar
from mailflow.instance import init_instance, load_config
from mailflow.model import State
from mailflow.render import Renderer
from mailflow.rules import Defaults, RuleSet
from mailflow.schedule import Scheduled, plan_tick
from mailflow.situation import RequestView

CALENDAR = BusinessCalendar()
RULES = RuleSet(defaults=Defaults(reminder_hours_before=24, working_hours="09:00-18:00"))
DIGEST_AT = time(8, 0)


def tick(
    now: datetime,
    requests: Sequence[RequestView],
    *,
    done: Collection[str] = (),
    state_since: Mapping[str, datetime] | None = None,
    hours_used: Mapping[str, float] | None = None,
    held: Sequence[Mapping[str, Any]] = (),
) -> list[Scheduled]:
    return plan_tick(
        now,
        requests,
        demo_directory(),
        RULES,
        TZ,
        CALENDAR,
        digest_time=DIGEST_AT,
        done=done,
        held=held,
        hours_used=hours_used or {},
        state_since=state_since or {},
    )


def of_kind(items: Sequence[Scheduled], prefix: str) -> list[Scheduled]:
    return [item for item in items if item.key.startswith(prefix + ":")]


def keys(items: Sequence[Scheduled], prefix: str) -> list[str]:
    return [item.key for item in of_kind(items, prefix)]


# -- reminders -----------------------------------------------------------------------------

# Due Wednesday 2 December 2026 at 10:00: the reminder window opens Tuesday 10:00.
DUE = at(2, 10, month=12)
WORK = view("MF-0001", "in_progress", assignee="sato", due=DUE)


def test_no_reminder_before_the_lead_time() -> None:
    assert of_kind(tick(at(1, 9, 59, month=12), [WORK]), "reminder") == []


def test_reminder_at_the_first_working_moment_in_the_window() -> None:
    [item] = of_kind(tick(at(1, 10, month=12), [WORK]), "reminder")
    assert item.key == "reminder:MF-0001:2026-12-02T10:00:00+09:00"
    assert item.ref == "MF-0001"
    notice = item.notice
    assert notice is not None and notice.kind == "reminder"
    assert [a.email for a in notice.to] == ["sato@members.example"]
    assert notice.recipient_id == "sato" and notice.language == "ja"
    context = notice.context
    assert context["reminder"] == {"due": "2026-12-02T10:00:00+09:00", "hours_left": 24.0}
    assert context["recipient"] == {"id": "sato", "name": "佐藤 一郎"}
    assert context["request"]["subject"] == "MF-0001 の件"
    assert context["request"]["state"] == "in_progress"
    assert context["member"] == {"id": "sato", "name": "佐藤 一郎"}
    assert context["director"] == {"id": "tanaka", "name": "田中 花子"}
    assert context["client"]["contact_email"] == "yamada@acme.example"
    assert item.event is not None and item.event.kind == "reminder"


def test_reminder_waits_for_working_hours() -> None:
    # Window open since Tuesday 10:00, but Tuesday evening and Wednesday 02:00 are off hours.
    late = replace(WORK, due=at(2, 10, month=12))
    assert of_kind(tick(at(1, 18, 30, month=12), [late]), "reminder") == []
    assert of_kind(tick(at(2, 2, month=12), [late]), "reminder") == []
    [item] = of_kind(tick(at(2, 9, month=12), [late]), "reminder")
    assert item.notice is not None and item.notice.context["reminder"]["hours_left"] == 1.0


def test_reminder_waits_over_the_weekend() -> None:
    monday = replace(WORK, due=at(30, 12))
    assert of_kind(tick(at(29, 13), [monday]), "reminder") == []
    assert len(of_kind(tick(at(30, 9), [monday]), "reminder")) == 1


def test_reminder_follows_the_members_own_hours() -> None:
    # takahashi works 10:00-16:00.
    theirs = view("MF-0002", "assigned", client="gamma", assignee="takahashi", due=DUE)
    assert of_kind(tick(at(2, 9, 30, month=12), [theirs]), "reminder") == []
    assert of_kind(tick(at(2, 9, 59, month=12), [theirs]), "reminder") == []
    assert len(of_kind(tick(at(1, 15, 59, month=12), [theirs]), "reminder")) == 1
    assert of_kind(tick(at(1, 16, month=12), [theirs]), "reminder") == []


def test_reminder_is_sent_once() -> None:
    first = tick(at(1, 10, month=12), [WORK])
    done = {item.key for item in first}
    again = tick(at(1, 11, month=12), [WORK], done=done)
    assert of_kind(again, "reminder") == []


def test_a_changed_deadline_is_reminded_again() -> None:
    done = {item.key for item in tick(at(1, 10, month=12), [WORK])}
    moved = replace(WORK, due=at(2, 15, month=12))
    [item] = of_kind(tick(at(1, 16, month=12), [moved], done=done), "reminder")
    assert item.key == "reminder:MF-0001:2026-12-02T15:00:00+09:00"


def test_no_reminder_after_the_deadline() -> None:
    assert of_kind(tick(at(2, 10, 30, month=12), [WORK]), "reminder") == []


@pytest.mark.parametrize("state", ["new", "estimated", "in_review", "delivered", "on_hold"])
def test_reminders_only_while_the_member_has_the_work(state: str) -> None:
    other = replace(WORK, state=State(state))
    assert of_kind(tick(at(1, 10, month=12), [other]), "reminder") == []


# -- overdue -------------------------------------------------------------------------------

LATE = view("MF-0003", "in_progress", assignee="sato", due=at(26, 18))


def test_overdue_goes_to_the_director_once_per_business_day() -> None:
    [item] = of_kind(tick(at(27, 9), [LATE]), "overdue")
    assert item.key == "overdue:MF-0003:2026-11-27"
    notice = item.notice
    assert notice is not None and notice.kind == "overdue"
    assert [a.email for a in notice.to] == ["tanaka@secretary.example"]
    assert notice.context["overdue"] == {"due": "2026-11-26T18:00:00+09:00", "hours_late": 15.0}
    assert notice.context["member"] == {"id": "sato", "name": "佐藤 一郎"}
    assert item.event is not None and item.event.kind == "overdue" and item.event.actor
    assert item.event.detail["to"] == "tanaka"
    done = {item.key}
    assert of_kind(tick(at(27, 15), [LATE], done=done), "overdue") == []
    # Saturday and Sunday are not business days; Monday is a new day.
    assert of_kind(tick(at(28, 10), [LATE], done=done), "overdue") == []
    assert keys(tick(at(30, 9), [LATE], done=done), "overdue") == ["overdue:MF-0003:2026-11-30"]


def test_overdue_waits_for_working_hours() -> None:
    assert of_kind(tick(at(27, 7), [LATE]), "overdue") == []
    assert of_kind(tick(at(27, 18), [LATE]), "overdue") == []


@pytest.mark.parametrize("state", ["in_review", "delivered", "on_hold", "closed"])
def test_no_overdue_once_the_work_is_delivered_or_paused(state: str) -> None:
    other = replace(LATE, state=State(state))
    assert of_kind(tick(at(27, 9), [other]), "overdue") == []


def test_overdue_of_a_direct_client_goes_to_its_coordinator() -> None:
    direct = view("MF-0004", "in_progress", client="gamma", assignee="takahashi", due=at(26, 18))
    [item] = of_kind(tick(at(27, 9), [direct]), "overdue")
    assert item.notice is not None and item.notice.recipient_id == "ito"


def test_not_yet_due_is_not_overdue() -> None:
    assert of_kind(tick(at(26, 17, 59), [LATE]), "overdue") == []


# -- estimate nudge ------------------------------------------------------------------------

ESTIMATED = view(
    "MF-0005",
    "estimated",
    client="beta",
    assignee="suzuki",
    hours_estimate=3.0,
    data={"contact": {"email": "kim@beta.example", "name": "Kim"}},
)
# Estimated on Wednesday 25 November at 10:00: two business days later is Friday 10:00.
SINCE = {"MF-0005": at(25, 10)}


def test_no_nudge_within_two_business_days() -> None:
    assert of_kind(tick(at(27, 9, 59), [ESTIMATED], state_since=SINCE), "estimate_nudge") == []


def test_estimate_nudge_after_two_business_days() -> None:
    items = tick(at(27, 10, 30), [ESTIMATED], state_since=SINCE, hours_used={"beta": 12.5})
    [item] = of_kind(items, "estimate_nudge")
    assert item.key == "estimate_nudge:MF-0005:3"
    notice = item.notice
    assert notice is not None and notice.kind == "estimate" and notice.language == "en"
    assert [a.email for a in notice.to] == ["kim@beta.example"]
    estimate = notice.context["estimate"]
    assert estimate["nudge"] is True
    assert (estimate["hours"], estimate["used"], estimate["left"]) == (3.0, 12.5, 7.5)
    assert notice.context["recipient"] == {"id": "kim@beta.example", "name": "Kim"}
    assert item.event is not None and item.event.kind == "estimate_nudge"
    # Once per estimate; a new estimate is a new nudge.
    again = tick(at(30, 10), [ESTIMATED], state_since=SINCE, done={item.key})
    assert of_kind(again, "estimate_nudge") == []
    changed = replace(ESTIMATED, hours_estimate=4.5)
    assert keys(
        tick(at(30, 10), [changed], state_since=SINCE, done={item.key}), "estimate_nudge"
    ) == ["estimate_nudge:MF-0005:4.5"]


def test_estimate_nudge_reads_the_stored_time_without_state_since() -> None:
    stored = replace(ESTIMATED, data={"estimated_at": "2026-11-25T10:00:00+09:00"})
    assert len(of_kind(tick(at(27, 11), [stored]), "estimate_nudge")) == 1
    # Without any time it cannot know how long the client has waited.
    assert of_kind(tick(at(27, 11), [replace(ESTIMATED, data={})]), "estimate_nudge") == []


def test_estimate_nudge_renders() -> None:
    [item] = of_kind(tick(at(27, 11), [ESTIMATED], state_since=SINCE), "estimate_nudge")
    assert item.notice is not None
    rendered = Renderer.default().render(
        item.notice, ref="MF-0005", desk_name="Desk", desk_address="desk@example.com"
    )
    assert "[MF-0005]" in rendered.subject and "None" not in rendered.text


@pytest.mark.parametrize("language", ["ja", "en"])
def test_every_scheduled_notice_renders(language: str) -> None:
    requests = [WORK, LATE, ESTIMATED, *DESK]
    busy = tick(at(1, 10, month=12), requests, state_since=SINCE)
    notices = [item for item in busy if item.notice is not None]
    kinds = {item.notice.kind for item in notices if item.notice is not None}
    assert kinds == {"reminder", "overdue", "estimate", "digest"}
    renderer = Renderer.default()
    for item in notices:
        assert item.notice is not None
        notice = replace(item.notice, language=language)
        rendered = renderer.render(
            notice, ref=item.ref, desk_name="Desk", desk_address="desk@example.com"
        )
        for part in (rendered.subject, rendered.text, rendered.html or ""):
            assert "None" not in part and "Undefined" not in part
        if item.ref:
            assert f"[{item.ref}]" in rendered.subject


# -- the month marker ----------------------------------------------------------------------


def test_month_marker_on_the_first_tick_of_a_month() -> None:
    [marker] = of_kind(tick(at(1, 0, 5, month=12), []), "month")
    assert marker == Scheduled("month:2026-12", None, None, None)
    assert of_kind(tick(at(1, 0, 10, month=12), [], done={marker.key}), "month") == []


# -- digests -------------------------------------------------------------------------------

DESK = [
    view("MF-0010", "new"),
    view("MF-0011", "in_progress", assignee="sato", due=at(30, 12)),
    view("MF-0012", "delivered", client="delta", assignee="emma"),
]


def digests(items: Sequence[Scheduled]) -> dict[str, Scheduled]:
    return {item.key.split(":")[1]: item for item in of_kind(items, "digest")}


def test_no_digest_before_digest_time() -> None:
    assert of_kind(tick(at(27, 7, 59), DESK), "digest") == []


def test_digests_at_digest_time() -> None:
    found = digests(tick(at(27, 8), DESK))
    # Directors always; members and clients when there is something to say.
    sent = {who for who, item in found.items() if item.notice is not None}
    assert sent == {"tanaka", "ito", "sato", "acme"}
    # delta has a delivery waiting but asked for no digest; others are settled silently.
    assert "delta" not in found
    assert {"suzuki", "takahashi", "emma", "beta", "gamma"} <= set(found)
    assert all(item.ref is None and item.event is None for item in found.values())
    assert found["tanaka"].key == "digest:tanaka:2026-11-27"
    acme = found["acme"].notice
    assert acme is not None and [a.email for a in acme.to] == ["yamada@acme.example"]
    assert acme.context["digest"]["role"] == "client"
    sato = found["sato"].notice
    assert sato is not None and sato.context["digest"]["role"] == "member"
    tanaka = found["tanaka"].notice
    assert tanaka is not None and tanaka.context["digest"]["counts"]["new"] == 1


def test_digest_once_per_day_and_restart_safe() -> None:
    morning = tick(at(27, 8), DESK)
    done = {item.key for item in morning}
    assert of_kind(tick(at(27, 15), DESK, done=done), "digest") == []
    # A daemon that was down at 08:00 still sends today's digests later the same day.
    assert len(of_kind(tick(at(27, 15), DESK), "digest")) == len(of_kind(morning, "digest"))
    # The next business day is a new day; the weekend has none.
    assert of_kind(tick(at(28, 9), DESK, done=done), "digest") == []
    monday = digests(tick(at(30, 8, 1), DESK, done=done))
    assert monday["tanaka"].key == "digest:tanaka:2026-11-30"


def test_no_digest_for_an_away_member() -> None:
    # suzuki is away 2026-12-28 to 2027-01-04; Monday 28 December is a business day.
    work = [view("MF-0020", "in_progress", client="beta", assignee="suzuki")]
    found = digests(tick(at(28, 9, month=12), work))
    assert "suzuki" not in found and found["beta"].notice is not None


def test_tick_output_has_unique_keys_and_skips_done() -> None:
    items = tick(at(27, 9), [*DESK, LATE, WORK])
    all_keys = [item.key for item in items]
    assert len(all_keys) == len(set(all_keys))
    assert tick(at(27, 9), [*DESK, LATE, WORK], done=set(all_keys)) == []


def test_with_an_instance_from_init(tmp_path: Path) -> None:
    init_instance(tmp_path, demo=True, force=False)
    config = load_config(tmp_path)
    items = plan_tick(
        at(27, 9),
        [LATE],
        config.directory,
        config.rules,
        config.settings.tz,
        BusinessCalendar.from_defaults(config.rules.defaults),
        digest_time=DIGEST_AT,
        done=(),
    )
    assert keys(items, "overdue") == ["overdue:MF-0003:2026-11-27"]
    assert "digest:tanaka:2026-11-27" in keys(items, "digest")


# -- purity --------------------------------------------------------------------------------

FORBIDDEN = ("peewee", "playhouse", "smtplib", "socket", "imapclient", "aiosmtpd", "psycopg2")
FORBIDDEN_MAILFLOW = ("mailflow.store", "mailflow.outbox", "mailflow.sources", "mailflow.service")


@pytest.mark.parametrize("name", ["schedule.py", "digest.py"])
def test_scheduler_modules_are_pure(name: str) -> None:
    path = Path(__file__).resolve().parents[1] / "mailflow" / name
    tree = ast.parse(path.read_text(encoding="utf-8"))
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    bad = {
        module
        for module in imported
        if module.split(".")[0] in FORBIDDEN or module.startswith(FORBIDDEN_MAILFLOW)
    }
    assert not bad
    # No file access either.
    source = path.read_text(encoding="utf-8")
    assert "open(" not in source and "read_text" not in source
