"""The rule engine: every condition and action kind, combinators, continue, load errors."""

from __future__ import annotations

import random
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from textwrap import dedent
from typing import Any

import pytest

from mailflow.directory import Directory, directory_from_data
from mailflow.errors import ConfigError
from mailflow.instance import default_rules_path
from mailflow.rules import (
    ACTIONS,
    CONDITIONS,
    MailFacts,
    RuleSet,
    check_against,
    condition,
    infer_skills,
    load_rules,
    route,
    rules_from_data,
)
from mailflow.skills import KeywordSet, normalize
from mailflow.yamlfile import YamlChecker, parse_yaml

JST = timezone(timedelta(hours=9))
# Tuesday 2026-12-01, 10:00 in Tokyo (01:00 UTC): the mail's Date as a parser gives it.
TUESDAY_10 = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)

SKILLS = """\
skills:
  research: {ja: [調査, 競合], en: [research, compare]}
  translation: {ja: [翻訳], en: [translate]}
  phone: {ja: [電話], en: [call, phone], ignore: [電話番号, phone number]}
out_of_scope: [phone]
"""

FACTS = MailFacts(
    subject="競合調査のお願い",
    text="A社とB社を比較してください。",
    has_attachments=False,
    sender_role="client",
    client_id="acme",
    plan="director",
    sent=TUESDAY_10,
    timezone="Asia/Tokyo",
)


def compile_rules(text: str, **ids: Any) -> RuleSet:
    check = YamlChecker("rules.yaml")
    data = parse_yaml(dedent(text), "rules.yaml", check.problems)
    rules = rules_from_data(data, check, **ids)
    check.raise_if_any()
    return rules


def problems(text: str, **ids: Any) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        compile_rules(text, **ids)
    return [str(problem) for problem in caught.value.problems]


def one_route(when: str = "", then: str = "{route: quarantine}", extra: str = "") -> RuleSet:
    when_line = f"    when: {when}\n" if when else ""
    return compile_rules(
        SKILLS + f"{extra}routes:\n  - name: r\n{when_line}    then: {then}\n", member_ids=["sato"]
    )


# -- conditions ------------------------------------------------------------------------------

CONDITION_CASES = [
    ("{client: acme}", {}, True, "client is acme → yes (acme)"),
    ("{client: [beta, gamma]}", {}, False, "client is beta or gamma → no (acme)"),
    ("{plan: direct}", {}, False, "plan is direct → no (director)"),
    ("{plan: direct}", {"plan": "direct"}, True, "plan is direct → yes (direct)"),
    ("{sender_role: [client, director]}", {}, True, "role is client or director → yes (client)"),
    ("{sender_role: member}", {}, False, "role is member → no (client)"),
    ("{language: ja}", {}, True, "language is ja → yes (ja)"),
    (
        "{language: en}",
        {"subject": "Research please", "text": "Compare A and B."},
        True,
        "language is en → yes (en)",
    ),
    ("{priority: high}", {}, False, "priority is high → no (normal)"),
    ("{priority: high}", {"priority": "high"}, True, "priority is high → yes (high)"),
    ("{weekday: [tue, wed]}", {}, True, "weekday is tue or wed → yes (tue)"),
    ("{weekday: [sat, sun]}", {}, False, "weekday is sat or sun → no (tue)"),
    ("{subject_matches: '競合'}", {}, True, "subject matches '競合' → yes ('競合')"),
    (
        "{subject_matches: '(?i)urgent'}",
        {"subject": "ＵＲＧＥＮＴ: check"},
        True,
        "subject matches '(?i)urgent' → yes ('URGENT')",
    ),
    ("{body_matches: '(?i)b社'}", {}, True, "body matches '(?i)b社' → yes ('B社')"),
    ("{body_matches: '競合'}", {}, False, "body matches '競合' → no"),
    (
        "{matches: ['^x', '比較']}",
        {},
        True,
        "subject or body matches '^x' or '比較' → yes ('比較')",
    ),
    ("{subject_contains: [至急]}", {}, False, "subject contains '至急' → no"),
    ("{body_contains: [a社]}", {}, True, "body contains 'a社' → yes ('a社')"),
    (
        "{contains: [call, 至急, 急ぎ, asap]}",
        {"text": "Please call back."},
        True,
        "subject or body contains 'call', '至急', '急ぎ', … (+1) → yes ('call')",
    ),
    ("{contains: [call]}", {"text": "A callback."}, False, "subject or body contains 'call' → no"),
    ("{has_attachments: true}", {}, False, "has attachments → no"),
    ("{has_attachments: false}", {}, True, "has no attachments → yes"),
    ("{skill: research}", {}, True, "skill research → yes (research: '競合')"),
    ("{skill: [translation]}", {}, False, "skill translation → no (needs research)"),
    (
        "{skill: translation}",
        {"subject": "x", "text": "y"},
        False,
        "skill translation → no (needs no known skill)",
    ),
    (
        "{skill: translation}",
        {"skills": ("translation",)},
        True,
        "skill translation → yes (translation)",
    ),
    (
        "{out_of_scope: true}",
        {"text": "電話してください"},
        True,
        "needs an out-of-scope skill → yes (phone: '電話')",
    ),
    ("{out_of_scope: false}", {}, True, "needs no out-of-scope skill → yes (none)"),
    ("{time: '09:00-12:00'}", {}, True, "sent between 09:00-12:00 → yes (10:00)"),
    ("{time: '18:00-24:00'}", {}, False, "sent between 18:00-24:00 → no (10:00)"),
    (
        "{time: '18:00-24:00'}",
        {"sent": datetime(2026, 12, 1, 23, 59, 30, tzinfo=JST)},
        True,
        "sent between 18:00-24:00 → yes (23:59)",
    ),
    ("{working_hours: true}", {}, True, "sent in working hours → yes (tue 10:00)"),
    (
        "{working_hours: false}",
        {"sent": datetime(2026, 12, 5, 10, tzinfo=JST)},
        True,
        "sent outside working hours → yes (sat 10:00)",
    ),
    (
        "{working_hours: false}",
        {"sent": datetime(2026, 12, 30, 10, tzinfo=JST)},
        True,
        "sent outside working hours → yes (wed 10:00)",
    ),
    (
        "{working_hours: true}",
        {"sent": datetime(2026, 12, 1, 18, 30)},  # naive: read in the desk's zone
        False,
        "sent in working hours → no (tue 18:30)",
    ),
    (
        "{any: [{plan: direct}, {client: acme}]}",
        {},
        True,
        "any of (plan is direct → no (director); client is acme → yes (acme)) → yes",
    ),
    (
        "{all: [{plan: direct}, {client: acme}]}",
        {},
        False,
        "all of (plan is direct → no (director); client is acme → yes (acme)) → no",
    ),
    ("{not: {plan: direct}}", {}, True, "not (plan is direct → no (director)) → yes"),
    (
        "{any: [{plan: director, client: beta}]}",
        {},
        False,
        "any of ((plan is director → yes (director) and client is beta → no (acme)) → no) → no",
    ),
]


@pytest.mark.parametrize(("when", "changes", "matched", "reason"), CONDITION_CASES)
def test_condition(when: str, changes: dict[str, Any], matched: bool, reason: str) -> None:
    routing = route(replace(FACTS, **changes), one_route(when))
    [trace] = routing.trace
    assert trace == ("r", matched, (reason,))


def test_every_condition_kind_has_a_case() -> None:
    tested = {case[0].strip("{").split(":")[0] for case in CONDITION_CASES}
    assert tested == set(CONDITIONS)


def test_several_keys_in_one_mapping_must_all_hold() -> None:
    routing = route(FACTS, one_route("{client: acme, plan: direct}"))
    assert routing.trace[0] == (
        "r",
        False,
        ("client is acme → yes (acme)", "plan is direct → no (director)"),
    )
    assert routing.rule == "(none)" and routing.route == "director" and routing.default_route


def test_no_when_always_matches() -> None:
    routing = route(FACTS, one_route())
    assert routing.trace[0] == ("r", True, ("no conditions → always",))
    assert routing.rule == "r" and routing.route == "quarantine" and not routing.default_route


def test_a_new_condition_is_one_registered_function() -> None:
    @condition("test_subject_is_empty")
    def _empty(reader: Any, node: Any) -> Any:
        wanted = reader.flag(node)
        return lambda mail: ((not mail.facts.subject.strip()) == wanted, "subject empty")

    try:
        rules = one_route("{test_subject_is_empty: true}")
        assert route(replace(FACTS, subject=" "), rules).rule == "r"
        with pytest.raises(ValueError, match="registered twice"):
            condition("test_subject_is_empty")(_empty)
    finally:
        del CONDITIONS["test_subject_is_empty"]


# -- actions ---------------------------------------------------------------------------------

ACTION_CASES = [
    ("{route: director}", {"route": "director", "member": None}),
    ("{route: member}", {"route": "member"}),
    ("{route: auto_assign}", {"route": "auto_assign"}),
    ("{route: out_of_scope}", {"route": "out_of_scope"}),
    ("{route: quarantine}", {"route": "quarantine"}),
    ("{assign: sato}", {"route": "assign", "member": "sato"}),
    ("{priority: low}", {"priority": "low", "route": "director", "default_route": True}),
    ("{due: 2}", {"due_business_days": 2}),
    ("{due: 0}", {"due_business_days": 0}),
    ("{skills: [translation]}", {"skills": ("research", "translation")}),
    ("{tags: [vip, urgent]}", {"tags": ("vip", "urgent")}),
    ("{template: after_hours}", {"templates": ("after_hours",), "template": "after_hours"}),
]


@pytest.mark.parametrize(("then", "expected"), ACTION_CASES)
def test_action(then: str, expected: dict[str, Any]) -> None:
    routing = route(FACTS, one_route(then=then))
    assert {key: getattr(routing, key) for key in expected} == expected
    assert routing.rule == "r"


def test_every_action_kind_has_a_case() -> None:
    assert {case[0].strip("{").split(":")[0] for case in ACTION_CASES} == set(ACTIONS)


def test_without_a_route_the_plan_decides() -> None:
    rules = one_route(then="{tags: [x]}")
    assert route(FACTS, rules).route == "director"
    direct = route(replace(FACTS, plan="direct"), rules)
    assert (direct.route, direct.default_route, direct.tags) == ("member", True, ("x",))


# -- continue --------------------------------------------------------------------------------

CONTINUING = (
    SKILLS
    + """\
routes:
  - name: vip
    when: {client: acme}
    then: {priority: high, tags: [vip], route: member, template: vip_notice}
    continue: true
  - name: direct_extra
    when: {plan: direct}
    then: {tags: [direct]}
    continue: true
  - name: needs_translation
    when: {skill: translation}
    then: {route: auto_assign}
    continue: true
  - name: high_research
    when: {priority: high, skill: research}
    then: {tags: [research], route: director, due: 1}
  - name: never
    then: {route: quarantine}
"""
)


def test_continue_adds_until_a_rule_decides() -> None:
    routing = route(FACTS, compile_rules(CONTINUING))
    assert routing.rule == "high_research"
    assert (routing.route, routing.priority, routing.due_business_days) == ("director", "high", 1)
    assert routing.tags == ("vip", "research") and routing.templates == ("vip_notice",)
    assert [(trace.rule, trace.matched) for trace in routing.trace] == [
        ("vip", True),
        ("direct_extra", False),
        ("needs_translation", False),
        ("high_research", True),
    ]
    assert routing.actions == (
        "vip: priority → high",
        "vip: tags + vip",
        "vip: route → member",
        "vip: template → vip_notice",
        "high_research: tags + research",
        "high_research: route → director",
        "high_research: due → 1 business days",
    )


def test_only_continue_rules_matched_the_last_one_is_named() -> None:
    facts = replace(FACTS, client_id="beta", subject="翻訳", text="お願いします")
    routing = route(
        facts,
        compile_rules(
            CONTINUING.replace(
                "    then: {route: quarantine}\n",
                "    when: {plan: direct}\n    then: {route: quarantine}\n",
            )
        ),
    )
    assert routing.rule == "needs_translation" and routing.route == "auto_assign"


def test_later_conditions_see_earlier_skills() -> None:
    rules = compile_rules(
        SKILLS
        + """\
routes:
  - {name: add, then: {skills: [translation]}, continue: true}
  - {name: check, when: {skill: translation}, then: {route: auto_assign}}
"""
    )
    routing = route(FACTS, rules)
    assert routing.rule == "check" and routing.skills == ("research", "translation")
    assert routing.trace[1].reasons == ("skill translation → yes (translation)",)


# -- load errors -----------------------------------------------------------------------------


def test_unknown_and_duplicate_kinds() -> None:
    assert problems(
        SKILLS
        + """\
routes:
  - name: a
    when: {plan: direct, plan: director}
    then: {asign: sato}
"""
    ) == [
        "rules.yaml:8: routes[0].when.plan: duplicate key 'plan' (first on line 8) — fix: keep "
        "one 'plan' and remove the other",
        "rules.yaml:9: routes[0].then.asign: unknown key — fix: remove it or check the spelling; "
        "known keys: route, assign, priority, due, skills, tags, template",
    ]


def test_bad_values() -> None:
    assert problems(
        SKILLS
        + """\
routes:
  - name: a
    when:
      has_attachments: yes please
      weekday: [mon, funday]
      time: "9-5"
      any: {plan: direct}
      not: [plan]
      matches: ['ok', '[unclosed']
      all: []
    then:
      due: -1
      priority: [high]
      skills: [cooking]
      template: "a b"
  - name: b
    then: {route: member, assign: sato, tags: []}
"""
    ) == [
        "rules.yaml:9: routes[0].when.has_attachments: expected true or false, got 'yes please' "
        "(text) — fix: write true or false",
        "rules.yaml:10: routes[0].when.weekday[1]: unknown weekday 'funday' — fix: use one of: "
        "mon, tue, wed, thu, fri, sat, sun",
        "rules.yaml:11: routes[0].when.time: '9-5' (text) is not a span of time — fix: write it "
        'as "18:00-24:00" (in the desk\'s time zone)',
        "rules.yaml:12: routes[0].when.any: expected a list, got a mapping — fix: write it as "
        "`- item` lines or `[a, b]`",
        "rules.yaml:13: routes[0].when.not: expected a mapping (key: value), got a list — fix: "
        "write it as `key: value` lines or `{key: value, …}`",
        "rules.yaml:14: routes[0].when.matches: bad regular expression '[unclosed': unterminated "
        "character set at position 0 — fix: correct the pattern; in YAML, write it in single "
        "quotes so backslashes stay as they are",
        "rules.yaml:15: routes[0].when.all: expected at least one condition — fix: list them",
        "rules.yaml:17: routes[0].then.due: expected a whole number of business days, got -1 (a "
        "number) — fix: write how many business days the request may take, e.g. due: 2",
        "rules.yaml:18: routes[0].then.priority: expected text, got a list — fix: put the value "
        "in quotes",
        "rules.yaml:19: routes[0].then.skills[0]: unknown skill 'cooking' — fix: use one of the "
        "skills defined under skills: research, translation, phone",
        "rules.yaml:20: routes[0].then.template: 'a b' is not a template name — fix: use the file "
        "name without language and extension, e.g. after_hours",
        "rules.yaml:22: routes[1].then.tags: expected at least one value — fix: list them",
        "rules.yaml:22: routes[1].then.assign: `assign` and `route` both decide where the mail "
        "goes — fix: keep one: `assign: <member>` routes to that member",
    ]


RULES_WITH_IDS = (
    SKILLS
    + """\
routes:
  - name: a
    when: {client: [acme, omega]}
    then: {assign: satoo}
"""
)


def test_unknown_member_and_client_at_load() -> None:
    assert problems(RULES_WITH_IDS, member_ids=["sato", "suzuki"], client_ids=["acme"]) == [
        "rules.yaml:8: routes[0].when.client: unknown client 'omega' — fix: use one of the "
        "clients in people.yaml: acme",
        "rules.yaml:9: routes[0].then.assign: unknown member 'satoo' — fix: use one of the "
        "members in people.yaml: sato, suzuki",
    ]


def test_check_against_a_directory() -> None:
    rules = compile_rules(RULES_WITH_IDS)  # without ids, loading cannot tell
    people = parse_yaml(
        dedent(
            """\
            directors: [{id: tanaka, name: 田中, email: tanaka@desk.example}]
            members: [{id: sato, name: 佐藤, email: sato@m.example, skills: [research]}]
            clients: [{id: acme, company: Acme, plan: director, contacts: [a@acme.example]}]
            """
        ),
        "people.yaml",
    )
    directory: Directory = directory_from_data(people, YamlChecker("people.yaml"))
    assert [str(problem) for problem in check_against(rules, directory)] == [
        "rules.yaml:8: routes[0].when.client: unknown client 'omega' — fix: use one of the "
        "clients in people.yaml: acme",
        "rules.yaml:9: routes[0].then.assign: unknown member 'satoo' — fix: use one of the "
        "members in people.yaml: sato",
    ]


def test_load_rules_takes_member_ids(tmp_path: Any) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES_WITH_IDS, encoding="utf-8")
    assert load_rules(path).routes[0].name == "a"
    with pytest.raises(ConfigError, match="unknown member 'satoo'"):
        load_rules(path, member_ids=["sato"])


# -- skill inference -------------------------------------------------------------------------

DEFAULT = load_rules(default_rules_path())


@pytest.mark.parametrize(
    ("subject", "text", "expected"),
    [
        ("市場調査のお願い", "", (("research", "市場調査"),)),
        ("ﾘｻｰﾁ", "", (("research", "リサーチ"),)),  # half-width katakana
        ("ご依頼", "市場\n調査をお願いします", (("research", "市場調査"),)),  # a wrapped line
        ("", "RESEARCH the market", (("research", "research"),)),
        ("", "Please translate this contract", (("translation", "translate"),)),
        ("", "The translated version", (("translation", "translate"),)),
        ("", "Two calls to the bank", (("phone", "call"),)),
        ("", "Our callback form", ()),
        ("名刺の入力", "名刺の電話番号も入力してください", (("data_entry", "名刺"),)),
        ("", "I am writing to ask about the invoice", (("accounting", "invoice"),)),
        (
            "Contract",
            "Please translate it.\n-- \nJohn Smith\nPhone: +1 555 0100",
            (("translation", "translate"),),
        ),
        ("調査", "よろしくお願いします。\n山田\nTEL：03-1234-5678", (("research", "調査"),)),
        ("", "03-1234-5678に電話して予約してください", (("scheduling", "予約"), ("phone", "電話"))),
        ("ロゴとバナーのデザイン", "", (("design", "ロゴ"),)),
        ("Schedule a video call with ABC", "", (("scheduling", "schedule"),)),
        ("来社対応のお願い", "", (("office_visit", "来社"),)),
        ("Hello", "Just saying hi.", ()),
    ],
)
def test_infer_skills(subject: str, text: str, expected: tuple[tuple[str, str], ...]) -> None:
    assert infer_skills(subject, text, DEFAULT) == expected


# -- the default rules.yaml ------------------------------------------------------------------


def default_route(subject: str, text: str = "", **changes: Any) -> Any:
    return route(replace(FACTS, subject=subject, text=text, **changes), DEFAULT)


def test_default_rules_phone_work_is_out_of_scope() -> None:
    routing = default_route("電話での予約代行をお願いします", "明日の18時で3名です。")
    assert (routing.rule, routing.route) == ("out_of_scope", "out_of_scope")
    assert routing.out_of_scope == ("phone",) and routing.tags == ("out_of_scope",)
    assert routing.trace[1].reasons == ("needs an out-of-scope skill → yes (phone: '電話')",)


def test_default_rules_urgent_research() -> None:
    routing = default_route("至急：競合調査", "A社の競合を3社リストアップしてください。")
    assert (routing.rule, routing.route, routing.priority) == ("default", "director", "high")
    assert routing.skills == ("research",) and routing.tags == ("urgent",)
    assert routing.trace[0].matched and routing.language == "ja"


def test_default_rules_english_translation() -> None:
    routing = default_route("Please translate this contract", "Into Japanese, by Friday.")
    assert (routing.rule, routing.route, routing.language) == ("default", "director", "en")
    assert routing.skills == ("translation",) and routing.priority == "normal"


def test_default_rules_direct_client_goes_to_the_member() -> None:
    routing = default_route("議事録の作成", "添付の録音から議事録をお願いします。", plan="direct")
    assert (routing.rule, routing.route, routing.skills) == (
        "direct_client",
        "member",
        ("writing",),
    )


def test_default_rules_office_visit_for_a_direct_client() -> None:
    routing = default_route("郵便物の投函", "明日までに郵便局へお願いします", plan="direct")
    assert (routing.rule, routing.route) == ("out_of_scope", "out_of_scope")
    assert routing.out_of_scope == ("office_visit",)


def test_default_rules_phone_numbers_to_type_are_data_entry() -> None:
    routing = default_route(
        "名刺100枚のデータ入力", "会社名・氏名・電話番号を Excel にお願いします。"
    )
    assert (routing.rule, routing.skills) == ("default", ("data_entry",))


def test_routing_is_fast_enough() -> None:
    import time

    facts = replace(FACTS, text="A社とB社を比較してください。" * 20)
    started = time.perf_counter()
    for _ in range(500):
        route(facts, DEFAULT)
    per_second = 500 / (time.perf_counter() - started)
    assert per_second > 2000, per_second


def test_normalize_drops_only_spaces_between_two_non_ascii_characters() -> None:
    """A mail client's line wrap inside Japanese text is no word break; other spaces stay."""
    rng = random.Random(7)
    for _ in range(3000):
        words = (rng.choice(["市場", "調査", "a", "b1", "ü", "é", "、"]) for _ in range(6))
        folded = " ".join(words)
        kept = [
            char
            for index, char in enumerate(folded)
            if char != " " or folded[index - 1].isascii() or folded[index + 1].isascii()
        ]
        assert normalize(folded) == normalize("".join(kept)) == "".join(kept).casefold()


def _slow_pattern(form: str) -> str:
    """A keyword's regular expression as the module docstring of skills.py says it."""
    pattern = re.escape(form)
    if re.fullmatch(r"[\x00-\x7f]*[0-9a-z][\x00-\x7f]*", form):
        start = r"(?<![0-9a-z])" if form[0].isalnum() else ""
        short = len(form) <= 4 and form[-1].isalnum()
        pattern = start + pattern + (r"s?(?![0-9a-z])" if short else "")
    return pattern


def _first_keyword(keywords: KeywordSet, text: str) -> str | None:
    """What ``find`` must say, the slow way: each keyword's first match on its own, the
    earliest wins, then the longest."""
    best: tuple[int, int, str] | None = None
    forms = sorted(keywords._written.items(), key=lambda item: -len(item[0]))
    for order, (form, written) in enumerate(forms):
        match = re.search(_slow_pattern(form), text)
        if match and (best is None or (match.start(), order) < best[:2]):
            best = (match.start(), order, written)
    return None if best is None else best[2]


def test_keyword_search_finds_the_earliest_then_longest_keyword() -> None:
    words = ["call", "phone call", "data", "data entry", "in person", "a.b", "-x", "3d", "市場調査"]
    phrases = ["call with", "phone number", "訪問者"]
    keywords, ignore = KeywordSet([*words, "調査"]), KeywordSet(phrases)
    blank = re.compile("|".join(_slow_pattern(normalize(phrase)) for phrase in phrases))
    pieces = [*words, *phrases, "調査", "calls", "callback", "s", "x", "1", " ", ".", "-", "ア"]
    rng = random.Random(11)
    for _ in range(20000):
        text = normalize("".join(rng.choice(pieces) for _ in range(rng.randrange(1, 7))))
        assert keywords.find(text) == _first_keyword(keywords, text), text
        assert ignore.mask(text) == blank.sub(" ", text), text
