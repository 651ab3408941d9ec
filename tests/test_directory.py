"""people.yaml: what loads, who a sender is, and the exact text of each mistake."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from textwrap import dedent

import pytest

from mailflow.directory import Directory, load_directory
from mailflow.errors import ConfigError
from mailflow.model import Address, Role, ServiceModel

DESIGN_PEOPLE = """\
directors:
  - {id: tanaka, name: 田中 花子, email: tanaka@secretary.example}
members:
  - {id: sato, name: 佐藤 一郎, email: sato@members.example, skills: [research, data_entry],
     capacity: 5}
  - {id: suzuki, name: 鈴木 美咲, email: suzuki@members.example, skills: [translation, writing],
     languages: [ja, en], away: ["2026-12-28/2027-01-04"]}
clients:
  - {id: acme, company: 株式会社アクメ, plan: director, director: tanaka,
     contacts: [yamada@acme.example], language: ja}
  - {id: beta, company: Beta LLC, plan: direct, member: suzuki, monthly_hours: 20,
     contacts: [kim@beta.example], language: en, coordinator: tanaka}
"""
SKILLS = ("research", "data_entry", "translation", "writing")


def load(tmp_path: Path, text: str, **kwargs: object) -> Directory:
    path = tmp_path / "people.yaml"
    path.write_text(dedent(text), encoding="utf-8")
    return load_directory(path, **kwargs)  # type: ignore[arg-type]


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text, known_skills=SKILLS)
    return [str(problem) for problem in caught.value.problems]


def test_design_example_loads(tmp_path: Path) -> None:
    directory = load(tmp_path, DESIGN_PEOPLE, known_skills=SKILLS)
    assert list(directory.directors) == ["tanaka"]
    sato, suzuki = directory.members.values()
    assert sato.skills == ("research", "data_entry") and sato.capacity == 5
    assert sato.languages == ("ja",) and suzuki.languages == ("ja", "en")
    assert suzuki.away == ((date(2026, 12, 28), date(2027, 1, 4)),)
    assert suzuki.is_away(date(2027, 1, 1)) and not suzuki.is_away(date(2027, 1, 5))
    acme, beta = directory.clients.values()
    assert acme.plan is ServiceModel.DIRECTOR and acme.digest is True
    assert beta.plan is ServiceModel.DIRECT and beta.member == "suzuki"
    assert beta.monthly_hours == 20.0 and beta.coordinator == "tanaka" and beta.language == "en"
    assert [person.id for person in directory.people()] == ["tanaka", "sato", "suzuki"]


def test_identify_by_role(tmp_path: Path) -> None:
    directory = load(tmp_path, DESIGN_PEOPLE)
    client = directory.identify("Yamada@ACME.example")
    assert client is not None
    assert (client.role, client.client_id) == (Role.CLIENT, "acme")
    assert client.email == "yamada@acme.example" and client.name == "株式会社アクメ"
    member = directory.identify("suzuki@members.example")
    assert member is not None and (member.role, member.person_id) == (Role.MEMBER, "suzuki")
    director = directory.identify("tanaka@secretary.example")
    assert director is not None and director.role is Role.DIRECTOR
    assert directory.identify("stranger@unknown.example") is None


def test_exact_address_beats_a_domain_contact(tmp_path: Path) -> None:
    directory = load(
        tmp_path,
        """\
        directors: [{id: tanaka, name: 田中, email: tanaka@acme.example}]
        coordinators: [{id: kobayashi, name: 小林, email: kobayashi@acme.example}]
        clients:
          - {id: acme, company: アクメ, plan: director, contacts: ["@acme.example"]}
        """,
    )
    anyone = directory.identify("someone@acme.example")
    assert anyone is not None and anyone.client_id == "acme" and anyone.role is Role.CLIENT
    staff = directory.identify("tanaka@acme.example")
    assert staff is not None and staff.role is Role.DIRECTOR
    coordinator = directory.identify("kobayashi@acme.example")
    assert coordinator is not None and coordinator.role is Role.COORDINATOR
    assert directory.identify("x@sub.acme.example") is None


def test_address_of_and_director_for(tmp_path: Path) -> None:
    directory = load(tmp_path, DESIGN_PEOPLE)
    assert directory.address_of("sato") == Address("sato@members.example", "佐藤 一郎")
    assert directory.address_of("kim@beta.example") == Address("kim@beta.example")
    with pytest.raises(KeyError):
        directory.address_of("nobody")
    tanaka = directory.directors["tanaka"]
    assert directory.director_for("beta") == tanaka  # no director of its own: the first one
    assert directory.director_for(directory.clients["acme"]) == tanaka


def test_empty_file_is_an_empty_directory(tmp_path: Path) -> None:
    directory = load(tmp_path, "# nobody yet\n")
    assert directory == Directory()
    assert directory.identify("a@b.example") is None


def test_default_language_comes_from_the_caller(tmp_path: Path) -> None:
    directory = load(
        tmp_path, "directors: [{id: t, name: T, email: t@x.example}]\n", default_language="en"
    )
    assert directory.directors["t"].language == "en"


def test_unknown_member_lists_the_valid_ones(tmp_path: Path) -> None:
    text = DESIGN_PEOPLE.replace("member: suzuki", "member: suzki")
    assert problems(tmp_path, text) == [
        "people.yaml:11: clients[1].member: unknown member 'suzki' — fix: use one of: sato, suzuki"
    ]


def test_unknown_director_and_coordinator(tmp_path: Path) -> None:
    text = DESIGN_PEOPLE.replace("director: tanaka", "director: tanka").replace(
        "coordinator: tanaka", "coordinator: kato"
    )
    assert problems(tmp_path, text) == [
        "people.yaml:9: clients[0].director: unknown director 'tanka' — fix: use one of: tanaka",
        "people.yaml:12: clients[1].coordinator: unknown coordinator 'kato' — fix: use one of: "
        "tanaka, sato, suzuki",
    ]


def test_entry_mistakes(tmp_path: Path) -> None:
    assert problems(
        tmp_path,
        """\
        directors:
          - {id: tanaka, name: 田中, email: "tanaka@"}
          - {id: tanaka, name: 伊藤, email: ito@secretary.example, lang: ja}
        members:
          - id: sato
            email: sato@members.example
            skills: []
            capacity: 0
            away: ["2026-12-32/2027-01-04", "2027-01-04/2026-12-28"]
            hours: "18:00-09:00"
          - {id: mori, name: 森, email: mori@members.example, skills: [reserch]}
        """,
    ) == [
        "people.yaml:2: directors[0].email: 'tanaka@' is not an email address — fix: write a "
        'bare address such as "name@example.com"',
        "people.yaml:3: directors[1].lang: unknown key — fix: remove it or check the spelling; "
        "known keys: id, name, email, language",
        "people.yaml:3: directors[1].id: duplicate id 'tanaka' (first used on line 2) — fix: give "
        "each entry its own id",
        "people.yaml:5: members[0].name: required key is missing — fix: add `name:` to this entry",
        "people.yaml:7: members[0].skills: a member needs at least one skill — fix: list the "
        "skills, e.g. skills: [research, data_entry]",
        "people.yaml:8: members[0].capacity: capacity must be a positive whole number, got 0 "
        "(a number) — fix: write how many open requests this member can hold at once, e.g. 5",
        "people.yaml:9: members[0].away[0]: '2026-12-32/2027-01-04' is not a date range — fix: "
        'write "YYYY-MM-DD/YYYY-MM-DD", e.g. "2026-12-28/2027-01-04"',
        "people.yaml:9: members[0].away[1]: the range ends before it starts "
        "(2027-01-04 > 2026-12-28) — fix: put the first day before the last day",
        "people.yaml:10: members[0].hours: '18:00-09:00' is not a span of working hours — fix: "
        'write it as "09:00-18:00"',
        "people.yaml:11: members[1].skills[0]: unknown skill 'reserch' — fix: use one of the "
        "skills in rules.yaml: research, data_entry, translation, writing",
    ]


def test_client_mistakes(tmp_path: Path) -> None:
    assert problems(
        tmp_path,
        """\
        directors: [{id: tanaka, name: 田中, email: tanaka@secretary.example}]
        members: [{id: sato, name: 佐藤, email: sato@members.example, skills: [research]}]
        clients:
          - {id: acme, company: アクメ, plan: directer, contacts: [yamada@acme.example],
             language: fr}
          - id: beta
            company: Beta
            plan: direct
            monthly_hours: -1
            contacts: [yamada@acme.example, sato@members.example, "kim at beta"]
        """,
    ) == [
        "people.yaml:4: clients[0].plan: unknown plan 'directer' — fix: use one of: director, "
        "direct",
        "people.yaml:5: clients[0].language: unknown language 'fr' — fix: use one of: ja, en",
        "people.yaml:6: clients[1].member: a direct client needs a dedicated member — fix: add "
        "`member:` with one of: sato",
        "people.yaml:9: clients[1].monthly_hours: monthly_hours must be a positive number, got -1 "
        "(a number) — fix: write the contracted hours per month, e.g. 20",
        "people.yaml:10: clients[1].contacts[0]: address 'yamada@acme.example' is already used by "
        "clients[0].contacts[0] (line 4) — fix: an address can belong to one person only; remove "
        "one of them",
        "people.yaml:10: clients[1].contacts[1]: address 'sato@members.example' is already used by "
        "members[0].email (line 2) — fix: an address can belong to one person only; remove one of "
        "them",
        "people.yaml:10: clients[1].contacts[2]: 'kim at beta' is not an email address or @domain "
        '— fix: write "name@example.com", or "@example.com" for a whole domain',
    ]


def test_yaml_mistakes(tmp_path: Path) -> None:
    assert problems(tmp_path, "directors:\n  - id: a\n    id: b\nmember: []\n") == [
        "people.yaml:2: directors[0].name: required key is missing — fix: add `name:` to this "
        "entry",
        "people.yaml:2: directors[0].email: required key is missing — fix: add `email:` to this "
        "entry",
        "people.yaml:3: directors[0].id: duplicate key 'id' (first on line 2) — fix: keep one "
        "'id' and remove the other",
        "people.yaml:4: member: unknown key — fix: remove it or check the spelling; known keys: "
        "directors, members, coordinators, clients",
    ]
    assert problems(tmp_path, "directors:\n  - {id: a\n") == [
        "people.yaml:3: (syntax): expected ',' or '}', but got '<stream end>' — fix: correct the "
        "YAML near column 1"
    ]
