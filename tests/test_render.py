"""Templates: every kind in ja and en, client text stays data, subjects stay one line."""

from __future__ import annotations

import copy
import errno
import re
from pathlib import Path
from typing import Any

import jinja2.bccache
import pytest

from mailflow.instance import template_cache
from mailflow.model import Address, Notice
from mailflow.phrases import ENGLISH, composed, phrase
from mailflow.render import MissingTemplateError, Renderer, default_template_dir

# Who gets each kind (templates/CONTEXT.md); kinds sent to several roles list them all.
AUDIENCES: dict[str, tuple[str, ...]] = {
    "confirmation": ("client",),
    "new_request": ("director",),
    "assignment": ("member",),
    "question": ("client", "director"),
    "answer": ("member", "director"),
    "estimate": ("client",),
    "review": ("director",),
    "delivery": ("client",),
    "revision": ("member", "director"),
    "feedback": ("member",),
    "receipt": ("director", "member"),
    "out_of_scope": ("client", "director", "coordinator"),
    "hours_warning": ("client", "coordinator"),
    "reminder": ("member",),
    "overdue": ("director",),
    "client_message": ("director", "member"),
    "status_update": ("client",),
    "security_alert": ("client", "director"),
    "bounce_alert": ("director",),
    "unknown_sender": ("client",),
    "too_large": ("client",),
}
KINDS = tuple(AUDIENCES)
CASES = [(kind, audience) for kind, audiences in AUDIENCES.items() for audience in audiences]
LANGUAGES = ("ja", "en")
DESK_NAME = "Example オンライン秘書"
DESK_ADDRESS = "desk@secretary.example"
RECIPIENTS = {
    # A client contact's id is its address; staff ids are people.yaml ids.
    "client": {"id": "yamada@acme.example", "name": "山田 太郎"},
    "director": {"id": "tanaka", "name": "田中 花子"},
    "member": {"id": "sato", "name": "佐藤 一郎"},
    "coordinator": {"id": "kobayashi", "name": "小林 恵"},
}


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
        "format": None,
        "state": "in_progress",
        "revision_count": 0,
        "hours_estimate": 2.0,
        "hours_spent": 1.5,
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
        "director": {"id": "tanaka", "name": "田中 花子"},
        "suggestion": {
            "member": {"id": "sato", "name": "佐藤 一郎"},
            "runner_up": {"id": "suzuki", "name": "鈴木 美咲"},
            "reasons": ["data_entry のスキルあり", "現在の担当 1/5 件"],
        },
        "question": {
            "text": "集計は税込・税抜のどちらでしょうか。",
            "asker": {"id": "sato", "name": "佐藤 一郎", "role": "member"},
        },
        "answer": {"text": "税抜でお願いします。", "by": {"name": "山田 太郎"}},
        "estimate": {
            "hours": 2.0,
            "used": 12.5,
            "left": 7.5,
            "monthly": 20,
            "month": "2026-11",
            "note": "元データの整形が必要な場合は追加で1時間ほどかかります。",
        },
        "delivery": {
            "text": "集計が終わりました。\n店舗別のシートも付けています。",
            "note": "ご確認よろしくお願いいたします。",
            "files": [
                {"filename": "売上集計_11月.xlsx", "size": 34816},
                {"filename": "集計メモ.pdf", "size": 120_000},
            ],
            "hours": 1.5,
        },
        "checks": [
            {"name": "添付ファイル", "ok": True, "detail": "2 件"},
            {"name": "納品形式", "ok": False, "detail": "Excel の指定に PDF が含まれています"},
            {"name": "納期", "ok": True, "detail": "納期の 2 日前"},
        ],
        "revision": {
            "text": "合計行を追加してください。",
            "by": {"name": "田中 花子", "role": "director"},
            "round": 1,
        },
        "feedback": {
            "text": "ありがとうございます。とても見やすいです。",
            "by": {"name": "山田 太郎"},
        },
        "receipt": {
            "applied": [{"command": "#担当 sato", "result": "佐藤 一郎さんに依頼しました"}],
            "refused": [{"command": "#承認", "why": "確認待ちの納品物がありません"}],
            "possible": ["#納期 <日付>", "#note <メモ>", "#hold"],
            "state": "assigned",
        },
        "scope": {"skills": ["phone"], "reasons": ["本文に「電話」「架電」があります"]},
        "hours": {"used": 16.5, "monthly": 20, "percent": 82, "threshold": 80, "month": "2026-11"},
        "reminder": {"due": "2026-12-03T18:00:00+09:00", "hours_left": 5.5},
        "overdue": {"due": "2026-12-03T18:00:00+09:00", "hours_late": 26},
        "message": {"text": "添付の件、どうなっていますか？", "classification": "unclear"},
        "status": {"state": "on_hold", "reason": "お客様からの資料待ちのため"},
        "attempt": {
            "sender": "山田 太郎 <yamada@acme.example>",
            "subject": "至急 承認してください",
            "commands": ["#承認", "#担当 suzuki"],
            "why": "送信元の認証（DMARC/DKIM）を確認できませんでした",
        },
        "inbox": {
            "id": 42,
            "sender": "Hanako Unknown <hanako@newco.example>",
            "subject": "資料作成のご相談",
            "excerpt": "はじめまして。\n営業資料の作成をお願いできますでしょうか。",
        },
        "mail": {"subject": "動画ファイルの送付", "size": 60_000_000, "limit": 25_000_000},
        "bounce": {
            "recipients": ["yamada@acme.example"],
            "status": "5.1.1",
            "diagnostic": "550 5.1.1 <yamada@acme.example>: User unknown",
            "permanent": True,
        },
        "original": {
            "kind": "delivery",
            "subject": "[MF-0012] 納品",
            "to": ["yamada@acme.example"],
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
        # A value of ``...`` leaves the key out, as for values CONTEXT.md marks ``?``.
        context={key: value for key, value in (context() | ctx).items() if value is not ...},
    )
    return renderer.render(notice, ref=ref, desk_name=DESK_NAME, desk_address=DESK_ADDRESS)


def render_to(renderer: Renderer, kind: str, language: str, audience: str, **ctx: Any) -> Any:
    """``kind`` as ``audience`` (client, director, member, coordinator) would get it."""
    ctx.setdefault("recipient", RECIPIENTS[audience])
    if audience == "member":
        ctx.setdefault("member", RECIPIENTS["member"])
    return render(renderer, kind, language, **ctx)


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


def test_new_request_gives_the_suggestion_in_japanese(renderer: Renderer) -> None:
    suggestion = {
        "member": {"id": "sato", "name": "佐藤 一郎"},
        "runner_up": None,
        "reasons": ["rule default; skills: research", "suggested sato: …"],
        "why": [
            composed("routed", "rule default; skills: research", rule="default", skills="research")
            .why(),
            composed(
                "suggested", "suggested sato: …", member="sato", open=2, hours="1.5", week=1,
                last="2026-11-20", skills="research, data_entry", language="ja",
            ).why(),
            {**phrase("lacks", skills="phone").why(), "member": "<kato>"},
        ],
    }  # fmt: skip
    ja = render(renderer, "new_request", "ja", suggestion=suggestion)
    assert "・振り分けルール「default」、スキル：リサーチ・調査\n" in ja.text
    assert (
        "・第1候補 sato：担当中 2 件（1.5 時間）、今週の割り当て 1 件、"
        "前回の割り当て：2026年11月20日（金）（必要なスキル：リサーチ・調査、データ入力、日本語）\n"
        in ja.text
    )
    assert "・<kato>：スキル不足（電話対応）" in ja.text
    assert ja.html is not None and "&lt;kato&gt;：スキル不足" in ja.html
    assert "rule default" not in ja.text
    en = render(renderer, "new_request", "en", suggestion=suggestion)
    assert "rule default; skills: research" in en.text


def test_new_request_written_before_phrases_still_renders(renderer: Renderer) -> None:
    suggestion = {"member": None, "runner_up": None, "reasons": ["rule default; skills: none"]}
    rendered = render(renderer, "new_request", "ja", suggestion=suggestion)
    assert "・rule default; skills: none" in rendered.text


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
def test_unknown_sender_is_answered_politely_without_a_ref(
    renderer: Renderer, language: str
) -> None:
    rendered = render(
        renderer,
        "unknown_sender",
        language,
        ref=None,
        recipient={"id": "hanako@newco.example", "name": "Hanako"},
    )
    assert "資料作成のご相談" in rendered.subject
    assert "MF-" not in rendered.subject
    assert "hanako@newco.example" in rendered.text
    assert "24" in rendered.text


@pytest.mark.parametrize("language", LANGUAGES)
def test_too_large_suggests_a_shared_link(renderer: Renderer, language: str) -> None:
    rendered = render(renderer, "too_large", language)
    assert "[MF-0012]" in rendered.subject
    assert "60.0 MB" in rendered.text or "57.2 MB" in rendered.text
    assert "Google" in rendered.text


@pytest.mark.parametrize("language", LANGUAGES)
def test_bounce_alert_names_the_address_and_the_diagnostic(
    renderer: Renderer, language: str
) -> None:
    rendered = render(renderer, "bounce_alert", language)
    assert "yamada@acme.example" in rendered.subject
    assert "User unknown" in rendered.text and "5.1.1" in rendered.text


HOSTILE = "{{ 7*7 }} {% raw %}x{% endraw %} {# c #} <script>alert('x')</script> & done"
HOSTILE_SUBJECT = "{{ 7*7 }} {% raw %}"
ESCAPED = "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; done"

# Kinds whose text part shows some free text written by a person (client, member,
# director or an impostor); each must show it verbatim, quoted, never evaluated.
SHOWS_TEXT = frozenset(KINDS) - {
    "unknown_sender",
    "too_large",
    "hours_warning",
    "reminder",
    "overdue",
}
# Kinds whose subject names the request (or the mail) rather than something else.
SUBJECT_NAMES_THE_MAIL = frozenset(KINDS) - {
    "bounce_alert",  # names the address
    "receipt",  # counts the commands
    "hours_warning",  # names the month
    "security_alert",  # never repeats an impostor's subject
}


def hostile_context() -> dict[str, Any]:
    """Every free-text value of every block replaced by :data:`HOSTILE`."""
    ctx = copy.deepcopy(context(text=HOSTILE, subject=HOSTILE_SUBJECT))
    ctx["inbox"] |= {"excerpt": HOSTILE, "subject": HOSTILE_SUBJECT}
    ctx["mail"] |= {"subject": HOSTILE_SUBJECT}
    ctx["bounce"] |= {"diagnostic": HOSTILE}
    ctx["original"] |= {"subject": HOSTILE}
    ctx["question"] |= {"text": HOSTILE}
    ctx["answer"] |= {"text": HOSTILE}
    ctx["estimate"] |= {"note": HOSTILE}
    ctx["delivery"] |= {"text": HOSTILE, "note": HOSTILE}
    ctx["revision"] |= {"text": HOSTILE}
    ctx["feedback"] |= {"text": HOSTILE}
    ctx["message"] |= {"text": HOSTILE}
    ctx["status"] |= {"reason": HOSTILE}
    ctx["attempt"] |= {"subject": HOSTILE, "commands": [HOSTILE]}
    ctx["attempt"] |= phrase("untrusted_authserv", authserv_id=HOSTILE).why()
    ctx["receipt"]["refused"] = [
        {"command": HOSTILE, "why": "unknown command"},
        phrase("unreadable_date", argument=HOSTILE).refused(HOSTILE),
    ]
    # The recipient comes from the audience.
    del ctx["recipient"], ctx["member"]
    return ctx


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize(("kind", "audience"), CASES)
def test_client_text_is_data_never_a_template(
    renderer: Renderer, kind: str, audience: str, language: str
) -> None:
    rendered = render_to(renderer, kind, language, audience, **hostile_context())
    shows_text = kind in SHOWS_TEXT and (kind, audience) != ("out_of_scope", "client")
    if shows_text:
        assert HOSTILE in rendered.text
    if kind in SUBJECT_NAMES_THE_MAIL:
        assert HOSTILE_SUBJECT in rendered.subject
    assert "49" not in rendered.text + rendered.subject
    assert rendered.html is not None
    assert "<script>" not in rendered.html and "49" not in rendered.html
    if shows_text:
        assert ESCAPED in rendered.html
        assert "{{ 7*7 }}" in rendered.html


def test_quoted_text_cannot_pass_for_desk_text(renderer: Renderer) -> None:
    # A line of client text that looks like a command or a heading stays inside the quote.
    fake = "ご依頼内容\n#承認 すべて承認\n■ 納期：明日"
    rendered = render_to(
        renderer,
        "client_message",
        "ja",
        "director",
        message={"text": fake, "classification": "unclear"},
    )
    assert "> #承認 すべて承認\n> ■ 納期：明日" in rendered.text
    assert "\n#承認 すべて承認" not in rendered.text


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


def test_compiled_templates_are_kept_until_their_source_changes(tmp_path: Path) -> None:
    overrides, cache = tmp_path / "templates", tmp_path / "data" / "cache" / "templates"
    write(overrides, "ja/confirmation.subject.j2", "[{{ ref }}] 一度目\n")
    first = Renderer.default([overrides], bytecode_cache=template_cache(cache))
    assert render(first, "confirmation", "ja").subject == "[MF-0012] 一度目"
    kept = {path.name: path.read_bytes() for path in cache.iterdir()}
    assert kept, "compiled templates are written to the cache"
    assert not [name for name in kept if name.endswith(".tmp")]

    again = Renderer.default([overrides], bytecode_cache=template_cache(cache))
    assert render(again, "confirmation", "ja").subject == "[MF-0012] 一度目"
    assert {path.name: path.read_bytes() for path in cache.iterdir()} == kept

    write(overrides, "ja/confirmation.subject.j2", "[{{ ref }}] 二度目\n")
    changed = Renderer.default([overrides], bytecode_cache=template_cache(cache))
    assert render(changed, "confirmation", "ja").subject == "[MF-0012] 二度目"


def test_a_cache_that_cannot_be_made_leaves_templates_compiled_in_memory(
    tmp_path: Path,
) -> None:
    (tmp_path / "data").write_text("a file where the cache's folder would go")
    renderer = Renderer.default(bytecode_cache=template_cache(tmp_path / "data" / "cache"))
    assert "MF-0012" in render(renderer, "confirmation", "ja").subject


def test_a_cache_that_cannot_be_written_or_read_never_fails_a_render(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(*args: Any, **kwargs: Any) -> Any:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(jinja2.bccache.tempfile, "NamedTemporaryFile", full)
    cache = tmp_path / "cache"
    assert (
        "MF-0012"
        in render(
            Renderer.default(bytecode_cache=template_cache(cache)), "confirmation", "ja"
        ).subject
    )
    assert list(cache.iterdir()) == []

    monkeypatch.undo()
    render(
        Renderer.default(bytecode_cache=template_cache(cache)), "confirmation", "ja"
    )  # fills the cache
    monkeypatch.setattr(jinja2.bccache, "open", full, raising=False)
    assert (
        "MF-0012"
        in render(
            Renderer.default(bytecode_cache=template_cache(cache)), "confirmation", "ja"
        ).subject
    )


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


def test_check_reports_a_macro_an_instances_shared_file_lacks(tmp_path: Path) -> None:
    """An instance's copy of ja/_labels.j2 from before ``phrases`` existed: every receipt
    would fail to render; ``mailflow check`` says so before a mail needs it."""
    write(tmp_path, "ja/_labels.j2", "{% macro state(value) %}{{ value }}{% endmacro %}\n")
    problems = Renderer.default(extra_dirs=[tmp_path]).check()
    assert "ja/receipt.txt.j2: uses phrases of ja/_labels.j2, which does not define it" in problems
    assert "ja/digest.txt.j2: uses hours of ja/_labels.j2, which does not define it" in problems
    assert all("ja/_labels.j2, which" in problem for problem in problems), problems
    assert Renderer.default().check() == []


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


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize(("kind", "audience"), CASES)
def test_every_kind_renders_for_each_reader(
    renderer: Renderer, kind: str, audience: str, language: str
) -> None:
    rendered = render_to(renderer, kind, language, audience)
    assert rendered.subject.startswith("[MF-0012] ")
    assert "\n" not in rendered.subject
    assert rendered.text.strip() and rendered.text.endswith(f"{DESK_NAME}\n{DESK_ADDRESS}\n")
    assert rendered.html is not None and f'<html lang="{language}">' in rendered.html
    for part in (rendered.subject, rendered.text, rendered.html):
        assert "None" not in part and "Undefined" not in part
    name = RECIPIENTS[audience]["name"]
    if language == "ja" and audience == "client":
        assert f"{name} 様" in rendered.text and f"{name} 様" in rendered.html
        if kind not in {"unknown_sender", "too_large"}:  # no client block for strangers
            assert rendered.text.startswith(f"株式会社アクメ\n{name} 様\n")
            assert "いつもお世話になっております" in rendered.text
    elif language == "ja":
        assert rendered.text.startswith(f"{name} さん\n")
    elif audience != "client":
        assert rendered.text.startswith(f"Hi {name},\n")


OPTIONAL_REQUEST_KEYS = ("due", "format", "state", "revision_count", "hours_estimate")


def minimal_context() -> dict[str, Any]:
    """The context with every value CONTEXT.md marks ``?`` left out."""
    ctx = copy.deepcopy(context())
    for key in (*OPTIONAL_REQUEST_KEYS, "hours_spent"):
        del ctx["request"][key]
    del ctx["client"]["contact_name"], ctx["client"]["contact_email"]
    ctx |= {"member": ..., "director": ...}
    for key in ("left", "monthly", "note"):
        del ctx["estimate"][key]
    del ctx["delivery"]["note"], ctx["delivery"]["hours"]
    del ctx["status"]["reason"]
    ctx["suggestion"] = {"reasons": []}
    return ctx


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize(("kind", "audience"), CASES)
def test_every_kind_renders_without_optional_values(
    renderer: Renderer, kind: str, audience: str, language: str
) -> None:
    ctx = minimal_context() | {"recipient": RECIPIENTS[audience]}
    rendered = render(renderer, kind, language, **ctx)
    assert rendered.subject.startswith("[MF-0012] ")
    assert rendered.html is not None
    for part in (rendered.subject, rendered.text, rendered.html):
        assert "None" not in part
    # The same values given as None instead of left out.
    nones = {key: None for key in OPTIONAL_REQUEST_KEYS}
    ctx = context(**nones) | {"recipient": RECIPIENTS[audience], "director": None}
    ctx["client"] |= {"contact_name": None, "contact_email": None}
    ctx["estimate"] |= {"left": None, "monthly": None, "note": None}
    ctx["delivery"] |= {"note": None, "hours": None}
    ctx["status"] |= {"reason": None}
    rendered = render(renderer, kind, language, **ctx)
    for part in (rendered.subject, rendered.text, rendered.html or ""):
        assert "None" not in part


DIRECT = {"model": "direct"}
SUZUKI = {"id": "suzuki", "name": "鈴木 美咲"}


@pytest.mark.parametrize(
    ("language", "facts"),
    [
        (
            "ja",
            [
                "担当の佐藤 一郎より",
                "> 集計は税込・税抜のどちらでしょうか。",
                "このメールにそのままご返信",
            ],
        ),
        ("en", ["佐藤 一郎, who is working on your request", "> 集計は", "reply to this email"]),
    ],
)
def test_question_to_the_client_asks_for_a_reply(
    renderer: Renderer, language: str, facts: list[str]
) -> None:
    rendered = render_to(renderer, "question", language, "client")
    for fact in facts:
        assert fact in rendered.text, fact
    assert "#ask" not in rendered.text and "#質問" not in rendered.text


@pytest.mark.parametrize(
    ("language", "command"), [("ja", "#質問 <お客様への質問>"), ("en", "#ask <")]
)
def test_question_to_the_director_says_how_to_relay_it(
    renderer: Renderer, language: str, command: str
) -> None:
    rendered = render_to(renderer, "question", language, "director")
    assert "佐藤 一郎" in rendered.subject
    assert command in rendered.text
    assert "> 集計は税込・税抜のどちらでしょうか。" in rendered.text


@pytest.mark.parametrize(("language", "done"), [("ja", "#完了 1.5h"), ("en", "#done 1.5h")])
def test_answer_goes_back_to_the_member_with_next_steps(
    renderer: Renderer, language: str, done: str
) -> None:
    rendered = render_to(renderer, "answer", language, "member")
    assert "> 税抜でお願いします。" in rendered.text
    assert "山田 太郎" in rendered.text and done in rendered.text
    # The director who asked gets no #done line.
    assert done not in render_to(renderer, "answer", language, "director").text


@pytest.mark.parametrize(
    ("language", "facts"),
    [
        (
            "ja",
            [
                "担当の鈴木 美咲より",
                "お見積り（所要時間）：2 時間",
                "2026年11月のご契約時間",
                "ご利用済み：12.5 時間（ご契約 20 時間）",
                "残り時間　：7.5 時間",
                "本件完了後の残り（見込み）：5.5 時間",
                "> 元データの整形が必要な場合",
                "「お願いします」",
            ],
        ),
        (
            "en",
            [
                "鈴木 美咲 has estimated",
                "Estimate:  2 hours",
                "Your hours for November 2026:",
                "Used so far: 12.5 h of 20 h",
                "Left:        7.5 h",
                "Left after this request (expected): 5.5 h",
                "please go ahead",
            ],
        ),
    ],
)
def test_estimate_shows_the_hours_left(renderer: Renderer, language: str, facts: list[str]) -> None:
    rendered = render_to(
        renderer,
        "estimate",
        language,
        "client",
        request=context(**DIRECT)["request"],
        member=SUZUKI,
    )
    assert "(2 h)" in rendered.subject or "（2時間）" in rendered.subject
    for fact in facts:
        assert fact in rendered.text, fact
    assert rendered.html is not None and "7.5" in rendered.html


@pytest.mark.parametrize(("language", "marker"), [("ja", "1.5 時間超えて"), ("en", "1.5 h more")])
def test_estimate_beyond_the_hours_left_says_so(
    renderer: Renderer, language: str, marker: str
) -> None:
    estimate = context()["estimate"] | {"hours": 9}
    rendered = render_to(renderer, "estimate", language, "client", estimate=estimate)
    assert marker in rendered.text


@pytest.mark.parametrize(
    ("language", "facts"),
    [
        (
            "ja",
            [
                "✓ 添付ファイル：2 件",
                "✗ 納品形式：Excel の指定に PDF が含まれています",
                "✓ 納期：納期の 2 日前",
                "売上集計_11月.xlsx（34 KB）",
                "作業時間：1.5 時間",
                "> 店舗別のシートも付けています。",
                "#承認 [コメント]",
                "#approve [note]",
                "#修正 <内容>",
                "#revise <feedback>",
            ],
        ),
        (
            "en",
            [
                "✓ 添付ファイル: 2 件",
                "✗ 納品形式: Excel の指定に PDF が含まれています",
                "✓ 納期: 納期の 2 日前",
                "売上集計_11月.xlsx (34 KB)",
                "Hours:     1.5 h",
                "#approve [note]",
                "#revise <feedback>",
            ],
        ),
    ],
)
def test_review_shows_each_check_and_the_commands(
    renderer: Renderer, language: str, facts: list[str]
) -> None:
    rendered = render_to(renderer, "review", language, "director", member=RECIPIENTS["member"])
    assert "1" in rendered.subject and (
        "要確認" in rendered.subject or "failed" in rendered.subject
    )
    for fact in facts:
        assert fact in rendered.text, fact
    assert rendered.html is not None
    assert rendered.html.count("✓") == 2 and rendered.html.count("✗") == 1


@pytest.mark.parametrize(
    ("language", "facts"),
    [
        (
            "ja",
            [
                "売上集計_11月.xlsx（34 KB）",
                "集計メモ.pdf（117 KB）",
                "> ご確認よろしくお願いいたします。",
                "> 集計が終わりました。",
                "問題なければ「ありがとうございます」等とご返信ください。",
                "修正がございましたら、修正点をご返信ください。",
            ],
        ),
        (
            "en",
            [
                "売上集計_11月.xlsx (34 KB)",
                "集計メモ.pdf (117 KB)",
                "The files are attached",
                'just reply "Thank you"',
                "reply with what should be changed",
            ],
        ),
    ],
)
def test_delivery_lists_the_files_and_how_to_answer(
    renderer: Renderer, language: str, facts: list[str]
) -> None:
    rendered = render_to(renderer, "delivery", language, "client")
    for fact in facts:
        assert fact in rendered.text, fact
    assert rendered.html is not None and "集計メモ.pdf" in rendered.html
    revised = render_to(
        renderer, "delivery", language, "client", request=context(revision_count=1)["request"]
    )
    assert "修正版" in revised.subject or "Revised" in revised.subject


@pytest.mark.parametrize(
    ("language", "to_member", "to_director"),
    [
        ("ja", ["修正のお願い（1回目）", "#完了 1.5h", "#質問"], ["#修正 <修正内容>", "#revise"]),
        ("en", ["Revision requested (round 1)", "#done 1.5h", "#ask"], ["#revise <", "#close"]),
    ],
)
def test_revision_tells_member_and_director_what_to_do(
    renderer: Renderer, language: str, to_member: list[str], to_director: list[str]
) -> None:
    member = render_to(renderer, "revision", language, "member")
    text = member.subject + member.text
    for fact in to_member:
        assert fact in text, fact
    assert "> 合計行を追加してください。" in member.text
    by_client = context()["revision"] | {"by": {"name": "山田 太郎", "role": "client"}}
    director = render_to(
        renderer, "revision", language, "director", revision=by_client, member=RECIPIENTS["member"]
    )
    for fact in to_director:
        assert fact in director.text, fact
    assert "#done" not in director.text and "山田 太郎" in director.text


@pytest.mark.parametrize("language", LANGUAGES)
def test_feedback_passes_the_thanks_on(renderer: Renderer, language: str) -> None:
    rendered = render_to(renderer, "feedback", language, "member")
    assert "> ありがとうございます。とても見やすいです。" in rendered.text
    assert "山田 太郎" in rendered.text and "1.5" in rendered.text


@pytest.mark.parametrize(
    ("language", "facts"),
    [
        (
            "ja",
            [
                "✓ #担当 sato",
                "→ 佐藤 一郎さんに依頼しました",
                "✗ #承認",
                "理由：確認待ちの納品物がありません",
                "現在の状態：担当決定",
                "  #納期 <日付>\n  #note <メモ>\n  #保留（#hold）\n",
            ],
        ),
        (
            "en",
            [
                "✓ #担当 sato",
                "✗ #承認",
                "why: 確認待ちの納品物がありません",
                "State now: assigned",
                "  #納期 <日付>\n  #note <メモ>\n  #hold\n",
            ],
        ),
    ],
)
def test_receipt_lists_applied_and_refused_commands(
    renderer: Renderer, language: str, facts: list[str]
) -> None:
    rendered = render_to(renderer, "receipt", language, "director")
    assert "1" in rendered.subject
    for fact in facts:
        assert fact in rendered.text, fact
    assert rendered.html is not None and "確認待ちの納品物がありません" in rendered.html


# Facts for the phrases whose Japanese is not a plain fill-in of the English's fields.
SPECIAL_FACTS = {
    "not_your_role": ({"allowed": "coordinator or director"}, "事務調整役またはディレクターのみ"),
    "not_in_model": ({"model": "direct"}, "専任メンバー直接のご依頼では使えません"),
    "not_in_state": ({"state": "on_hold"}, "ご依頼が「一時保留中」の間は実行できません"),
    "priority_set": ({"priority": "high"}, "優先度を「高」にしました"),
}
# Facts a Japanese phrase leaves out: the held mail's English authentication detail (its
# security alert said it in Japanese already).
OMITTED = {"unauthenticated": "why"}
# The facts of the phrases whose English their makers compose.
COMPOSED_FACTS = {
    "routed": ("rule", "skills"),
    "suggested": ("member", "open", "hours", "week", "last", "skills", "language"),
    "runner_up": ("member", "open", "hours", "week", "last"),
    "no_member_qualifies": ("skills", "language"),
}


def test_every_receipt_phrase_is_said_in_japanese(renderer: Renderer) -> None:
    """A Japanese director's receipt says each result and each reason in Japanese, with
    the facts (names, the words they wrote) in it; the English stays the record."""
    items = []
    for code, english in ENGLISH.items():
        names = re.findall(r"%\((\w+)\)s", english) if english else COMPOSED_FACTS[code]
        facts = {name: f"«{code}:{name}»" for name in names}
        facts |= SPECIAL_FACTS.get(code, ({}, ""))[0]
        made = phrase(code, **facts) if english else composed(code, f"English {code}", **facts)
        items.append(made)
    receipt = {
        "applied": [item.done(f"#{item.code}") for item in items],
        "refused": [item.refused(f"#{item.code}") for item in items],
        "possible": [],
        "state": "new",
    }
    rendered = render_to(renderer, "receipt", "ja", "director", receipt=receipt)
    lines = rendered.text.splitlines()
    said = [line.split(mark, 1)[1] for mark in ("→ ", "理由：") for line in lines if mark in line]
    assert len(said) == 2 * len(items)
    for item, done, refused in zip(items, said, said[len(items) :], strict=False):
        assert item.text not in (done, refused), item.code
        for value in item.facts.values():
            omitted = item.code in SPECIAL_FACTS or value == item.facts.get(OMITTED.get(item.code))
            assert value in rendered.text or omitted, (item.code, value)
    for code, (_, japanese) in SPECIAL_FACTS.items():
        assert japanese in rendered.text, code
    assert rendered.html is not None and "割り当てました" in rendered.html
    assert all(re.search(r"[ぁ-んァ-ン一-龥]", line) for line in said)


def test_a_japanese_receipt_offers_the_japanese_word_of_each_command(renderer: Renderer) -> None:
    from mailflow.commands import ALIASES, read_commands

    receipt = {"applied": [], "refused": [], "possible": [f"#{n}" for n in ALIASES], "state": None}
    rendered = render_to(renderer, "receipt", "ja", "director", receipt=receipt)
    for name, words in ALIASES.items():
        offered = f"  #{words[1]}（#{name}）\n"
        assert offered in rendered.text, name
        # ... and the word offered calls that command.
        assert [c.name for c in read_commands(offered.split("（")[0].strip()).commands] == [name]
    assert rendered.html is not None and "#承認（#approve）" in rendered.html


def test_say_fills_a_sentence_with_the_facts_in_words() -> None:
    from mailflow.render import say

    phrases = {"x": "%(allowed)s／%(skills)s／%(due)s／%(who)s", "y": "100%% %(n)s"}
    words = {"allowed": {"a": "甲", "b": "乙", " or ": "または"}, "skills": {"": "なし"}}
    item = {"code": "x", "facts": {"allowed": "a or b", "skills": "", "due": "2026-12-03 18:00",
                                   "who": "%(n)s {{ 7*7 }}"}}  # fmt: skip
    assert say(item, phrases, words, "ja", "E") == (
        "甲または乙／なし／2026年12月3日（木）18:00／%(n)s {{ 7*7 }}"
    )
    assert say({"code": "y", "facts": {"n": "1"}}, phrases, words, "ja", "E") == "100% 1"
    assert say({"code": "z", "facts": {}}, phrases, words, "ja", "English") == "English"
    assert say({"command": "#x", "why": "old"}, phrases, words, "ja", "old") == "old"


def test_receipt_command_labels_are_japanese(renderer: Renderer) -> None:
    receipt = {
        "applied": [phrase("delivered", files=2).done("(attachments)")],
        "refused": [phrase("no_command").refused("(no command)")],
        "possible": [],
        "state": None,
    }
    ja = render_to(renderer, "receipt", "ja", "member", receipt=receipt)
    assert "✓ （添付ファイル）\n      → 納品物（ファイル 2 件）をお客様に送りました" in ja.text
    assert "✗ （コマンドなし）" in ja.text and "冒頭に #コマンド がない" in ja.text
    en = render_to(renderer, "receipt", "en", "member", receipt=receipt)
    assert "✓ (attachments)\n      → delivery of 2 file(s) sent to the client" in en.text
    assert "why: no #command at the top of the mail; nothing was changed" in en.text


@pytest.mark.parametrize("language", LANGUAGES)
def test_out_of_scope_is_polite_to_the_client_and_actionable_for_staff(
    renderer: Renderer, language: str
) -> None:
    label = "電話対応" if language == "ja" else "phone calls"
    client = render_to(renderer, "out_of_scope", language, "client")
    assert label in client.text
    assert "架電" not in client.text  # the reasons are internal
    director = render_to(renderer, "out_of_scope", language, "director")
    assert label in director.subject and "架電" in director.text
    assert "#reject" in director.text
    coordinator = render_to(renderer, "out_of_scope", language, "coordinator")
    assert "#reject" not in coordinator.text and "架電" in coordinator.text


def test_out_of_scope_says_which_words_called_for_the_skill_in_japanese(
    renderer: Renderer,
) -> None:
    scope = {
        "skills": ["phone", "translation"],
        "reasons": ["route 'out_of_scope': matched — needs an out-of-scope skill → yes"],
        "evidence": [{"skill": "phone", "word": "<電話>"}, {"skill": "translation", "word": None}],
    }
    director = render_to(renderer, "out_of_scope", "ja", "director", scope=scope)
    assert "  ・ご依頼に「<電話>」とあります（電話対応）\n" in director.text
    assert "  ・振り分けルールで必要と判定しました（翻訳）\n" in director.text
    assert "route 'out_of_scope'" not in director.text
    assert director.html is not None and "ご依頼に「&lt;電話&gt;」とあります" in director.html
    client = render_to(renderer, "out_of_scope", "ja", "client", scope=scope)
    assert "<電話>" not in client.text  # the reasons are internal


@pytest.mark.parametrize(
    ("language", "facts"),
    [
        ("ja", ["2026年11月", "80% に達しました", "20 時間／月", "16.5 時間（82%）", "3.5 時間"]),
        ("en", ["November 2026", "used 80%", "20 h", "16.5 h (82%)", "Left:          3.5 h"]),
    ],
)
def test_hours_warning_shows_used_of_monthly(
    renderer: Renderer, language: str, facts: list[str]
) -> None:
    rendered = render_to(renderer, "hours_warning", language, "client")
    assert "82%" in rendered.subject
    for fact in facts:
        assert fact in rendered.text, fact


@pytest.mark.parametrize("language", LANGUAGES)
def test_hours_warning_at_100_percent_without_a_request(renderer: Renderer, language: str) -> None:
    ctx = context() | {"recipient": RECIPIENTS["coordinator"], "request": ..., "member": ...}
    ctx["hours"] |= {"used": 20.5, "percent": 102.5, "threshold": 100}
    rendered = render(renderer, "hours_warning", language, ref=None, **ctx)
    assert "100%" in rendered.subject and "株式会社アクメ" in rendered.subject
    assert "MF-" not in rendered.subject
    assert "102.5%" in rendered.text and "0" in rendered.text


@pytest.mark.parametrize(
    ("language", "facts"),
    [
        (
            "ja",
            ["残り約 5.5 時間", "2026年12月3日（木）18:00", "#完了 1.5h", "ディレクターへご相談"],
        ),
        ("en", ["about 5.5 hours left", "Thu 3 Dec 2026 18:00", "#done 1.5h", "tell the director"]),
    ],
)
def test_reminder_names_the_deadline(renderer: Renderer, language: str, facts: list[str]) -> None:
    rendered = render_to(renderer, "reminder", language, "member")
    for fact in facts:
        assert fact in rendered.text, fact
    direct = render_to(
        renderer, "reminder", language, "member", request=context(**DIRECT)["request"]
    )
    assert "#due" in direct.text


@pytest.mark.parametrize(("language", "late"), [("ja", "26時間超過"), ("en", "26 h late")])
def test_overdue_alerts_the_director(renderer: Renderer, language: str, late: str) -> None:
    rendered = render_to(renderer, "overdue", language, "director", member=RECIPIENTS["member"])
    assert late in rendered.subject
    assert "佐藤 一郎 (sato)" in rendered.text or "佐藤 一郎（sato）" in rendered.text
    assert "#hold" in rendered.text


@pytest.mark.parametrize("language", LANGUAGES)
def test_client_message_quotes_the_client_and_offers_commands(
    renderer: Renderer, language: str
) -> None:
    director = render_to(renderer, "client_message", language, "director")
    assert "> 添付の件、どうなっていますか？" in director.text
    assert "#close" in director.text and "#revise" in director.text
    member = render_to(
        renderer, "client_message", language, "member", request=context(**DIRECT)["request"]
    )
    assert "#close" not in member.text and "#done" in member.text


@pytest.mark.parametrize(
    ("state", "ja", "en"),
    [
        ("on_hold", "保留", "on hold"),
        ("in_progress", "再開", "resumed"),
        ("closed", "完了", "closed"),
        ("rejected", "お引き受けいたしかねます", "unable to take on"),
    ],
)
def test_status_update_explains_the_state(renderer: Renderer, state: str, ja: str, en: str) -> None:
    status = {"state": state, "reason": "資料待ち"}
    japanese = render_to(renderer, "status_update", "ja", "client", status=status)
    assert ja in japanese.subject + japanese.text and "> 資料待ち" in japanese.text
    english = render_to(renderer, "status_update", "en", "client", status=status)
    assert en in english.subject + english.text


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("audience", ["client", "director"])
def test_security_alert_never_repeats_the_impostors_subject_in_its_own(
    renderer: Renderer, language: str, audience: str
) -> None:
    ctx = context() | {"recipient": RECIPIENTS[audience], "request": ..., "client": ...}
    rendered = render(renderer, "security_alert", language, ref=None, **ctx)
    assert "至急" not in rendered.subject
    assert "至急 承認してください" in rendered.text
    assert "> #承認\n> #担当 suzuki" in rendered.text
    assert "DMARC" in rendered.text
    if language == "ja" and audience == "client":
        assert rendered.text.startswith("山田 太郎 様\n")


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", ["unknown_sender", "too_large", "bounce_alert"])
def test_older_notices_have_an_html_part_too(renderer: Renderer, kind: str, language: str) -> None:
    rendered = render(renderer, kind, language, recipient=RECIPIENTS["client"])
    assert rendered.html is not None and f'<html lang="{language}">' in rendered.html
    assert DESK_ADDRESS in rendered.html


@pytest.mark.parametrize("language", LANGUAGES)
def test_quarantined_tells_the_director_how_to_replay(renderer: Renderer, language: str) -> None:
    notice = Notice(
        kind="quarantined",
        to=(Address("tanaka@secretary.example", "田中 花子"),),
        language=language,
        recipient_id="tanaka",
        context={
            "recipient": {"id": "tanaka", "name": "田中 花子"},
            "inbox": {
                "id": 7,
                "sender": "",
                "subject": "{{ 7*7 }}",
                "reason": "ValueError: broken\\nline",
            },
        },
    )
    rendered = renderer.render(notice, ref=None, desk_name=DESK_NAME, desk_address=DESK_ADDRESS)
    assert "#7" in rendered.subject and "MF-" not in rendered.subject
    assert "mailflow quarantine replay 7" in rendered.text
    assert "{{ 7*7 }}" in rendered.text and "ValueError: broken" in rendered.text


# The renderer's environment takes shortcuts for speed (dict look-ups, macro calls, globals);
# each source below must come out exactly as stock Jinja writes it.
SAME_AS_JINJA = [
    "{{ d.a }}|{{ d.items is callable }}|{{ d.get('a') }}|{{ d.nope is defined }}|"
    "{{ d.nope | default('-') }}|{{ d['a'] }}|{{ d.inner.b }}|{{ l.0 }}|{{ range(2) | list }}",
    "{% macro m(a, b='B') %}<{{ a }}{{ b }}{{ varargs }}{{ kwargs }}>{% endmacro %}"
    "{{ m('<x>') }}{{ m(1, b=2) }}{{ m(1, 2, 3, k=4) }}{% for i in l %}{{ m(i) }}{% endfor %}",
    "{% macro box(t) %}[{{ t }}|{{ caller('<y>') }}]{% endmacro %}"
    "{% for i in l %}{% call(v) box(i) %}{{ v }}{{ loop.index }}<b>{% endcall %}{% endfor %}",
    "{% block title %}T<{{ d.a }}>{% endblock %}|{{ self.title() }}",
    "{% set ns = namespace(n=0) %}{% for i in l %}{% set ns.n = ns.n + 1 %}{% endfor %}"
    "{{ ns.n }}{{ dict(x=1).x }}{{ lipsum is defined }}",
]


@pytest.mark.parametrize("autoescape", [True, False])
@pytest.mark.parametrize("source", SAME_AS_JINJA)
def test_environment_renders_as_stock_jinja(source: str, autoescape: bool) -> None:
    import jinja2

    values = {"d": {"a": "<&>", "inner": {"b": 2}}, "l": ["<1>", 2]}
    ours = Renderer([]).env.overlay(autoescape=autoescape)
    stock = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=autoescape)
    assert ours.from_string(source).render(values) == stock.from_string(source).render(values)
    with pytest.raises(jinja2.UndefinedError, match="has no attribute 'nope'"):
        ours.from_string("{{ d.nope }}").render(values)


def test_a_new_renderer_reads_changed_templates(tmp_path: Path) -> None:
    write(tmp_path, "ja/ping.subject.j2", "ping\n")
    write(tmp_path, "ja/ping.txt.j2", "first\n")
    renderer = Renderer([tmp_path])
    assert render(renderer, "ping", "ja").text == "first\n"
    write(tmp_path, "ja/ping.txt.j2", "second\n")
    # One renderer compiles each template once; a reload (SIGHUP) builds a new one.
    assert render(renderer, "ping", "ja").text == "first\n"
    assert render(Renderer([tmp_path]), "ping", "ja").text == "second\n"


def test_nl2br_escapes_each_line() -> None:
    from markupsafe import Markup

    from mailflow.render import nl2br

    assert nl2br("a & b\r\n<i>\n\n'q'") == Markup("a &amp; b<br>\n&lt;i&gt;<br>\n<br>\n&#39;q&#39;")
    assert nl2br("") == Markup("")


@pytest.mark.parametrize(("language", "separator"), [("ja", "、"), ("en", ", ")])
@pytest.mark.parametrize("skills", [[], ["research"], ["data_entry", "unknown_skill", "phone"]])
def test_skill_labels_lists_as_map_and_join_would(
    renderer: Renderer, language: str, separator: str, skills: list[str]
) -> None:
    env = renderer.env
    mapped = env.from_string(
        f'{{{{ skills | map("skill_label", "{language}") | join("{separator}") }}}}'
    )
    listed = env.from_string(f'{{{{ skills | skill_labels("{language}") }}}}')
    assert listed.render(skills=skills) == mapped.render(skills=skills)
