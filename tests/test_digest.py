"""Daily digests: what each reader is told, and how it reads in ja and en."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from mailflow.calendar_jp import BusinessCalendar
from mailflow.digest import digest_for, digest_notice, preview
from mailflow.directory import Directory, directory_from_data
from mailflow.instance import DEMO_PEOPLE
from mailflow.model import Notice, ServiceModel, State
from mailflow.phrases import phrase
from mailflow.render import Rendered, Renderer
from mailflow.situation import RequestView
from mailflow.yamlfile import YamlChecker, parse_yaml

TZ = ZoneInfo("Asia/Tokyo")
CALENDAR = BusinessCalendar()
DESK_NAME = "Example オンライン秘書"
DESK_ADDRESS = "desk@secretary.example"
# Friday 27 November 2026, 08:30 in Tokyo.
NOW = datetime(2026, 11, 27, 8, 30, tzinfo=TZ)


def demo_directory() -> Directory:
    check = YamlChecker("people.yaml")
    directory = directory_from_data(parse_yaml(DEMO_PEOPLE, "people.yaml"), check)
    assert not check.problems
    return directory


def at(day: int, hour: int, minute: int = 0, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=TZ)


def view(
    ref: str,
    state: str,
    *,
    client: str = "acme",
    assignee: str | None = None,
    due: datetime | None = None,
    subject: str | None = None,
    **extra: Any,
) -> RequestView:
    """A request of the demo people: director model for acme/delta, direct for beta/gamma."""
    direct = client in ("beta", "gamma")
    directors = {"acme": "tanaka", "delta": "ito"}
    return RequestView(
        ref=ref,
        state=State(state),
        model=ServiceModel.DIRECT if direct else ServiceModel.DIRECTOR,
        client=client,
        director=None if direct else directors[client],
        assignee=assignee,
        subject=subject or f"{ref} の件",
        text="本文",
        language="ja",
        due=due,
        **extra,
    )


def desk() -> list[RequestView]:
    """A desk on Friday morning: tanaka leads acme (director model) and beta (coordinator)."""
    return [
        view("MF-0001", "new", subject="11月分の売上データ集計"),
        view("MF-0002", "new", subject="競合調査"),
        view("MF-0003", "in_review", assignee="sato", due=at(30, 12)),
        view("MF-0004", "in_progress", assignee="sato", due=at(26, 18), priority="high"),
        view("MF-0005", "delivered", assignee="sato", due=at(25, 18)),
        view("MF-0006", "closed", assignee="sato"),
        view("MF-0007", "assigned", assignee="emma", client="delta", due=at(27, 18)),
        view("MF-0008", "estimated", client="beta", assignee="suzuki", hours_estimate=3.0),
    ]


HELD = [
    {
        "id": n,
        "state": "quarantined" if n % 2 else "held",
        "sender": f"s{n}@example.com",
        "subject": f"mail {n}",
        "reason": "unknown sender",
        "received_at": "2026-11-26T10:00:00+09:00",
    }
    for n in range(1, 8)
]


def digest(
    role: str,
    person: str,
    requests: Sequence[RequestView] | None = None,
    *,
    held: Sequence[Mapping[str, Any]] = (),
    hours_used: Mapping[str, float] | None = None,
    now: datetime = NOW,
) -> dict[str, Any] | None:
    return digest_for(
        role,
        person,
        now,
        desk() if requests is None else requests,
        demo_directory(),
        TZ,
        held=held,
        hours_used=hours_used or {},
        calendar=CALENDAR,
    )


def refs(section: Mapping[str, Any]) -> list[str]:
    return [item["ref"] for item in section["items"]]


def sections(found: Mapping[str, Any]) -> dict[str, list[str]]:
    return {section["key"]: refs(section) for section in found["sections"]}


# -- content -------------------------------------------------------------------------------


def test_director_digest_lists_what_waits_on_the_director() -> None:
    found = digest("director", "tanaka", held=HELD)
    assert found is not None
    assert found["role"] == "director" and found["date"] == "2026-11-27"
    # Friday: the next business day is Monday.
    assert found["next_day"] == "2026-11-30"
    assert sections(found) == {
        "new": ["MF-0001", "MF-0002"],
        "review": ["MF-0003"],
        "overdue": ["MF-0004"],
        "due_today": [],
        "due_tomorrow": ["MF-0003"],
    }
    assert found["counts"] == {
        "new": 2,
        "review": 1,
        "overdue": 1,
        "due_today": 0,
        "due_tomorrow": 1,
        "held": 7,
    }
    overdue = found["sections"][2]["items"][0]
    assert overdue["overdue"] and overdue["hours_late"] == 14.5
    assert overdue["due"] == "2026-11-26T18:00:00+09:00"
    assert overdue["member"] == {"id": "sato", "name": "佐藤 一郎"}
    assert found["held"]["count"] == 7
    assert [mail["id"] for mail in found["held"]["items"]] == [1, 2, 3, 4, 5]


def test_director_digest_shows_every_members_load() -> None:
    found = digest("director", "tanaka")
    assert found is not None
    load = {member["id"]: member for member in found["load"]}
    assert set(load) == {"sato", "suzuki", "takahashi", "emma"}
    # In review and in progress count; delivered and closed work does not.
    assert load["sato"]["open"] == 2 and load["sato"]["capacity"] == 5
    assert load["suzuki"] == {
        "id": "suzuki",
        "name": "鈴木 美咲",
        "open": 1,
        "hours_estimate": 3.0,
        "capacity": 5,
        "away": False,
    }


def test_each_director_sees_the_requests_they_lead() -> None:
    found = digest("director", "ito")
    assert found is not None
    # ito leads delta (director model) and gamma (coordinator); acme and beta are tanaka's.
    assert sections(found)["due_today"] == ["MF-0007"]
    assert not sections(found)["new"] and not sections(found)["overdue"]


def test_a_director_always_gets_a_digest() -> None:
    found = digest("director", "ito", [])
    assert found is not None
    assert all(not section["items"] for section in found["sections"])
    assert found["held"] == {"count": 0, "items": []}


def test_member_digest_lists_their_open_requests_by_deadline() -> None:
    found = digest("member", "sato")
    assert found is not None
    # Delivered and closed requests are not the member's to do; no deadline comes last.
    assert sections(found) == {"open": ["MF-0004", "MF-0003"]}
    assert found["counts"] == {"open": 2, "overdue": 1, "due_today": 0}
    assert found["sections"][0]["items"][0]["state"] == "in_progress"


def test_member_without_work_gets_nothing() -> None:
    assert digest("member", "takahashi") is None


def test_client_digest_groups_their_requests() -> None:
    found = digest("client", "acme")
    assert found is not None
    assert sections(found) == {
        "awaiting_answer": ["MF-0005"],
        "in_progress": ["MF-0004", "MF-0003", "MF-0001", "MF-0002"],
    }
    assert found["counts"] == {"awaiting_answer": 1, "estimates": 0, "in_progress": 4}
    assert found["hours"] is None
    # The director model's team stays internal.
    assert all(item["member"] is None for s in found["sections"] for item in s["items"])


def test_direct_client_digest_shows_estimates_and_hours() -> None:
    found = digest("client", "beta", hours_used={"beta": 12.5})
    assert found is not None
    assert sections(found) == {"estimates": ["MF-0008"]}
    line = found["sections"][0]["items"][0]
    assert line["member"] == {"id": "suzuki", "name": "鈴木 美咲"}
    assert line["hours_estimate"] == 3.0
    assert found["hours"] == {
        "month": "2026-11",
        "used": 12.5,
        "monthly": 20.0,
        "left": 7.5,
        "over": False,
        "percent": 62,
    }


def test_client_over_its_hours_is_told() -> None:
    found = digest("client", "beta", hours_used={"beta": 23})
    assert found is not None
    assert found["hours"]["left"] == 0 and found["hours"]["over"]


def test_client_with_nothing_open_gets_nothing() -> None:
    assert digest("client", "gamma") is None
    assert digest("client", "nobody") is None


def test_unknown_role_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown digest role 'coordinator'"):
        digest("coordinator", "tanaka")


@pytest.mark.parametrize(
    ("email", "expected"),
    [
        ("tanaka@secretary.example", ("director", "tanaka")),
        ("SATO@members.example", ("member", "sato")),
        ("yamada@acme.example", ("client", "acme")),
        ("anyone@delta-trading.example", ("client", "delta")),
        ("stranger@example.com", None),
    ],
)
def test_preview_finds_whose_digest_an_address_gets(
    email: str, expected: tuple[str, str] | None
) -> None:
    assert preview(email, demo_directory()) == expected


def test_client_digest_goes_to_the_first_real_contact() -> None:
    directory = demo_directory()
    found = digest("client", "acme")
    assert found is not None
    notice = digest_notice("client", "acme", found, directory)
    assert notice is not None
    assert [a.email for a in notice.to] == ["yamada@acme.example"]
    assert notice.recipient_id == "yamada@acme.example" and notice.language == "ja"
    assert notice.context["client"]["company"] == "株式会社アクメ"
    # A preview goes to the address asked about.
    other = digest_notice("client", "acme", found, directory, address="boss@acme.example")
    assert other is not None and other.to[0].email == "boss@acme.example"


# -- rendering -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer.default()


def render(renderer: Renderer, notice: Notice, language: str) -> Rendered:
    notice = Notice(
        kind=notice.kind,
        to=notice.to,
        language=language,
        recipient_id=notice.recipient_id,
        context=notice.context,
    )
    return renderer.render(notice, ref=None, desk_name=DESK_NAME, desk_address=DESK_ADDRESS)


def rendered_digest(
    renderer: Renderer, role: str, person: str, language: str, **kwargs: Any
) -> Rendered:
    found = digest(role, person, **kwargs)
    assert found is not None
    notice = digest_notice(role, person, found, demo_directory())
    assert notice is not None and notice.kind == "digest"
    result = render(renderer, notice, language)
    for part in (result.subject, result.text, result.html or ""):
        assert "None" not in part and "Undefined" not in part
    assert "\n" not in result.subject and "[MF-" not in result.subject
    assert result.html is not None and f'<html lang="{language}">' in result.html
    assert result.text.endswith(f"{DESK_NAME}\n{DESK_ADDRESS}\n")
    return result


VARIANTS = [
    ("director", "tanaka", {"held": HELD}),
    ("director", "ito", {"requests": []}),
    ("member", "sato", {}),
    ("client", "acme", {}),
    ("client", "beta", {"hours_used": {"beta": 12.5}}),
]


@pytest.mark.parametrize("language", ["ja", "en"])
@pytest.mark.parametrize(("role", "person", "kwargs"), VARIANTS)
def test_every_digest_variant_renders(
    renderer: Renderer, role: str, person: str, kwargs: dict[str, Any], language: str
) -> None:
    found = digest(role, person, **kwargs)
    assert found is not None
    result = rendered_digest(renderer, role, person, language, **kwargs)
    # Every request line shows its ref and subject, in both parts.
    for section in found["sections"]:
        for item in section["items"]:
            for part in (result.text, result.html or ""):
                assert item["ref"] in part and item["subject"] in part


@pytest.mark.parametrize(
    ("language", "subject"),
    [
        ("ja", "【日次まとめ】2026-11-27 新規2件・確認待ち1件・期限超過1件・保留メール7件"),
        ("en", "Daily summary 2026-11-27: 2 new, 1 to review, 1 overdue, 7 held mails"),
    ],
)
def test_director_digest_reads_at_a_glance(renderer: Renderer, language: str, subject: str) -> None:
    result = rendered_digest(renderer, "director", "tanaka", language, held=HELD)
    assert result.subject == subject
    text = result.text
    if language == "ja":
        assert text.startswith("田中 花子 さん\n")
        assert "■ 期限超過：1件" in text and "（14.5時間超過）" in text
        assert "状態：作業中／納期：2026年11月26日（木）18:00" in text
        assert "次の営業日（2026年11月30日（月））締切：1件" in text
        assert "・#1 s1@example.com「mail 1」" in text and "ほか 2 件" in text
        assert "鈴木 美咲（suzuki）：1件／上限5件・見積り計 3 時間" in text
    else:
        assert text.startswith("Hi 田中 花子,\n")
        assert "Overdue: 1" in text and "(14.5 h late)" in text
        assert "State: in progress | Due: Thu 26 Nov 2026 18:00" in text
        assert "and 2 more" in text
        assert "鈴木 美咲 (suzuki): 1 open of 5, 3 h estimated" in text


@pytest.mark.parametrize(
    ("language", "subject", "empty"),
    [
        ("ja", "【日次まとめ】2026-11-27 対応待ちはありません", "  なし"),
        ("en", "Daily summary 2026-11-27: nothing waiting", "  none"),
    ],
)
def test_quiet_day_for_a_director(
    renderer: Renderer, language: str, subject: str, empty: str
) -> None:
    result = rendered_digest(renderer, "director", "ito", language, requests=[])
    assert result.subject == subject
    assert empty in result.text


def test_held_mail_reasons_are_said_in_the_directors_language(renderer: Renderer) -> None:
    unknown = phrase("unknown_sender_held", sender="<s1@example.com>")
    held = [
        {**HELD[1], "reason": unknown.text, "reason_code": unknown.code,
         "reason_facts": unknown.facts},
        {**HELD[0], "reason": "ValueError: broken"},  # a quarantine: no phrase
    ]  # fmt: skip
    ja = rendered_digest(renderer, "director", "tanaka", "ja", held=held)
    said = "理由：登録されていない差出人 <s1@example.com>（people.yaml のどの役割にもいません）"
    assert said in ja.text
    assert "理由：ValueError: broken" in ja.text
    assert ja.html is not None and "登録されていない差出人 &lt;s1@example.com&gt;" in ja.html
    en = rendered_digest(renderer, "director", "tanaka", "en", held=held)
    assert "unknown sender <s1@example.com>: in no role of people.yaml" in en.text


def test_member_digest_in_japanese(renderer: Renderer) -> None:
    result = rendered_digest(renderer, "member", "sato", "ja")
    assert result.subject == "【日次まとめ】2026-11-27 担当中2件・期限超過1件"
    text = result.text
    assert "■ 担当中のご依頼（納期順）：2件" in text
    assert text.index("MF-0004") < text.index("MF-0003")
    assert "状態：納品前の確認中／納期：2026年11月30日（月）12:00" in text


def test_client_digest_is_polite_in_japanese(renderer: Renderer) -> None:
    result = rendered_digest(renderer, "client", "acme", "ja")
    assert result.subject == "【ご依頼状況のお知らせ】2026-11-27 ご確認待ち1件・進行中4件"
    text = result.text
    assert text.startswith("株式会社アクメ\nご担当者 様\n")
    assert "いつもお世話になっております" in text
    assert "■ ご確認をお願いしたい納品物：1件" in text
    assert "「問題ありません」または修正点をご返信ください" in text
    # The desk's internal facts stay internal.
    assert "超過" not in text and "佐藤" not in text and "優先度" not in text


def test_direct_client_digest_in_english(renderer: Renderer) -> None:
    result = rendered_digest(renderer, "client", "beta", "en", hours_used={"beta": 12.5})
    assert result.subject == "Your requests 2026-11-27: 1 estimate to approve"
    text = result.text
    assert text.startswith("Dear customer,\n")
    assert "Estimate: 3 h" in text and "Member: 鈴木 美咲" in text
    assert "Contract hours for November 2026" in text
    assert "Used: 12.5 h of 20 h (62%)" in text and "Left: 7.5 h" in text


def test_client_text_is_data_never_a_template(renderer: Renderer) -> None:
    sneaky = [view("MF-0009", "new", subject="{{ 7*7 }} <img src=x onerror=alert(1)>")]
    for language in ("ja", "en"):
        result = rendered_digest(renderer, "client", "acme", language, requests=sneaky)
        assert "{{ 7*7 }} <img src=x onerror=alert(1)>" in result.text
        assert result.html is not None and "<img" not in result.html
        assert "{{ 7*7 }} &lt;img src=x onerror=alert(1)&gt;" in result.html
