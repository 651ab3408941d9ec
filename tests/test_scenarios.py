"""Whole conversations by email: both service models, ja and en, spoofing, forwards.

Each step asserts the request's state and the exact outbox rows the mail produced.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conversation import DESK, Desk, File, kinds, mail, only

XLSX = File(
    "競合調査_アクメ様.xlsx",
    b"PK\x03\x04 fake excel",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
)
YAMADA, TANAKA, SATO = "yamada@acme.example", "tanaka@secretary.example", "sato@members.example"
KIM, SUZUKI = "kim@beta.example", "suzuki@members.example"


@pytest.fixture
def desk(any_home: Path) -> Iterator[Desk]:
    opened = Desk.open(any_home)
    yield opened
    opened.close()


def test_director_model_in_japanese_with_a_revision_round(desk: Desk) -> None:
    rows = desk.send(
        mail(
            YAMADA,
            DESK,
            "競合調査のお願い",
            "競合3社の料金を調査して、Excelでまとめてください。\n",
            name="山田 太郎",
            charset="iso-2022-jp",
        )
    )
    assert kinds(rows) == [("confirmation", YAMADA), ("new_request", TANAKA)]
    assert desk.request()["state"] == "new"
    # Why this member is suggested, in the director's language.
    suggested = only(rows, "new_request")["body_text"]
    assert "・振り分けルール「" in suggested and "今週の割り当て" in suggested
    assert "suggested" not in suggested and "runner-up" not in suggested

    # The director assigns and sets the deadline by replying to new_request.
    rows = desk.reply(only(rows, "new_request"), TANAKA, "#担当 sato\n#納期 12/3\n")
    assert kinds(rows) == [("assignment", SATO), ("receipt", TANAKA)]
    request = desk.request()
    assert request["state"] == "assigned" and request["assignee"] == "sato"
    assert request["due"].startswith("2026-12-03")
    assignment = only(rows, "assignment")

    # The member asks the director; the director asks the client; the answer comes back.
    rows = desk.reply(assignment, SATO, "対象の3社はどこでしょうか？\n")
    assert kinds(rows) == [("question", TANAKA), ("receipt", SATO)]
    assert desk.request()["state"] == "in_progress"
    rows = desk.reply(only(rows, "question"), TANAKA, "#質問 対象の3社を教えていただけますか？\n")
    assert kinds(rows) == [("question", YAMADA), ("receipt", TANAKA)]
    rows = desk.reply(only(rows, "question"), YAMADA, "A社、B社、C社でお願いします。\n")
    assert kinds(rows) == [("answer", TANAKA)]
    assert "A社、B社、C社" in only(rows, "answer")["body_text"]

    # The member delivers; the director reviews and sends it back once.
    rows = desk.reply(assignment, SATO, "#完了 2h\n納品します。\n", files=(XLSX,))
    assert kinds(rows) == [("review", TANAKA), ("receipt", SATO)]
    review = only(rows, "review")
    assert desk.request()["state"] == "in_review"
    assert review["attachments"] == [XLSX.name]
    rows = desk.reply(review, TANAKA, "#修正 URLの列を追加してください\n")
    assert kinds(rows) == [("revision", SATO), ("receipt", TANAKA)]
    assert "URLの列" in only(rows, "revision")["body_text"]
    assert desk.request()["state"] == "in_progress"

    rows = desk.reply(only(rows, "revision"), SATO, "修正しました。\n", files=(XLSX,))
    assert kinds(rows) == [("review", TANAKA), ("receipt", SATO)]
    rows = desk.reply(only(rows, "review"), TANAKA, "#承認 ご確認をお願いいたします。\n")
    assert kinds(rows) == [("delivery", YAMADA), ("receipt", TANAKA)]
    delivery = only(rows, "delivery")
    assert delivery["attachments"] == [XLSX.name]
    assert "ご確認をお願いいたします" in delivery["body_text"]
    assert desk.request()["state"] == "delivered"

    # The client asks for a change: back through the director.
    rows = desk.reply(delivery, YAMADA, "列の順番を変更していただけますか。\n")
    assert kinds(rows) == [("revision", TANAKA)]
    request = desk.request()
    assert request["state"] == "in_review" and request["revision_count"] == 1
    rows = desk.reply(only(rows, "revision"), TANAKA, "#修正 列の順番を会社名・料金・URLに\n")
    assert kinds(rows) == [("revision", SATO), ("receipt", TANAKA)]
    rows = desk.reply(only(rows, "revision"), SATO, "#完了 0.5h\n", files=(XLSX,))
    rows = desk.reply(only(rows, "review"), TANAKA, "#承認\n")
    rows = desk.reply(only(rows, "delivery"), YAMADA, "ありがとうございました。助かりました。\n")
    assert kinds(rows) == [("feedback", SATO)]
    request = desk.request()
    assert request["state"] == "closed" and request["hours_spent"] == 2.5
    assert desk.events() == [
        "created",
        "assigned",
        "due_set",
        "member_question",
        "asked",
        "answered",
        "delivered_for_review",
        "revision_requested",
        "delivered_for_review",
        "approved",
        "revision_asked",
        "revision_requested",
        "delivered_for_review",
        "approved",
        "accepted",
    ]


def test_direct_model_in_english_with_an_estimate_and_an_hours_warning(desk: Desk) -> None:
    rows = desk.send(
        mail(
            KIM,
            DESK,
            "Translate our product sheet",
            "Please translate the product sheet into Japanese.\n",
            name="Jin Kim",
        )
    )
    assert kinds(rows) == [("confirmation", KIM), ("assignment", SUZUKI)]
    assignment = only(rows, "assignment")
    assert desk.request()["state"] == "assigned"

    rows = desk.reply(assignment, SUZUKI, "#estimate 17h\n")
    assert kinds(rows) == [("estimate", KIM), ("receipt", SUZUKI)]
    estimate = only(rows, "estimate")
    assert "17" in estimate["body_text"] and "20" in estimate["body_text"]
    assert desk.request()["state"] == "estimated"

    rows = desk.reply(estimate, KIM, "OK, that works. Please go ahead.\n")
    assert kinds(rows) == [("answer", SUZUKI)]
    assert desk.request()["state"] == "in_progress"

    sheet = File("product_sheet_ja.docx", b"PK docx", "application/octet-stream")
    rows = desk.reply(assignment, SUZUKI, "#done 17h\nHere is the translation.\n", files=(sheet,))
    assert kinds(rows) == [
        ("hours_warning", KIM),
        ("hours_warning", TANAKA),
        ("delivery", KIM),
        ("receipt", SUZUKI),
    ]
    warning = rows[0]
    assert "17" in warning["body_text"] and "20" in warning["body_text"]
    request = desk.request()
    assert request["state"] == "delivered" and request["hours_spent"] == 17

    rows = desk.reply(only(rows, "delivery"), KIM, "Thanks, looks great!\n")
    assert kinds(rows) == [("feedback", SUZUKI)]
    assert desk.request()["state"] == "closed"


def test_a_spoofed_approve_does_nothing_and_the_real_director_is_told_once(desk: Desk) -> None:
    rows = desk.send(mail(YAMADA, DESK, "資料作成", "営業資料を作成してください。\n"))
    desk.reply(only(rows, "new_request"), TANAKA, "#担当 sato\n")
    attack = mail(TANAKA, DESK, "[MF-0001] 承認", "#承認\n#close\n")
    rows = desk.send(attack)
    assert kinds(rows) == [("security_alert", TANAKA)]
    assert desk.request()["state"] == "assigned"
    assert desk.events()[-1] == "spoofed"
    held = desk.service.store.list_quarantine()
    assert held[-1]["state"] == "held" and "unauthenticated" in held[-1]["reason"]
    # A second attempt is recorded, but the owner is not mailed again the same day.
    rows = desk.send(mail(TANAKA, DESK, "[MF-0001] 承認", "#承認\n"))
    assert rows == []
    assert desk.events()[-2:] == ["spoofed", "spoofed"]


def test_a_signed_reply_address_used_by_another_sender_proves_nothing(desk: Desk) -> None:
    rows = desk.send(mail(YAMADA, DESK, "資料作成", "営業資料を作成してください。\n"))
    new_request = only(rows, "new_request")
    # ito is a director too, but the address was signed for tanaka.
    rows = desk.reply(new_request, "ito@secretary.example", "#担当 sato\n")
    assert desk.request()["state"] == "new"
    assert all(row["kind"] != "assignment" for row in rows)


def test_authentication_results_of_a_trusted_mx_authenticate(any_home: Path) -> None:
    toml = any_home / "mailflow.toml"
    text = toml.read_text(encoding="utf-8")
    toml.write_text(
        text.replace(
            "trusted_authserv_ids = []", 'trusted_authserv_ids = ["mx.secretary.example"]'
        ),
        encoding="utf-8",
    )
    desk = Desk.open(any_home)
    try:
        desk.send(mail(YAMADA, DESK, "資料作成", "営業資料を作成してください。\n"))
        forged_below = (
            "Authentication-Results: mx.evil.example; dmarc=pass header.from=secretary.example\r\n"
        )
        desk.send(mail(TANAKA, DESK, "[MF-0001]", "#担当 sato\n", extra_headers=forged_below))
        assert desk.request()["state"] == "new"
        trusted = (
            "Authentication-Results: mx.secretary.example; dkim=pass "
            "header.d=secretary.example; dmarc=pass header.from=secretary.example\r\n"
        )
        rows = desk.send(
            mail(TANAKA, DESK, "[MF-0001]", "#担当 sato\n", extra_headers=trusted + forged_below)
        )
        assert kinds(rows) == [("assignment", SATO), ("receipt", TANAKA)]
        spoof_on_top = forged_below + trusted
        desk.send(mail(TANAKA, DESK, "[MF-0001]", "#close\n", extra_headers=spoof_on_top))
        assert desk.request()["state"] == "assigned"
    finally:
        desk.close()


def test_a_director_forwards_a_client_mail_with_tags(any_home: Path) -> None:
    toml = any_home / "mailflow.toml"
    toml.write_text(
        toml.read_text(encoding="utf-8").replace(
            "trusted_authserv_ids = []", 'trusted_authserv_ids = ["mx.secretary.example"]'
        ),
        encoding="utf-8",
    )
    desk = Desk.open(any_home)
    try:
        forwarded = (
            "#担当 sato\n#納期 2026-12-10\n\n"
            "---------- Forwarded message ---------\n"
            "From: 山田 太郎 <yamada@acme.example>\n"
            "Date: 2026年11月26日(木) 9:00\n"
            "Subject: 請求書の入力\n"
            "To: 田中 花子 <tanaka@secretary.example>\n\n"
            "先月分の請求書データを入力してください。\n"
        )
        auth = (
            "Authentication-Results: mx.secretary.example; dmarc=pass "
            "header.from=secretary.example\r\n"
        )
        rows = desk.send(mail(TANAKA, DESK, "Fwd: 請求書の入力", forwarded, extra_headers=auth))
        assert kinds(rows) == [("confirmation", YAMADA), ("assignment", SATO), ("receipt", TANAKA)]
        request = desk.request()
        assert request["client"] == "acme" and request["subject"] == "請求書の入力"
        assert request["state"] == "assigned" and request["assignee"] == "sato"
        assert request["due"].startswith("2026-12-10")
    finally:
        desk.close()


def test_an_illegal_command_is_refused_with_what_is_possible(desk: Desk) -> None:
    rows = desk.send(mail(YAMADA, DESK, "資料作成", "営業資料を作成してください。\n"))
    rows = desk.reply(only(rows, "new_request"), TANAKA, "#承認\n#担当 nobody\n#frobnicate\n")
    receipt = only(rows, "receipt")
    assert kinds(rows) == [("receipt", TANAKA)]
    text = receipt["body_text"]
    # Said in the director's language; the English is the record (the outbox's context).
    assert "ご依頼が「受付済み」の間は実行できません" in text
    assert "メンバー「nobody」が見つかりません" in text
    assert "✗ #frobnicate\n      理由：不明なコマンドです" in text
    assert "#assign" in text  # what is possible now
    assert "not possible" not in text and "no member" not in text
    assert desk.request()["state"] == "new"


def test_a_client_cannot_reach_another_companys_request(desk: Desk) -> None:
    rows = desk.send(mail(YAMADA, DESK, "資料作成", "営業資料を作成してください。\n"))
    confirmation = only(rows, "confirmation")
    # kim (Beta LLC) replies to acme's confirmation address and quotes its ref.
    desk.reply(confirmation, KIM, "Thanks, looks good!\n")
    assert len(desk.service.store.list_requests()) == 2
    assert desk.request("MF-0001")["state"] == "new"
    assert desk.request("MF-0002")["client"] == "beta"


def test_two_mails_on_one_request_written_in_one_group_act_as_if_one_after_the_other(
    desk: Desk,
) -> None:
    """Crew workers work several mails out before writing them: a mail planned against a
    request that another mail of the group has changed since is worked out again."""
    rows = desk.send(mail(YAMADA, DESK, "議事録作成のお願い", "議事録を作成してください。\n"))
    new_request = only(rows, "new_request")
    store = desk.service.store
    for text in ("#担当 sato\n", "#担当 suzuki\n"):
        answer = mail(
            TANAKA,
            new_request["reply_to"],
            "Re: " + new_request["subject"],
            text,
            in_reply_to=new_request["message_id"],
        )
        store.accept(answer, "smtp", "")
    done = desk.service.desk.process_group(store.pending())
    assert [result.state for result in done] == ["done", "done"]
    request = desk.request()
    assert request["assignee"] == "suzuki"
    assigned = [e for e in request["events"] if e["kind"] == "assigned"]
    # The second was planned on the first's outcome: a reassignment from sato.
    assert len(assigned) == 2
    assert assigned[1]["from_state"] == "assigned"
    assert assigned[1]["detail"]["previous"] == "sato"
