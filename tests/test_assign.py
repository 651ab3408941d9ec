"""Member choice: skill, language, time off, capacity, load, weekly count, round robin."""

from __future__ import annotations

import ast
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from textwrap import dedent

import pytest

from mailflow.assign import (
    DEFAULT_REQUEST_HOURS,
    Assignment,
    MemberLoad,
    choose_member,
    direct_member,
    explain_lines,
)
from mailflow.directory import Directory, directory_from_data
from mailflow.instance import default_rules_path
from mailflow.rules import MailFacts, RuleSet, load_rules, route
from mailflow.skills import detect_language
from mailflow.yamlfile import YamlChecker, parse_yaml

TODAY = date(2026, 12, 1)
JST = timezone(timedelta(hours=9))

PEOPLE = """\
directors:
  - {id: tanaka, name: 田中 花子, email: tanaka@secretary.example}
members:
  - {id: sato, name: 佐藤 一郎, email: sato@members.example, skills: [research, data_entry],
     capacity: 5}
  - {id: suzuki, name: 鈴木 美咲, email: suzuki@members.example, skills: [translation, writing],
     languages: [ja, en], away: ["2026-12-28/2027-01-04"]}
  - {id: emma, name: Emma Wilson, email: emma@members.example, language: en,
     skills: [research, writing, translation], languages: [en, ja], capacity: 3}
  - {id: kato, name: 加藤 翼, email: kato@members.example, skills: [research, writing]}
clients:
  - {id: acme, company: 株式会社アクメ, plan: director, director: tanaka,
     contacts: [yamada@acme.example], language: ja}
  - {id: beta, company: Beta LLC, plan: direct, member: suzuki, monthly_hours: 20,
     contacts: [kim@beta.example], language: en, coordinator: tanaka}
"""


def load_people(text: str = PEOPLE) -> Directory:
    check = YamlChecker("people.yaml")
    directory = directory_from_data(parse_yaml(dedent(text), "people.yaml"), check)
    check.raise_if_any()
    return directory


PEOPLE_DIR = load_people()
ACME = PEOPLE_DIR.clients["acme"]
BETA = PEOPLE_DIR.clients["beta"]


def at(day: int, hour: int = 10) -> datetime:
    return datetime(2026, 11, day, hour, tzinfo=JST)


def choose(
    skills: tuple[str, ...],
    workload: dict[str, MemberLoad] | None = None,
    *,
    language: str | None = None,
    today: date = TODAY,
    exclude: tuple[str, ...] = (),
) -> Assignment:
    return choose_member(skills, language, ACME, PEOPLE_DIR, workload or {}, today, exclude=exclude)


def test_member_load_weighting() -> None:
    assert MemberLoad().load_hours == 0
    assert MemberLoad(open_requests=3).load_hours == 3 * DEFAULT_REQUEST_HOURS
    assert MemberLoad(open_requests=3, open_hours=1.5).load_hours == 1.5
    assert MemberLoad.of([1.0, None, 0.5]) == MemberLoad(3, 3.5, 0, None)


def test_skill_is_required_and_every_exclusion_is_explained() -> None:
    chosen = choose(("translation",), {"emma": MemberLoad(3, 6.0)})
    assert (chosen.member, chosen.runner_up) == ("suzuki", None)
    assert chosen.rejected == (
        ("sato", "lacks translation"),
        ("emma", "at capacity 3/3"),
        ("kato", "lacks translation"),
    )


@pytest.mark.parametrize(
    ("skills", "language", "today", "workload", "exclude", "member", "rejected"),
    [
        # Language: sato and kato work in Japanese only.
        (("research",), "en", TODAY, {}, (), "emma", {"sato": "does not work in en"}),
        # Time off: suzuki is away over the New Year.
        (
            ("translation",),
            "ja",
            date(2026, 12, 28),
            {},
            (),
            "emma",
            {"suzuki": "away until 2027-01-04"},
        ),
        # Capacity: open requests, not hours.
        (
            ("research",),
            None,
            TODAY,
            {"sato": MemberLoad(5, 1.0), "emma": MemberLoad(3, 1.0)},
            (),
            "kato",
            {"sato": "at capacity 5/5", "emma": "at capacity 3/3"},
        ),
        # Excluded (e.g. the member who just handed the request back).
        (("writing",), None, TODAY, {}, ("kato", "emma"), "suzuki", {"kato": "excluded"}),
        # Several missing skills are all named.
        (
            ("research", "translation", "design"),
            None,
            TODAY,
            {},
            (),
            None,
            {"sato": "lacks translation, design"},
        ),
    ],
)
def test_candidates(
    skills: tuple[str, ...],
    language: str | None,
    today: date,
    workload: dict[str, MemberLoad],
    exclude: tuple[str, ...],
    member: str | None,
    rejected: dict[str, str],
) -> None:
    chosen = choose(skills, workload, language=language, today=today, exclude=exclude)
    assert chosen.member == member
    assert rejected.items() <= dict(chosen.rejected).items()


def test_least_loaded_by_hours_not_by_count() -> None:
    # sato has more requests but they are small; emma has one long one.
    workload = {
        "sato": MemberLoad.of([0.5, 0.5, 0.5]),
        "emma": MemberLoad.of([5.0]),
        "kato": MemberLoad.of([None, None]),
    }
    chosen = choose(("research",), workload)
    assert (chosen.member, chosen.runner_up) == ("sato", "kato")
    assert chosen.reasons == (
        "suggested sato: 3 open requests (1.5 h), 0 assigned this week, never assigned "
        "(needs research, in ja)",
        "runner-up kato: 2 open requests (4 h), 0 assigned this week, never assigned",
        "sato before kato: less loaded (1.5 h against 4 h)",
    )


def test_then_fewest_assignments_this_week() -> None:
    workload = {
        "sato": MemberLoad(1, 2.0, assigned_this_week=4),
        "emma": MemberLoad(1, 2.0, assigned_this_week=1),
        "kato": MemberLoad(1, 2.0, assigned_this_week=2),
    }
    chosen = choose(("research",), workload)
    assert (chosen.member, chosen.runner_up) == ("emma", "kato")
    assert (
        chosen.reasons[-1]
        == "emma before kato: same load; fewer assignments this week (1 against 2)"
    )


def test_then_round_robin_is_stable() -> None:
    workload = {
        "sato": MemberLoad(last_assigned_at=at(20)),
        "emma": MemberLoad(last_assigned_at=at(25)),
        "kato": MemberLoad(last_assigned_at=at(18)),
    }
    first = choose(("research",), workload)
    assert (first.member, first.runner_up) == ("kato", "sato")
    assert first.reasons[-1] == (
        "kato before sato: same load and weekly count; next in the round robin "
        "(assigned longest ago)"
    )
    # After kato is assigned, the turn passes to sato, then emma, then kato again.
    order = []
    for day in range(26, 29):
        chosen = choose(("research",), workload)
        assert chosen.member is not None
        order.append(chosen.member)
        workload[chosen.member] = MemberLoad(last_assigned_at=at(day))
    assert order == ["kato", "sato", "emma"]
    assert choose(("research",), workload).member == "kato"


def test_never_assigned_comes_first_then_id() -> None:
    chosen = choose(("research",), {"sato": MemberLoad(last_assigned_at=at(1))})
    assert (chosen.member, chosen.runner_up) == ("emma", "kato")
    assert (
        chosen.reasons[-1]
        == "emma before kato: same load, weekly count and last assignment; first by id"
    )


def test_language_defaults_to_the_clients() -> None:
    beta_choice = choose_member(("research",), None, BETA, PEOPLE_DIR, {}, TODAY)
    assert beta_choice.member == "emma"


def test_nobody_qualifies() -> None:
    chosen = choose(("phone",))
    assert (chosen.member, chosen.runner_up) == (None, None)
    assert chosen.reasons == ("no member qualifies (needs phone, in ja)",)
    assert [member for member, _ in chosen.rejected] == ["sato", "suzuki", "emma", "kato"]
    assert choose_member((), "ja", None, Directory(), {}, TODAY).reasons == ("no members",)


def test_direct_member() -> None:
    assert direct_member(BETA, ["translation"], PEOPLE_DIR) == ("suzuki", ())
    assert direct_member(BETA, ["translation"], PEOPLE_DIR).in_scope
    choice = direct_member(BETA, ["writing", "phone", "research", "phone"], PEOPLE_DIR)
    assert choice == ("suzuki", ("phone", "research")) and not choice.in_scope
    assert direct_member(ACME, ["research"], PEOPLE_DIR) == (None, ("research",))


def test_explain_lines() -> None:
    rules = load_rules(default_rules_path())
    facts = MailFacts(
        subject="至急：競合調査",
        text="A社の競合を3社リストアップしてください。",
        has_attachments=False,
        sender_role="client",
        client_id="acme",
        plan="director",
        sent=datetime(2026, 12, 1, 10, tzinfo=JST),
    )
    routing = route(facts, rules)
    assignment = choose(routing.skills, {"sato": MemberLoad(5)})
    assert explain_lines(routing, assignment) == [
        "route 'urgent': matched — any of (subject matches '(?i)至急|急ぎ|緊急|urgent|asap' → yes "
        "('至急'); body contains '至急', '大至急', '急ぎ', … (+5) → no) → yes",
        "route 'out_of_scope': no match — needs an out-of-scope skill → no (none)",
        "route 'direct_client': no match — plan is direct → no (director)",
        "route 'default': matched — no conditions → always",
        "language: ja",
        "skills: research ('競合')",
        "urgent: priority → high",
        "urgent: tags + urgent",
        "default: route → director",
        "decided by 'default': director",
        "suggested emma: 0 open requests (0 h), 0 assigned this week, never assigned "
        "(needs research, in ja)",
        "runner-up kato: 0 open requests (0 h), 0 assigned this week, never assigned",
        "emma before kato: same load, weekly count and last assignment; first by id",
        "sato: at capacity 5/5",
        "suzuki: lacks research",
    ]
    fallback = route(replace(facts, subject="x", text="y"), RuleSet())
    assert explain_lines(fallback) == [
        "language: en",
        "skills: none recognised",
        "no route chose where to go; the client's plan decides: director",
    ]


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("こんにちは", "ja"),
        ("カタカナ", "ja"),
        ("漢字", "ja"),
        ("ﾊﾝｶｸ", "ja"),
        ("Hello 田中さん", "ja"),
        ("Hello", "en"),
        ("", "en"),
        ("Ünïcode café", "en"),
    ],
)
def test_detect_language(text: str, language: str) -> None:
    assert detect_language(text) == language


@pytest.mark.parametrize("name", ["assign.py", "skills.py", "rules.py"])
def test_routing_modules_stay_pure(name: str) -> None:
    source = (Path(__file__).resolve().parents[1] / "mailflow" / name).read_text(encoding="utf-8")
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    forbidden = {"peewee", "socket", "smtplib", "imapclient", "aiosmtpd", "mailflow.store"}
    assert not imported & forbidden
