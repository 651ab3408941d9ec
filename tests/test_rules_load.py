"""rules.yaml: the shipped default loads, and each mistake reads exactly as promised."""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

import pytest

from mailflow.errors import ConfigError
from mailflow.instance import default_rules_path
from mailflow.rules import Defaults, RuleSet, load_rules

DESIGN_SKILLS = (
    "research",
    "data_entry",
    "translation",
    "writing",
    "accounting",
    "design",
    "scheduling",
    "phone",
    "office_visit",
)


def load(tmp_path: Path, text: str) -> RuleSet:
    path = tmp_path / "rules.yaml"
    path.write_text(dedent(text), encoding="utf-8")
    return load_rules(path)


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    return [str(problem) for problem in caught.value.problems]


def test_default_rules_load() -> None:
    rules = load_rules(default_rules_path())
    assert tuple(rules.skills) == DESIGN_SKILLS
    for skill in rules.skills.values():
        assert skill.keywords_ja and skill.keywords_en, skill.name
    assert "調査" in rules.skills["research"].keywords_ja
    assert "電話" in rules.skills["phone"].keywords_ja
    assert "来社" in rules.skills["office_visit"].keywords_ja
    assert rules.out_of_scope == ("phone", "office_visit")
    assert "ありがとうございます" in rules.replies["acceptance"]["ja"]
    assert "修正" in rules.replies["revision"]["ja"]
    assert "looks good" in rules.replies["acceptance"]["en"]
    assert rules.defaults == Defaults(
        3,
        24,
        ((3, 600), (20, 86400)),
        ((30, 600), (100, 86400)),
        "09:00-18:00",
        "jp",
        (((12, 29), (1, 3)),),
    )
    assert [route.name for route in rules.routes] == [
        "urgent",
        "out_of_scope",
        "direct_client",
        "default",
    ]
    urgent, out_of_scope, _, default = rules.routes
    assert urgent.continue_ and urgent.then["priority"] == "high"
    assert out_of_scope.when == {"out_of_scope": True}
    assert out_of_scope.then == {"route": "out_of_scope", "tags": ["out_of_scope"]}
    assert "電話番号" in rules.skills["phone"].ignore
    assert default.when == {} and default.then == {"route": "director"}
    assert "Excel" in rules.formats["excel"]


def test_route_lines_are_kept(tmp_path: Path) -> None:
    rules = load(
        tmp_path,
        """\
        skills: {research: {ja: [調査]}}
        routes:
          - name: first
            then: {route: member}
          - name: second
            when: {all: [{skill: research}, {not: {plan: direct}}]}
            then: {route: director, tags: [x]}
        """,
    )
    first, second = rules.routes
    assert (first.line, second.line) == (3, 5)
    assert rules.skills["research"].keywords_en == ()
    assert rules.replies["acceptance"] == {"ja": (), "en": ()}


def test_empty_file_is_an_empty_rule_set(tmp_path: Path) -> None:
    rules = load(tmp_path, "# nothing\n")
    assert rules.skills == {} and rules.routes == () and rules.defaults == Defaults()


def test_top_level_and_skill_mistakes(tmp_path: Path) -> None:
    assert problems(
        tmp_path,
        """\
        skills:
          research: {ja: [調査], fr: [recherche]}
        out_of_scope: [phone]
        route: []
        """,
    ) == [
        "rules.yaml:2: skills.research.fr: unknown key — fix: remove it or check the spelling; "
        "known keys: ja, en, ignore",
        "rules.yaml:3: out_of_scope[0]: unknown skill 'phone' — fix: use one of the skills "
        "defined under skills: research",
        "rules.yaml:4: route: unknown key — fix: remove it or check the spelling; known keys: "
        "skills, out_of_scope, replies, formats, defaults, routes",
    ]


def test_route_mistakes(tmp_path: Path) -> None:
    assert problems(
        tmp_path,
        r"""
        skills: {phone: {ja: [電話]}}
        routes:
          - name: urgent
            when:
              any:
                - subject_matches: '(至急'
                - {body_contain: [急ぎ]}
            then: {priority: urgent}
          - when: {skill: [phon]}
          - name: urgent
            then: {route: nowhere}
        """,
    ) == [
        "rules.yaml:7: routes[0].when.any[0].subject_matches: bad regular expression '(至急': "
        "missing ), unterminated subpattern at position 0 — fix: correct the pattern; in YAML, "
        "write it in single quotes so backslashes stay as they are",
        "rules.yaml:8: routes[0].when.any[1].body_contain: unknown key — fix: remove it or check "
        "the spelling; known keys: any, all, not, client, plan, sender_role, language, priority, "
        "weekday, subject_matches, body_matches, matches, subject_contains, body_contains, "
        "contains, has_attachments, skill, out_of_scope, time, working_hours",
        "rules.yaml:9: routes[0].then.priority: unknown priority 'urgent' — fix: use one of: "
        "high, normal, low",
        "rules.yaml:10: routes[1].name: required key is missing — fix: add `name:` to this entry",
        "rules.yaml:10: routes[1].then: required key is missing — fix: add `then:` to this entry",
        "rules.yaml:10: routes[1].when.skill[0]: unknown skill 'phon' — fix: use one of the skills "
        "defined under skills: phone",
        "rules.yaml:11: routes[2].name: duplicate route name 'urgent' (first on line 4) — fix: "
        "give each route its own name",
        "rules.yaml:12: routes[2].then.route: unknown route 'nowhere' — fix: use one of: "
        "director, member, auto_assign, out_of_scope, quarantine",
    ]


def test_defaults_mistakes(tmp_path: Path) -> None:
    assert problems(
        tmp_path,
        """\
        defaults:
          deadline_business_days: 0
          working_hours: "9-18"
          holidays: us
          closures: ["12-29/01-03", "13-01/01-02"]
        """,
    ) == [
        "rules.yaml:2: defaults.deadline_business_days: expected a whole number of at least 1, "
        "got 0 (a number) — fix: write a number such as 3",
        "rules.yaml:3: defaults.working_hours: '9-18' is not a span of working hours — fix: "
        'write it as "09:00-18:00"',
        "rules.yaml:4: defaults.holidays: unknown holiday calendar 'us' — fix: use one of: jp, "
        "none",
        "rules.yaml:5: defaults.closures[1]: '13-01/01-02' is not a closure — fix: write "
        '"MM-DD/MM-DD", e.g. "12-29/01-03" (it may cross the new year)',
    ]


def test_reply_kinds(tmp_path: Path) -> None:
    assert problems(tmp_path, "replies:\n  thanks: {ja: [どうも]}\n") == [
        "rules.yaml:2: replies.thanks: unknown kind of reply — fix: use one of: acceptance, "
        "revision, unclear"
    ]


def test_yaml_syntax_error(tmp_path: Path) -> None:
    assert problems(tmp_path, "skills:\n\tresearch: {}\n") == [
        "rules.yaml:2: (syntax): found character '\\t' that cannot start any token — fix: indent "
        "with spaces, not tabs"
    ]


def test_automatic_mail_limits_are_read_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text('defaults:\n  automatic_mail_limits: ["5/15m", "30/1d"]\n', encoding="utf-8")
    assert load_rules(path).defaults.automatic_mail_limits == ((5, 900), (30, 86400))
    path.write_text('defaults:\n  automatic_mail_limits: ["often"]\n', encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_rules(path)
    assert "rules.yaml:2: defaults.automatic_mail_limits: 'often' is not a limit" in str(
        caught.value
    )
