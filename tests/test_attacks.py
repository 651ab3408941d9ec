"""The attack suite (issue 7): hostile mail against a real demo instance.

Every attack ends the same way: nothing obeyed (the request is as it was, nothing was sent
that the attacker wanted), nothing lost (the mail is kept: held or quarantined with a
reason, or handled as a plain client message when that is the right answer), nothing
written outside the instance, and a clear record (an event, a held row, a suppression).
"""

from __future__ import annotations

import base64
import json
import re
import time
import tracemalloc
import uuid
from collections.abc import Iterator
from email.header import Header
from email.message import Message
from email.parser import BytesParser
from email.policy import compat32
from pathlib import Path
from typing import Any

import pytest
from conversation import DESK, Desk, File, kinds, mail, only

pytestmark = pytest.mark.security

YAMADA, TANAKA, ITO = "yamada@acme.example", "tanaka@secretary.example", "ito@secretary.example"
SATO, SUZUKI, EMMA = "sato@members.example", "suzuki@members.example", "emma@members.example"
KIM, KATO, LEE = "kim@beta.example", "kato@gamma.example", "lee@delta.example"
XLSX = File("調査結果.xlsx", b"PK\x03\x04 fake excel", "application/octet-stream")
TRUSTED = (
    "Authentication-Results: mx.secretary.example; dkim=pass "
    "header.d=secretary.example; dmarc=pass header.from=secretary.example\r\n"
)
FORGED = (
    "Authentication-Results: mx.evil.example; dkim=pass "
    "header.d=secretary.example; dmarc=pass header.from=secretary.example\r\n"
)
ACME_TEXT = "営業資料を作成してください。"
HEX64 = re.compile(r"[0-9a-f]{64}")


# -- fixtures and checks ------------------------------------------------------------------


@pytest.fixture
def desk(home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Desk]:
    """The demo instance on SQLite, believing the desk's own MX (DESIGN §8).

    The working directory is a scratch directory next to the instance, so that a file
    written to a relative path ("../../etc/passwd") is caught by the containment check.
    """
    scratch = home.parent / "cwd" / "a" / "b"
    scratch.mkdir(parents=True)
    monkeypatch.chdir(scratch)
    toml = home / "mailflow.toml"
    text = toml.read_text(encoding="utf-8")
    assert "trusted_authserv_ids = []" in text
    toml.write_text(
        text.replace(
            "trusted_authserv_ids = []", 'trusted_authserv_ids = ["mx.secretary.example"]'
        ),
        encoding="utf-8",
    )
    opened = Desk.open(home)
    files_before = _files(home.parent)
    yield opened
    opened.close()
    _assert_contained(home, files_before)


def _files(root: Path) -> set[Path]:
    return {path for path in root.rglob("*") if path.is_file() or path.is_symlink()}


def _assert_contained(home: Path, before: set[Path]) -> None:
    """Nothing outside the instance; raw mail and files only under their sha256."""
    created = _files(home.parent) - before
    outside = sorted(str(p) for p in created if not p.resolve().is_relative_to(home.resolve()))
    assert outside == [], f"written outside the instance: {outside}"
    for store in ("raw", "files"):
        directory = home / "data" / store
        found = [p for p in directory.rglob("*")] if directory.is_dir() else []
        odd = [str(p) for p in found if not (p.is_file() and HEX64.fullmatch(p.name))]
        assert odd == [], f"data/{store} holds something not named by sha256: {odd}"


def _outgoing(desk: Desk) -> list[tuple[dict[str, Any], bytes]]:
    """Every outbox row with the exact bytes the relay would get."""
    from mailflow.store import OutboxLetter

    contents = {row.id: bytes(row.content) for row in OutboxLetter.select()}
    return [(row, contents[row["id"]]) for row in desk.service.store.list_outbox()]


_TOP_HEADERS = {
    "from",
    "to",
    "cc",
    "reply-to",
    "subject",
    "date",
    "message-id",
    "in-reply-to",
    "references",
    "auto-submitted",
    "x-auto-response-suppress",
    "x-mailflow-loop",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
}
_PART_HEADERS = {"content-type", "content-transfer-encoding", "content-disposition", "content-id"}


def _assert_clean_headers(desk: Desk) -> None:
    """No outgoing mail has a header we did not write, a bare CR/LF or a line over 998."""
    outgoing = _outgoing(desk)
    assert outgoing
    for row, raw in outgoing:
        where = f"outbox {row['id']} ({row['kind']})"
        assert b"\r" not in raw.replace(b"\r\n", b"") and b"\n" not in raw.replace(b"\r\n", b"")
        longest = max(len(line) for line in raw.split(b"\r\n"))
        assert longest <= 998, f"{where}: a line of {longest} octets"
        message = BytesParser(policy=compat32).parsebytes(raw)
        names = [key.lower() for key in message.keys()]
        assert set(names) <= _TOP_HEADERS, f"{where}: injected {set(names) - _TOP_HEADERS}"
        assert len(names) == len(set(names)), f"{where}: a repeated header in {names}"
        assert message.defects == [], f"{where}: {message.defects}"
        for part in message.walk():
            if part is message:
                continue
            extra = {key.lower() for key in part.keys()} - _PART_HEADERS
            assert not extra, f"{where}: a MIME part has headers {extra}"


def _mime_parts(raw: bytes) -> dict[str, str]:
    """The decoded text/plain and text/html parts of one outgoing mail."""
    message = BytesParser(policy=compat32).parsebytes(raw)
    parts: dict[str, str] = {}
    for part in message.walk():
        if part.get_content_type() in ("text/plain", "text/html") and not part.get_filename():
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            parts.setdefault(part.get_content_type(), payload.decode("utf-8"))
    return parts


def _raw_of(desk: Desk, row: dict[str, Any]) -> bytes:
    return next(raw for outbox, raw in _outgoing(desk) if outbox["id"] == row["id"])


def _facts(desk: Desk, ref: str = "MF-0001") -> dict[str, Any]:
    """What an attack must not change: the request's columns and its non-spoofed events."""
    shown = desk.request(ref)
    keep = ("state", "assignee", "due", "priority", "revision_count", "hours_estimate")
    facts = {key: shown[key] for key in keep}
    facts["hours_spent"] = shown["hours_spent"]
    facts["skills"] = shown["skills"]
    facts["attachments"] = shown["attachments"]
    facts["events"] = [e for e in shown["events"] if e["kind"] != "spoofed"]
    return facts


def _last_held(desk: Desk) -> dict[str, Any]:
    held = desk.service.store.list_quarantine()
    assert held, "the mail was not kept"
    return held[-1]


def _signed(desk: Desk, ref: str, address: str) -> str:
    from mailflow.threading import reply_address

    return reply_address(DESK, ref, address, desk.service.desk.secret)


# -- setting the scene --------------------------------------------------------------------


def _acme(desk: Desk, stage: str) -> dict[str, dict[str, Any]]:
    """Acme's MF-0001 (director model) brought to ``stage``; the rows that got it there."""
    rows = desk.send(mail(YAMADA, DESK, "資料作成", ACME_TEXT + "\n"))
    scene = {"confirmation": only(rows, "confirmation"), "new_request": only(rows, "new_request")}
    if stage == "new":
        return scene
    rows = desk.reply(scene["new_request"], TANAKA, "#担当 sato\n")
    scene["assignment"] = only(rows, "assignment")
    if stage == "assigned":
        return scene
    rows = desk.reply(scene["assignment"], SATO, "#完了 1h\n納品します。\n", files=(XLSX,))
    scene["review"] = only(rows, "review")
    assert desk.request()["state"] == "in_review"
    return scene


def _beta(desk: Desk) -> dict[str, dict[str, Any]]:
    """Beta's MF-0001 (direct model, member suzuki, coordinator tanaka), assigned."""
    rows = desk.send(mail(KIM, DESK, "Translate our sheet", "Please translate the sheet.\n"))
    return {"confirmation": only(rows, "confirmation"), "assignment": only(rows, "assignment")}


def _assert_spoof_recorded(desk: Desk, rows: list[dict[str, Any]], owner: str) -> None:
    """Only the real owner heard of it (once), the attempt is an event, the mail is held."""
    assert kinds(rows) == [("security_alert", owner)]
    assert desk.events()[-1] == "spoofed"
    held = _last_held(desk)
    assert held["state"] == "held" and "unauthenticated" in held["reason"], held


# -- 1. spoofed From, every role and command ------------------------------------------------

DIRECTOR_COMMANDS = [
    ("new", "#assign sato\n"),
    ("new", "#担当 emma\n"),
    ("in_review", "#approve looks good\n"),
    ("in_review", "#承認 ご確認ください\n"),
    ("in_review", "#revise add a column\n"),
    ("in_review", "#修正 列を追加\n"),
    ("assigned", "#close\n"),
    ("assigned", "#reject we cannot do this\n"),
    ("assigned", "#hold\n"),
    ("assigned", "#due 2026-12-24\n"),
    ("assigned", "#納期 明日\n"),
    ("assigned", "#priority high\n"),
    ("assigned", "#note the client is difficult\n"),
    ("assigned", "#skill translation\n"),
]


@pytest.mark.parametrize(("stage", "command"), DIRECTOR_COMMANDS)
def test_a_forged_director_gets_nothing_done(desk: Desk, stage: str, command: str) -> None:
    scene = _acme(desk, stage)
    before = _facts(desk)
    # The forger knows the ref and even the Message-ID of our mail, but not the signed
    # address; the untrusted Authentication-Results header is their own.
    attack = mail(
        TANAKA,
        DESK,
        "Re: [MF-0001] 資料作成",
        command,
        in_reply_to=scene["new_request"]["message_id"],
        extra_headers=FORGED,
    )
    rows = desk.send(attack)
    assert _facts(desk) == before
    _assert_spoof_recorded(desk, rows, TANAKA)
    spoofed = desk.request()["events"][-1]
    assert spoofed["detail"]["commands"] == [command.strip()]
    assert "untrusted 'mx.evil.example'" in spoofed["detail"]["why"]


def test_the_real_owner_is_told_once_a_day_and_every_attempt_is_recorded(desk: Desk) -> None:
    _acme(desk, "in_review")
    before = _facts(desk)
    attempts = ["#承認\n", "#approve\n", "#close\n", "#担当 emma\n", "#reject spam\n"]
    sent = []
    for command in attempts:
        sent += desk.send(mail(TANAKA, DESK, "[MF-0001] 承認", command))
    assert kinds(sent) == [("security_alert", TANAKA)]
    assert _facts(desk) == before
    assert desk.events()[-len(attempts) :] == ["spoofed"] * len(attempts)
    suppressed = [s for s in desk.service.store.list_suppressions() if s["recipient"] == TANAKA]
    assert [s["kind"] for s in suppressed] == ["security_alert"] * (len(attempts) - 1)
    assert all("within 1 day" in s["reason"] for s in suppressed)
    held = [h for h in desk.service.store.list_quarantine() if "unauthenticated" in h["reason"]]
    assert len(held) == len(attempts)


def test_a_forged_member_delivery_delivers_nothing(desk: Desk) -> None:
    _acme(desk, "assigned")
    before = _facts(desk)
    fake = File("invoice.pdf.exe", b"MZ malware", "application/octet-stream")
    rows = desk.send(mail(SATO, DESK, "Re: [MF-0001]", "#done 3h\nHere it is.\n", files=(fake,)))
    assert all(
        row["kind"] not in ("review", "delivery") for row in desk.service.store.list_outbox()
    )
    assert _facts(desk) == before
    _assert_spoof_recorded(desk, rows, SATO)
    # The fake file was not kept as part of any request (only the raw mail is).
    assert not (desk.service.store.files.root / _sha(fake.payload)).exists()


def test_a_forged_member_delivery_without_a_command_delivers_nothing(desk: Desk) -> None:
    _acme(desk, "assigned")
    before = _facts(desk)
    rows = desk.send(mail(SATO, DESK, "[MF-0001] 納品", "納品します。\n", files=(XLSX,)))
    assert _facts(desk) == before
    _assert_spoof_recorded(desk, rows, SATO)


@pytest.mark.parametrize(
    ("sender", "command"),
    [
        (SUZUKI, "#estimate 1h\n"),
        (SUZUKI, "#見積 30分\n"),
        (SUZUKI, "#ask Please send your bank password\n"),
        (SUZUKI, "#質問 パスワードを教えてください\n"),
        (SUZUKI, "#done 19h\nhttps://evil.example/files\n"),
        (TANAKA, "#close\n"),  # beta's coordinator
        (TANAKA, "#reject no\n"),
    ],
)
def test_a_forged_member_or_coordinator_on_a_direct_request(
    desk: Desk, sender: str, command: str
) -> None:
    _beta(desk)
    before = _facts(desk)
    rows = desk.send(mail(sender, DESK, "Re: [MF-0001] Translate our sheet", command))
    assert _facts(desk) == before
    assert desk.service.store.hours_used("beta", *_month()) == 0
    _assert_spoof_recorded(desk, rows, sender)


def test_a_forged_coordinator_on_gamma(desk: Desk) -> None:
    desk.send(mail(KATO, DESK, "経費精算", "先月分の経費を入力してください。\n"))
    before = _facts(desk)
    rows = desk.send(mail(ITO, DESK, "Re: [MF-0001] 経費精算", "#reject 対応できません\n#close\n"))
    assert _facts(desk) == before
    _assert_spoof_recorded(desk, rows, ITO)
    assert "#reject" in only(rows, "security_alert")["body_text"]


def test_a_forged_english_member_delivery(desk: Desk) -> None:
    """emma works in English: her alert is in English and names what was tried."""
    scene = _acme(desk, "new")
    desk.reply(scene["new_request"], TANAKA, "#assign emma\n")
    before = _facts(desk)
    rows = desk.send(
        mail(EMMA, DESK, "Re: [MF-0001]", "#done 2h\nAll done.\n", files=(XLSX,), name="Emma")
    )
    assert _facts(desk) == before
    _assert_spoof_recorded(desk, rows, EMMA)
    alert = only(rows, "security_alert")["body_text"]
    assert "none of its commands were applied" in alert and "> #done 2h" in alert


def test_a_forged_member_question_reaches_no_client(desk: Desk) -> None:
    _acme(desk, "assigned")
    before = _facts(desk)
    rows = desk.send(mail(SATO, DESK, "[MF-0001]", "#ask ログイン情報を送ってください\n"))
    assert _facts(desk) == before
    _assert_spoof_recorded(desk, rows, SATO)
    assert all(YAMADA not in row["to"] for row in rows)


@pytest.mark.parametrize("headers", ["", FORGED])
def test_a_forged_director_forward_creates_no_request(desk: Desk, headers: str) -> None:
    forwarded = (
        "#担当 sato\n#承認\n\n"
        "---------- Forwarded message ---------\n"
        "From: 山田 太郎 <yamada@acme.example>\n"
        "Date: 2026年11月26日(木) 9:00\n"
        "Subject: 請求書の入力\n"
        "To: 田中 花子 <tanaka@secretary.example>\n\n"
        "先月分の請求書データを入力してください。\n"
    )
    rows = desk.send(mail(TANAKA, DESK, "Fwd: 請求書の入力", forwarded, extra_headers=headers))
    assert desk.service.store.list_requests() == []
    assert kinds(rows) == [("security_alert", TANAKA)]
    held = _last_held(desk)
    assert held["state"] == "held" and "unauthenticated" in held["reason"]


@pytest.mark.parametrize(
    ("stage", "command"),
    [
        ("in_review", "#approve\n"),
        ("in_review", "#承認\n"),
        ("assigned", "#close\n"),
        ("assigned", "#assign emma\n"),
        ("assigned", "#reject too much work\n"),
        ("assigned", "#priority low\n"),
    ],
)
def test_an_authenticated_member_cannot_use_director_commands(
    desk: Desk, stage: str, command: str
) -> None:
    """Authentication is not authorisation: sato really wrote it, and still nothing."""
    scene = _acme(desk, stage)
    before = _facts(desk)
    rows = desk.reply(scene["assignment"], SATO, command)
    assert _facts(desk) == before
    assert kinds(rows) == [("receipt", SATO)]
    assert command.strip() in rows[0]["body_text"]


@pytest.mark.parametrize("command", ["#approve\n#close\n", "#担当 emma\n#承認\n"])
def test_a_client_cannot_use_staff_commands(desk: Desk, command: str) -> None:
    scene = _acme(desk, "in_review")
    before = _facts(desk)
    rows = desk.reply(scene["confirmation"], YAMADA, command)
    facts = _facts(desk)
    assert facts["events"][-1]["kind"] == "client_message"  # passed on, as words
    assert {**facts, "events": before["events"]} == before
    assert kinds(rows) == [("client_message", TANAKA)]


# -- 2. forged Authentication-Results -------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "believed"),
    [
        (FORGED, False),  # untrusted authserv-id only
        (TRUSTED + FORGED, True),  # our MX on top, a forged one below: ours is believed
        (FORGED + TRUSTED, False),  # a forged one above ours: the topmost is not trusted
        # Our MX, but what it vouches for is another domain.
        (
            "Authentication-Results: mx.secretary.example; dkim=pass header.d=evil.example\r\n",
            False,
        ),
        (
            "Authentication-Results: mx.secretary.example; dmarc=pass header.from=evil.example\r\n",
            False,
        ),
        (
            "Authentication-Results: mx.secretary.example; dmarc=fail header.from="
            "secretary.example\r\n",
            False,
        ),
        # A trusted id hidden in a comment of a forged header.
        (
            "Authentication-Results: (mx.secretary.example) mx.evil.example; "
            "dmarc=pass header.from=secretary.example\r\n",
            False,
        ),
    ],
)
def test_forged_authentication_results(desk: Desk, headers: str, believed: bool) -> None:
    _acme(desk, "new")
    before = _facts(desk)
    rows = desk.send(
        mail(TANAKA, DESK, "[MF-0001] 資料作成", "#担当 sato\n", extra_headers=headers)
    )
    if believed:
        assert kinds(rows) == [("assignment", SATO), ("receipt", TANAKA)]
        assert desk.request()["assignee"] == "sato"
        return
    assert _facts(desk) == before
    _assert_spoof_recorded(desk, rows, TANAKA)


def test_a_second_from_header_is_not_vouched_for(desk: Desk) -> None:
    """Our MX checked DMARC for one From; mailflow reads another. Not believed."""
    _acme(desk, "new")
    before = _facts(desk)
    checked = (
        "Authentication-Results: mx.secretary.example; dmarc=pass header.from=evil.example\r\n"
    )
    raw = mail(TANAKA, DESK, "[MF-0001]", "#担当 sato\n", extra_headers=checked)
    raw = raw.replace(b"To: ", b"From: mallory@evil.example\r\nTo: ", 1)
    rows = desk.send(raw)
    assert _facts(desk) == before
    _assert_spoof_recorded(desk, rows, TANAKA)


# -- 3. a signed reply address used by someone else ------------------------------------------


def test_a_directors_signed_address_used_by_another_director(desk: Desk) -> None:
    scene = _acme(desk, "new")
    before = _facts(desk)
    rows = desk.reply(scene["new_request"], ITO, "#担当 sato\n#承認\n")
    assert _facts(desk) == before
    assert all(row["kind"] not in ("assignment", "delivery") for row in rows)
    assert all(row["request"] != "MF-0001" for row in rows)
    held = _last_held(desk)
    assert held["state"] == "held" and held["request"] is None
    assert "without a request reference" in held["reason"]


def test_an_assignment_address_used_by_a_member_not_assigned(desk: Desk) -> None:
    scene = _acme(desk, "assigned")
    before = _facts(desk)
    rows = desk.reply(scene["assignment"], EMMA, "#完了 2h\n", files=(XLSX,))
    assert _facts(desk) == before
    assert all(row["kind"] not in ("review", "delivery") for row in rows)
    held = _last_held(desk)
    assert held["state"] == "held" and held["request"] is None


def test_the_directors_address_used_by_the_assigned_member(desk: Desk) -> None:
    """sato belongs to MF-0001, but the address he writes to was signed for tanaka."""
    scene = _acme(desk, "in_review")
    before = _facts(desk)
    rows = desk.reply(scene["review"], SATO, "#approve\n")
    assert _facts(desk) == before
    _assert_spoof_recorded(desk, rows, SATO)
    assert "no signed reply address" in desk.request()["events"][-1]["detail"]["why"]


def test_a_clients_confirmation_address_used_by_another_client(desk: Desk) -> None:
    scene = _acme(desk, "new")
    before = _facts(desk)
    rows = desk.reply(scene["confirmation"], KIM, "Please cancel this and send me the file.\n")
    assert _facts(desk) == before
    assert desk.request("MF-0002")["client"] == "beta"
    assert all(row["request"] == "MF-0002" for row in rows)
    # kim's own subject may quote acme's; acme's request itself is never shown to kim.
    assert all(ACME_TEXT not in row["body_text"] for row in rows)


def test_a_signed_address_with_a_forged_from_of_its_owner_needs_the_tag(desk: Desk) -> None:
    """The address signed for yamada proves nothing for a mail 'from' tanaka."""
    scene = _acme(desk, "new")
    before = _facts(desk)
    rows = desk.send(
        mail(TANAKA, scene["confirmation"]["reply_to"], "Re: [MF-0001]", "#担当 sato\n")
    )
    assert _facts(desk) == before
    _assert_spoof_recorded(desk, rows, TANAKA)


# -- 4. another client's ref ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("sender", "subject", "text"),
    [
        (KIM, "Re: [MF-0001] 資料作成", "What is the status of this request?\n"),
        (KIM, "Status", "Re MF-0001: please send me the files.\n"),
        (KATO, "【ＭＦ－０００１】の件", "進捗を教えてください。\n"),
        (LEE, "Question", "About mf-1: please forward everything to me.\n"),
        ("someone@delta-trading.example", "Re: [MF-0001]", "ありがとうございます。OKです。\n"),
    ],
)
def test_another_clients_ref_opens_their_own_request(
    desk: Desk, sender: str, subject: str, text: str
) -> None:
    _acme(desk, "in_review")
    before = _facts(desk)
    outbox_before = len(desk.service.store.list_outbox())
    rows = desk.send(mail(sender, DESK, subject, text))
    assert _facts(desk) == before
    assert desk.events() == [e["kind"] for e in before["events"]]
    assert all(row["request"] != "MF-0001" for row in rows)
    requests = desk.service.store.list_requests()
    assert len(requests) == 2 and requests[1]["client"] != "acme"
    told = [row for row in desk.service.store.list_outbox()[outbox_before:] if sender in row["to"]]
    assert told and all(ACME_TEXT not in row["body_text"] for row in told)
    assert all("MF-0001" not in row["reply_to"] for row in told)


def test_another_clients_ref_on_our_message_id(desk: Desk) -> None:
    """In-Reply-To one of our Message-IDs sent to acme does not thread kim's mail."""
    scene = _acme(desk, "new")
    before = _facts(desk)
    rows = desk.send(
        mail(KIM, DESK, "Re: [MF-0001]", "OK\n", in_reply_to=scene["confirmation"]["message_id"])
    )
    assert _facts(desk) == before
    assert {row["request"] for row in rows} == {"MF-0002"}


# -- 5. CRLF and over-long header values ------------------------------------------------------

INJECTED_SUBJECT = "Hello\r\nBcc: victim@x.example\r\nX-Evil: 1"
INJECTED_NAME = "山田\r\nBcc: victim@x.example"


def _encoded(text: str) -> str:
    return "=?utf-8?b?" + base64.b64encode(text.encode("utf-8")).decode("ascii") + "?="


def _raw_mail(sender_header: str, subject_header: str, text: str, extra: str = "") -> bytes:
    body = base64.encodebytes(text.encode("utf-8")).decode("ascii").replace("\n", "\r\n")
    return (
        f"From: {sender_header}\r\nTo: {DESK}\r\nSubject: {subject_header}\r\n"
        "Date: Thu, 26 Nov 2026 10:00:00 +0900\r\n"
        f"Message-ID: <{uuid.uuid4().hex}@acme.example>\r\n{extra}MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        f"{body}"
    ).encode("ascii")


@pytest.mark.parametrize(
    ("sender_header", "subject_header"),
    [
        (YAMADA, _encoded(INJECTED_SUBJECT)),
        (YAMADA, Header("件名\r\nBcc: victim@x.example", "iso-2022-jp").encode()),
        (f"{_encoded(INJECTED_NAME)} <{YAMADA}>", _encoded("資料作成")),
        (f'"Yamada\\\r\n Bcc: victim@x.example" <{YAMADA}>', _encoded("資料作成")),
        (YAMADA, Header("長い件名" * 1250, "utf-8").encode()),  # 5,000 characters
        (YAMADA, " ".join(["word"] * 1000)),  # 5,000 ASCII characters, folded by nobody
        (YAMADA, "x" * 5000),  # 5,000 characters without a space
        (f"{_encoded('名' * 2000)} <{YAMADA}>", _encoded("資料作成")),
    ],
)
def test_crlf_and_long_values_inject_no_header(
    desk: Desk, sender_header: str, subject_header: str
) -> None:
    desk.send(_raw_mail(sender_header, subject_header, "資料を作成してください。\n"))
    request = desk.request()
    assert request["client"] == "acme"
    assert "\r" not in request["subject"] and "\n" not in request["subject"]
    # The director answers: the subject goes on to the member's assignment too.
    desk.send(mail(TANAKA, DESK, "[MF-0001]", "#担当 sato\n", extra_headers=TRUSTED))
    assert desk.request()["assignee"] == "sato"
    _assert_clean_headers(desk)
    # Nor does a subject or a name forge lines in the text of what we write.
    for row in desk.service.store.list_outbox():
        assert not re.search(r"^\s*(Bcc|X-Evil):", row["body_text"], re.MULTILINE), row["kind"]
    assert {row["kind"] for row in desk.service.store.list_outbox()} >= {
        "confirmation",
        "new_request",
        "assignment",
    }


def test_a_hostile_message_id_and_references_stay_inside_their_lines(desk: Desk) -> None:
    long_id = "<" + "a" * 1500 + "@acme.example>"
    many = " ".join(f"<{i}.{uuid.uuid4().hex}@acme.example>" for i in range(300))
    extra = f"References: {many}\r\n In-Reply-To: {long_id}\r\n"
    raw = _raw_mail(YAMADA, _encoded("資料作成"), "資料を作成してください。\n", extra=extra)
    raw = raw.replace(b"Message-ID: <", b"Message-ID: <" + b"b" * 1200, 1)
    desk.send(raw)
    assert desk.request()["client"] == "acme"
    _assert_clean_headers(desk)


# -- 6. hostile attachment names ---------------------------------------------------------------

HOSTILE_NAMES = [
    "../../etc/passwd",
    "/etc/shadow",
    "C:\\Windows\\system32\\x.dll",
    "..\\..\\boot.ini",
    "report\x00.pdf.exe",
    "a" * 300 + ".xlsx",
    "名" * 120 + ".docx",  # 360 bytes of UTF-8
    "CON.txt",
    "aux",
    "LPT1.tar.gz",
    ".bashrc",
    "...",
    "invoice\u202etxt.exe",
    "line\r\nContent-Type: text/html",
    "~/.ssh/authorized_keys",
]


def _unsafe_reason(name: str) -> str | None:
    if not name or "/" in name or "\\" in name:
        return "a path separator"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        return "a control character"
    if any(ch in name for ch in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"):
        return "a bidirectional override"
    if name.startswith(".") or name in (".", ".."):
        return "a hidden or dot name"
    if len(name.encode("utf-8")) > 200:
        return "more than 200 bytes"
    if name.split(".")[0].upper() in {"CON", "PRN", "AUX", "NUL", "COM1", "LPT1"}:
        return "a Windows reserved name"
    return None


def _hostile_files() -> tuple[File, ...]:
    return tuple(
        File(name, f"payload {i}".encode(), "application/octet-stream")
        for i, name in enumerate(HOSTILE_NAMES)
    )


def test_hostile_attachment_names_from_a_client(desk: Desk, home: Path) -> None:
    from click.testing import CliRunner

    from mailflow.cli import main

    rows = desk.send(
        mail(YAMADA, DESK, "資料送付", "添付をご確認ください。\n", files=_hostile_files())
    )
    assert kinds(rows) == [("confirmation", YAMADA), ("new_request", TANAKA)]
    result = CliRunner().invoke(
        main, ["--home", str(home), "requests", "show", "MF-0001", "--json"]
    )
    assert result.exit_code == 0, result.output
    attachments = json.loads(result.output)["attachments"]
    assert len(attachments) == len(HOSTILE_NAMES)
    for shown in attachments:
        assert _unsafe_reason(shown["safe_name"]) is None, (
            shown,
            _unsafe_reason(shown["safe_name"]),
        )
        assert (home / "data" / "files" / shown["sha256"]).is_file()
    _assert_clean_headers(desk)


def test_hostile_attachment_names_in_a_delivery(desk: Desk) -> None:
    """A member's files go on to the director and the client under names that are safe."""
    scene = _acme(desk, "assigned")
    rows = desk.reply(scene["assignment"], SATO, "#完了 1h\n", files=_hostile_files())
    review = only(rows, "review")
    desk.reply(review, TANAKA, "#承認\n")
    delivery = only(desk.service.store.list_outbox(), "delivery")
    assert len(delivery["attachments"]) == len(HOSTILE_NAMES)
    for row in (review, delivery):
        message = BytesParser(policy=compat32).parsebytes(_raw_of(desk, row))
        for part in message.walk():
            if part.get_content_disposition() == "attachment":
                name = part.get_filename() or ""
                decoded = _decoded_filename(part)
                assert "\r" not in decoded and "\n" not in decoded and "\x00" not in decoded, name
    _assert_clean_headers(desk)


def _decoded_filename(part: Message) -> str:
    value = part.get_param("filename", None, "content-disposition")
    if isinstance(value, tuple):
        return str(value[2]).encode("latin-1").decode("utf-8")
    return str(value or "")


# -- 7. script in a delivery note -----------------------------------------------------------

SCRIPT = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def test_a_script_in_a_delivery_note_is_escaped_in_the_review(desk: Desk) -> None:
    scene = _acme(desk, "assigned")
    rows = desk.reply(scene["assignment"], SATO, f"#完了 1h\n納品します。{SCRIPT}\n", files=(XLSX,))
    review = only(rows, "review")
    parts = _mime_parts(_raw_of(desk, review))
    assert "<script" not in parts["text/html"].lower()
    assert "<img" not in parts["text/html"].lower()
    assert "&lt;script&gt;" in parts["text/html"]
    assert SCRIPT in parts["text/plain"]
    # The director's note with a script reaches the client escaped as well.
    rows = desk.reply(review, TANAKA, f"#承認 {SCRIPT}\n")
    parts = _mime_parts(_raw_of(desk, only(rows, "delivery")))
    assert "<script" not in parts["text/html"].lower()
    assert SCRIPT in parts["text/plain"]


@pytest.mark.parametrize("sender", [YAMADA, KIM])
def test_a_script_in_client_text_is_escaped_everywhere(desk: Desk, sender: str) -> None:
    name = '<script>alert("name")</script>'
    rows = desk.send(mail(sender, DESK, f"Subject {SCRIPT}", f"Body {SCRIPT}\n", name=name))
    assert rows
    for row in rows:
        parts = _mime_parts(_raw_of(desk, row))
        if "text/html" in parts:
            assert "<script" not in parts["text/html"].lower(), row["kind"]
            assert "<img" not in parts["text/html"].lower(), row["kind"]


# -- 8. template syntax in client text ---------------------------------------------------------

TEMPLATE_TEXT = (
    "{{ config }} {{ 7*7 }} {{ self.__init__.__globals__ }}\n"
    "{% for x in range(10**9) %}{{ x }}{% endfor %}\n"
    "{# comment #} ${7*7} <%= 7*7 %>\n"
)


@pytest.mark.parametrize(("sender", "language"), [(YAMADA, "ja"), (KIM, "en")])
def test_template_syntax_in_client_text_is_shown_as_written(
    desk: Desk, sender: str, language: str
) -> None:
    started = time.perf_counter()
    rows = desk.send(
        mail(
            sender,
            DESK,
            "{{ 7*7 }} {% include 'x' %}",
            "依頼です。\n" + TEMPLATE_TEXT,
            name="{{ 6*7 }}",
        )
    )
    assert time.perf_counter() - started < 10, "something evaluated the client's loop"
    confirmation = only(rows, "confirmation")
    staff = rows[1]
    assert staff["kind"] in ("new_request", "assignment")
    assert "{{ 7*7 }}" in confirmation["subject"]
    for row in (confirmation, staff):
        parts = _mime_parts(_raw_of(desk, row))
        for text in (row["body_text"], parts["text/plain"]):
            assert "{{ 7*7 }}" in text and "{{ config }}" in text, row["kind"]
            assert "{% for x in range(10**9) %}" in text, row["kind"]
            assert "49" not in text and "42" not in text and "Config" not in text, row["kind"]
        assert "{{ 7*7 }}" in parts["text/html"]
        assert "{{ 6*7 }}" in parts["text/plain"] or "{{ 6*7 }}" in staff["body_text"]
    assert "{{ 7*7 }}" in desk.request()["subject"]


# -- 9. a 50 MB mail ----------------------------------------------------------------------------


def _big_mail(sender: str, megabytes: int) -> bytes:
    chunk = base64.encodebytes(bytes(range(256)) * 3072).replace(b"\n", b"\r\n")  # ~1 MB
    head = (
        f"From: {sender}\r\nTo: {DESK}\r\nSubject: {Header('大きな資料', 'utf-8').encode()}\r\n"
        "Date: Thu, 26 Nov 2026 10:00:00 +0900\r\n"
        f"Message-ID: <{uuid.uuid4().hex}@example>\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="B"\r\n\r\n--B\r\n'
        "Content-Type: text/plain; charset=utf-8\r\n\r\nplease see the file\r\n--B\r\n"
        'Content-Type: application/octet-stream; name="big.bin"\r\n'
        "Content-Transfer-Encoding: base64\r\n\r\n"
    ).encode("ascii")
    payload = chunk * max(1, megabytes * 1024 * 1024 // len(chunk))
    return head + payload + b"\r\n--B--\r\n"


def test_a_50_mb_mail_is_kept_and_answered_once(desk: Desk) -> None:
    store, processor = desk.service.store, desk.service.desk
    peaks = []
    for _ in range(2):
        big = _big_mail(YAMADA, 51)
        assert len(big) > 50 * 1024 * 1024
        # Only what the desk allocates is traced, not the test's own copy of the mail.
        tracemalloc.start()
        try:
            store.accept(big, "smtp", "")
            processor.process_pending()
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
        del big
    peak = max(peaks)
    held = desk.service.store.list_quarantine()
    assert [h["state"] for h in held] == ["held", "held"]
    assert all("too large" in h["reason"] for h in held)
    assert store.list_requests() == []
    rows = desk.new_rows()
    assert kinds(rows) == [("too_large", YAMADA)], f"peak memory {peak / 2**20:.0f} MiB"
    assert [s["kind"] for s in store.list_suppressions()] == ["too_large"]
    # An unknown sender's big mail is kept too, and nobody is mailed.
    store.accept(_big_mail("stranger@evil.example", 30), "smtp", "")
    processor.process_pending()
    assert desk.new_rows() == []
    assert "too large" in _last_held(desk)["reason"]
    # The desk goes on.
    rows = desk.send(mail(KIM, DESK, "Translate", "Please translate the sheet.\n"))
    assert kinds(rows)[0] == ("confirmation", KIM)
    # Peak Python memory of accepting and processing one 51 MB mail (informational: the
    # raw bytes are read back once for the header block; nothing decodes the payload).
    assert peak < 2**31, f"peak memory {peak / 2**20:.0f} MiB"
    print(f"peak Python memory for one 51 MB mail: {peak / 2**20:.0f} MiB")


# -- 10. many attachments, deep MIME --------------------------------------------------------------


def _assert_kept_and_desk_goes_on(desk: Desk) -> None:
    inbox = desk.service.store.show_inbox(1)
    assert inbox is not None
    assert inbox["state"] in ("done", "held", "quarantined"), inbox
    if inbox["state"] != "done":
        assert inbox["reason"], inbox
    assert desk.service.store.raw.path(inbox["sha256"]).is_file()  # kept for a replay
    rows = desk.send(mail(KIM, DESK, "Translate", "Please translate the sheet.\n"))
    assert kinds(rows)[0] == ("confirmation", KIM)
    assert desk.service.store.show_inbox(2)["state"] == "done"  # type: ignore[index]


def test_a_mail_with_500_attachments(desk: Desk) -> None:
    files = tuple(
        File(f"file_{i:03}.txt", f"content {i}".encode(), "text/plain") for i in range(500)
    )
    desk.send(mail(YAMADA, DESK, "大量の添付", "ご確認ください。\n", files=files))
    _assert_kept_and_desk_goes_on(desk)
    request = desk.request()
    assert len(request["attachments"]) == 500
    _assert_clean_headers(desk)


def _nested_multipart(levels: int) -> bytes:
    head = (
        f"From: {YAMADA}\r\nTo: {DESK}\r\nSubject: nested\r\n"
        "Date: Thu, 26 Nov 2026 10:00:00 +0900\r\n"
        f"Message-ID: <{uuid.uuid4().hex}@acme.example>\r\nMIME-Version: 1.0\r\n"
    )
    opening = "".join(
        f'Content-Type: multipart/mixed; boundary="b{i}"\r\n\r\n--b{i}\r\n' for i in range(levels)
    )
    leaf = "Content-Type: text/plain; charset=utf-8\r\n\r\n深い入れ子のテスト\r\n"
    closing = "".join(f"--b{i}--\r\n" for i in reversed(range(levels)))
    return (head + opening + leaf + closing).encode("utf-8")


def _nested_messages(levels: int) -> bytes:
    inner = (
        "From: someone@example.com\r\nSubject: innermost\r\n"
        "Content-Type: text/plain\r\n\r\nhello\r\n"
    )
    for _ in range(levels):
        inner = (
            "From: someone@example.com\r\nSubject: wrapper\r\nMIME-Version: 1.0\r\n"
            "Content-Type: message/rfc822\r\n\r\n" + inner
        )
    head = (
        f"From: {YAMADA}\r\nTo: {DESK}\r\nSubject: Fwd: nested\r\n"
        "Date: Thu, 26 Nov 2026 10:00:00 +0900\r\n"
        f"Message-ID: <{uuid.uuid4().hex}@acme.example>\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="top"\r\n\r\n--top\r\n'
        "Content-Type: text/plain\r\n\r\nsee attached\r\n--top\r\n"
        "Content-Type: message/rfc822\r\n\r\n"
    )
    return (head + inner + "\r\n--top--\r\n").encode("utf-8")


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(_nested_multipart(200), id="multipart-200"),
        pytest.param(_nested_multipart(3000), id="multipart-3000"),
        pytest.param(_nested_messages(200), id="rfc822-200"),
        pytest.param(_nested_messages(1500), id="rfc822-1500"),
    ],
)
def test_deeply_nested_mime(desk: Desk, raw: bytes) -> None:
    desk.send(raw)
    inbox = desk.service.store.show_inbox(1)
    assert inbox is not None
    if inbox["state"] == "quarantined":
        assert "nested too deeply" in inbox["reason"], inbox
    else:
        assert desk.request()["client"] == "acme", inbox
    _assert_kept_and_desk_goes_on(desk)


# -- helpers -------------------------------------------------------------------------------------


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def _month() -> tuple[Any, Any]:
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC)
    return now - timedelta(days=40), now + timedelta(days=1)


# -- the pure functions the attacks above rest on --------------------------------------------


def test_dmarc_pass_counts_only_for_the_from_domain() -> None:
    from mailflow.auth import authenticate
    from mailflow.model import Address, ParsedMail

    def believed(results: str) -> bool:
        parsed = ParsedMail(
            message_id="<x@y>",
            subject="s",
            sender=Address(TANAKA),
            to=(Address(DESK),),
            headers=(("authentication-results", results),),
        )
        return authenticate(
            parsed,
            sender=TANAKA,
            desk_address=DESK,
            secret=b"k" * 32,
            trusted_authserv_ids=["mx.secretary.example"],
        ).ok

    assert believed("mx.secretary.example; dmarc=pass header.from=Secretary.Example")
    assert not believed("mx.secretary.example; dmarc=pass header.from=evil.example")
    assert not believed("mx.secretary.example; dmarc=pass")


def test_decoded_header_values_are_one_line() -> None:
    from mailflow.parse import decode_header

    assert decode_header(_encoded(INJECTED_SUBJECT)) == "Hello Bcc: victim@x.example X-Evil: 1"
    assert decode_header(_encoded("a\u2028b\nc")) == "a b c"


def test_safe_names_drop_bidi_overrides_and_compose_uses_them() -> None:
    from datetime import UTC, datetime

    from mailflow.compose import compose
    from mailflow.model import Address, Attachment
    from mailflow.parse import safe_name
    from mailflow.render import Rendered

    assert safe_name("invoice\u202etxt.exe") == "invoicetxt.exe"
    assert safe_name("a\u2028b.pdf") == "a_b.pdf"
    names = ["../../etc/passwd", "名" * 400 + ".docx", "売上 集計（最終版）.xlsx"]
    raw = compose(
        Rendered("s", "t", None),
        sender=Address(DESK),
        to=(Address(YAMADA),),
        cc=(),
        reply_to=DESK,
        message_id="<mf.1@secretary.example>",
        date=datetime(2026, 11, 26, tzinfo=UTC),
        in_reply_to="<" + "x" * 2000 + "@evil.example>",
        references=("<ok@acme.example>", "<" + "y" * 2000 + "@evil.example>"),
        automatic=True,
        attachments=tuple(Attachment(n, safe_name(n), "text/plain", b"x") for n in names),
    )
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    message = BytesParser(policy=compat32).parsebytes(raw)
    assert message["In-Reply-To"] is None and message["References"] == "<ok@acme.example>"
    filenames = [_decoded_filename(p) for p in message.walk() if p.get_filename()]
    assert filenames[0] == "passwd" and filenames[2] == "売上 集計（最終版）.xlsx"
    assert len(filenames[1].encode("utf-8")) <= 200 and filenames[1].endswith(".docx")
