"""Templates: every kind in ja and en, client text stays data, subjects stay one line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mailflow.model import Address, Notice
from mailflow.render import MissingTemplateError, Renderer, default_template_dir

KINDS = ("confirmation", "new_request", "assignment", "unknown_sender")
LANGUAGES = ("ja", "en")
DESK_NAME = "Example オンライン秘書"
DESK_ADDRESS = "desk@secretary.example"


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer.default()


def context(**request: Any) -> dict[str, Any]:
    base_request = {
        "subject": "11月分の売上データ集計",
        "text": (
            "お世話になっております。\n"
            "添付の売上データをExcelで集計してください。\n"
            "12月3日までにお願いします。"
        ),
        "due": "2026-12-03T18:00:00+09:00",
        "skills": ["data_entry", "accounting"],
        "priority": "high",
        "model": "director",
        "attachments": [{"filename": "売上_11月.csv", "size": 20480}],
    }
    return {
        "request": base_request | request,
        "client": {
            "id": "acme",
            "company": "株式会社アクメ",
            "contact_name": "山田 太郎",
            "contact_email": "yamada@acme.example",
        },
        "recipient": {"id": "yamada", "name": "山田 太郎"},
        "member": None,
        "suggestion": {
            "member": {"id": "sato", "name": "佐藤 一郎"},
            "runner_up": {"id": "suzuki", "name": "鈴木 美咲"},
            "reasons": ["data_entry のスキルあり", "現在の担当 1/5 件"],
        },
        "inbox": {
            "id": 42,
            "sender": "Hanako Unknown <hanako@newco.example>",
            "subject": "資料作成のご相談",
            "excerpt": "はじめまして。\n営業資料の作成をお願いできますでしょうか。",
        },
    }


def render(
    renderer: Renderer, kind: str, language: str, ref: str | None = "MF-0012", **ctx: Any
) -> Any:
    notice = Notice(
        kind=kind,
        to=(Address("yamada@acme.example", "山田 太郎"),),
        language=language,
        recipient_id="yamada",
        context=context() | ctx,
    )
    return renderer.render(notice, ref=ref, desk_name=DESK_NAME, desk_address=DESK_ADDRESS)


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_has_subject_and_text_in_both_languages(kind: str, language: str) -> None:
    folder = default_template_dir() / language
    assert (folder / f"{kind}.subject.j2").is_file()
    assert (folder / f"{kind}.txt.j2").is_file()


def test_default_templates_compile(renderer: Renderer) -> None:
    assert renderer.check() == []
    for language in LANGUAGES:
        assert set(KINDS) <= renderer.kinds(language)


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", ["confirmation", "new_request", "assignment"])
def test_request_subjects_carry_the_ref(renderer: Renderer, kind: str, language: str) -> None:
    rendered = render(renderer, kind, language)
    assert rendered.subject.startswith("[MF-0012] ")
    assert "11月分の売上データ集計" in rendered.subject
    assert "\n" not in rendered.subject
    assert rendered.text.endswith("\n") and DESK_NAME in rendered.text


def test_confirmation_ja_director_model(renderer: Renderer) -> None:
    rendered = render(renderer, "confirmation", "ja")
    text = rendered.text
    assert text.startswith("株式会社アクメ\n山田 太郎 様\n")
    assert "いつもお世話になっております。" in text and "ご依頼を承りました" in text
    assert "受付番号：MF-0012" in text
    assert "2026年12月3日（木）18:00" in text
    assert "売上_11月.csv（20 KB）" in text
    assert "ディレクター" in text and "アサイン" in text
    assert "> 添付の売上データをExcelで集計してください。" in text
    assert "このメールにそのままご返信ください" in text
    assert rendered.html is not None and '<html lang="ja">' in rendered.html


def test_confirmation_en_direct_model_names_the_member(renderer: Renderer) -> None:
    rendered = render(
        renderer,
        "confirmation",
        "en",
        request=context(model="direct", due=None)["request"],
        member={"id": "suzuki", "name": "Misaki Suzuki"},
    )
    text = rendered.text
    assert text.startswith("Dear 山田 太郎,")
    assert "Your dedicated assistant, Misaki Suzuki" in text
    assert "time estimate" in text
    assert "Deadline:  not stated yet" in text
    assert "simply reply to this email" in text
    assert rendered.html is not None and "Misaki Suzuki" in rendered.html


def test_confirmation_quotes_only_the_first_twenty_lines(renderer: Renderer) -> None:
    long_text = "\n".join(f"line {n}" for n in range(1, 31))
    for language, marker in (("ja", "以下 10 行省略"), ("en", "10 more lines")):
        rendered = render(
            renderer, "confirmation", language, request=context(text=long_text)["request"]
        )
        assert "> line 20\n" in rendered.text
        assert "line 21" not in rendered.text
        assert marker in rendered.text


@pytest.mark.parametrize(
    ("language", "facts"),
    [
        (
            "ja",
            [
                "#担当 sato",
                "#納期",
                "#priority",
                "#reject",
                "第1候補：佐藤 一郎（sato）",
                "第2候補：鈴木 美咲（suzuki）",
                "data_entry のスキルあり",
                "株式会社アクメ（acme）",
                "山田 太郎 <yamada@acme.example>",
                "優先度：高",
                "データ入力、経理",
            ],
        ),
        (
            "en",
            [
                "#assign sato",
                "#due",
                "#priority",
                "#reject",
                "1st choice: 佐藤 一郎 (sato)",
                "Runner-up:  鈴木 美咲 (suzuki)",
                "data_entry のスキルあり",
                "株式会社アクメ (acme)",
                "Priority:  high",
                "data entry, accounting",
            ],
        ),
    ],
)
def test_new_request_tells_the_director_how_to_act(
    renderer: Renderer, language: str, facts: list[str]
) -> None:
    rendered = render(renderer, "new_request", language)
    for fact in facts:
        assert fact in rendered.text, fact
    assert "売上_11月.csv" in rendered.text
    assert "12月3日までにお願いします。" in rendered.text


def test_new_request_without_a_suggestion(renderer: Renderer) -> None:
    suggestion: dict[str, Any] = {"member": None, "runner_up": None, "reasons": []}
    rendered = render(renderer, "new_request", "ja", suggestion=suggestion)
    assert "#担当 <メンバーID>" in rendered.text
    assert "見つかりませんでした" in rendered.text


@pytest.mark.parametrize(
    ("language", "facts"),
    [
        (
            "ja",
            [
                "佐藤 一郎 さん",
                "株式会社アクメ 山田 太郎 様",
                "納期：2026年12月3日（木）18:00",
                "納品形式：Excel",
                "備考：",
                "社内メモ",
                "#完了",
                "ディレクターの確認後",
            ],
        ),
        (
            "en",
            [
                "Hi 佐藤 一郎,",
                "Format:    Excel",
                "Notes:",
                "社内メモ",
                "#done",
                "The director reviews it",
            ],
        ),
    ],
)
def test_assignment_director_model(renderer: Renderer, language: str, facts: list[str]) -> None:
    request = context(format="Excel", notes="社内メモ：売上は税抜で")["request"]
    rendered = render(
        renderer,
        "assignment",
        language,
        request=request,
        recipient={"id": "sato", "name": "佐藤 一郎"},
        member={"id": "sato", "name": "佐藤 一郎"},
    )
    for fact in facts:
        assert fact in rendered.text, fact
    assert "12月3日までにお願いします。" in rendered.text
    assert "#見積" not in rendered.text and "#estimate" not in rendered.text
    assert rendered.html is not None and "社内メモ" in rendered.html


@pytest.mark.parametrize(("language", "command"), [("ja", "#見積 2h"), ("en", "#estimate 2h")])
def test_assignment_direct_model_asks_for_an_estimate_first(
    renderer: Renderer, language: str, command: str
) -> None:
    request = context(model="direct", due=None)["request"]
    rendered = render(renderer, "assignment", language, request=request)
    assert command in rendered.text
    assert rendered.text.index(command) < rendered.text.index("1.5h")
    assert rendered.html is not None and command in rendered.html


@pytest.mark.parametrize("language", LANGUAGES)
def test_unknown_sender_explains_how_to_register(renderer: Renderer, language: str) -> None:
    rendered = render(renderer, "unknown_sender", language, ref=None)
    assert "資料作成のご相談" in rendered.subject
    assert "MF-" not in rendered.subject
    text = rendered.text
    assert "Hanako Unknown <hanako@newco.example>" in text
    assert "contacts: [hanako@newco.example]" in text
    assert "people.yaml" in text
    assert "mailflow quarantine replay 42" in text
    assert "> 営業資料の作成をお願いできますでしょうか。" in text


HOSTILE = "{{ 7*7 }} {% raw %}x{% endraw %} {# c #} <script>alert('x')</script> & done"


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", KINDS)
def test_client_text_is_data_never_a_template(renderer: Renderer, kind: str, language: str) -> None:
    request = context(text=HOSTILE, subject="{{ 7*7 }} {% raw %}")["request"]
    inbox = context()["inbox"] | {"excerpt": HOSTILE, "subject": "{{ 7*7 }} {% raw %}"}
    rendered = render(renderer, kind, language, request=request, inbox=inbox)
    assert HOSTILE in rendered.text
    assert "{{ 7*7 }} {% raw %}" in rendered.subject
    assert "49" not in rendered.text + rendered.subject
    if rendered.html is not None:
        assert "<script>" not in rendered.html
        assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; done" in rendered.html
        assert "{{ 7*7 }}" in rendered.html


@pytest.mark.parametrize("language", LANGUAGES)
def test_subject_injection_is_flattened(renderer: Renderer, language: str) -> None:
    evil = "Hello\r\nBcc: victim@example.com\nX-Evil:\u2028 yes"
    rendered = render(renderer, "confirmation", language, request=context(subject=evil)["request"])
    assert "\r" not in rendered.subject and "\n" not in rendered.subject
    assert "\u2028" not in rendered.subject
    assert "Hello Bcc: victim@example.com X-Evil: yes" in rendered.subject


def test_missing_language_falls_back_to_the_default(renderer: Renderer) -> None:
    rendered = render(renderer, "confirmation", "fr")
    assert "ご依頼を承りました" in rendered.subject


def test_fallback_follows_the_desk_language() -> None:
    english_desk = Renderer.default(default_language="en")
    rendered = render(english_desk, "confirmation", "de")
    assert "We have received your request" in rendered.subject


def test_unknown_kind_names_the_missing_template(renderer: Renderer) -> None:
    with pytest.raises(MissingTemplateError) as caught:
        render(renderer, "no_such_kind", "ja")
    assert isinstance(caught.value, KeyError)
    assert "ja/no_such_kind.subject.j2" in str(caught.value)


def test_missing_context_is_an_error_not_a_blank(renderer: Renderer) -> None:
    notice = Notice(kind="confirmation", to=(), language="ja", recipient_id="x", context={})
    with pytest.raises(Exception, match="is undefined"):
        renderer.render(notice, ref="MF-0001", desk_name=DESK_NAME, desk_address=DESK_ADDRESS)


def write(folder: Path, name: str, text: str) -> None:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def test_instance_templates_override_the_default(tmp_path: Path) -> None:
    write(tmp_path, "ja/confirmation.txt.j2", "独自の本文 {{ ref }} {{ client.company }}\n")
    write(tmp_path, "ja/confirmation.subject.j2", "独自の件名\n")
    renderer = Renderer.default([tmp_path])
    rendered = render(renderer, "confirmation", "ja")
    assert rendered.text == "独自の本文 MF-0012 株式会社アクメ\n"
    # The override forgot the ref; threading still needs it.
    assert rendered.subject == "[MF-0012] 独自の件名"
    # Parts that are not overridden still come from the default.
    assert rendered.html is not None and "ご依頼を承りました" in rendered.html
    assert "We have received your request" in render(renderer, "confirmation", "en").subject


def test_html_part_is_optional(tmp_path: Path) -> None:
    write(tmp_path, "ja/ping.subject.j2", "[{{ ref }}] ping\n")
    write(tmp_path, "ja/ping.txt.j2", "pong\n")
    rendered = render(Renderer([tmp_path]), "ping", "ja")
    assert rendered == type(rendered)(subject="[MF-0012] ping", text="pong\n", html=None)


def test_check_reports_broken_and_incomplete_templates(tmp_path: Path) -> None:
    write(tmp_path, "ja/broken.subject.j2", "{% if %}\n")
    write(tmp_path, "ja/broken.txt.j2", "ok\n")
    write(tmp_path, "en/lonely.txt.j2", "no subject\n")
    problems = Renderer([tmp_path]).check()
    assert any(p.startswith("ja/broken.subject.j2:1:") for p in problems), problems
    assert any(p.startswith("en/lonely.subject.j2: missing") for p in problems), problems
    assert len(problems) == 2


def test_autoescape_only_in_html(tmp_path: Path) -> None:
    write(tmp_path, "en/x.subject.j2", "{{ v }}\n")
    write(tmp_path, "en/x.txt.j2", "{{ v }}\n")
    write(tmp_path, "en/x.html.j2", "<p>{{ v }}</p>\n")
    rendered = render(Renderer([tmp_path]), "x", "en", ref=None, v="a < b & c")
    assert rendered.subject == "a < b & c"
    assert rendered.text == "a < b & c\n"
    assert rendered.html == "<p>a &lt; b &amp; c</p>\n"


@pytest.mark.parametrize("kind", ["confirmation", "new_request", "assignment"])
def test_names_are_escaped_in_html_too(renderer: Renderer, kind: str) -> None:
    client = context()["client"] | {
        "company": "<img src=x onerror=alert(1)>",
        "contact_name": "<b>Bold</b>",
    }
    rendered = render(renderer, kind, "ja", client=client)
    assert rendered.html is not None
    assert "<img" not in rendered.html and "<b>" not in rendered.html
    assert "&lt;img src=x onerror=alert(1)&gt;" in rendered.html
