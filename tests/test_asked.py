"""What the client asked for: deadlines, #due arguments, delivery formats and hours."""

from __future__ import annotations

import ast
import random
import unicodedata
from datetime import UTC, date, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from mailflow import asked
from mailflow.asked import (
    Deadline,
    default_due,
    read_deadline,
    read_due_argument,
    read_format,
    read_hours,
)
from mailflow.calendar_jp import BusinessCalendar
from mailflow.rules import load_rules
from mailflow.skills import nfkc

TOKYO = ZoneInfo("Asia/Tokyo")
CALENDAR = BusinessCalendar()
# The reference moment of FIELD-NOTES: Thursday 2026-11-26 10:00 JST.
THURSDAY = datetime(2026, 11, 26, 10, 0, tzinfo=TOKYO)
ROOT = Path(__file__).resolve().parents[1]


def _deadline(
    text: str, sent: datetime = THURSDAY, subject: str = "", end_of_day: time = time(18, 0)
) -> Deadline | None:
    return read_deadline(text, sent, TOKYO, CALENDAR, subject=subject, end_of_day=end_of_day)


def _due(text: str, sent: datetime = THURSDAY) -> str | None:
    """The due moment as "YYYY-MM-DD" (end of day) or "YYYY-MM-DD HH:MM"."""
    found = _deadline(text, sent)
    if found is None:
        return None
    assert found.due.tzinfo is not None
    assert found.due.utcoffset() == THURSDAY.utcoffset()
    if found.end_of_day:
        assert found.due.time() == time(18, 0)
        return found.due.date().isoformat()
    return found.due.strftime("%Y-%m-%d %H:%M")


# -- reference values ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3営業日以内にお願いします", "2026-12-01"),
        ("来週金曜までにお願いします", "2026-12-04"),
        ("明日中にいただけますか", "2026-11-27"),
        ("今月末までにお願いします", "2026-11-30"),
        ("12月3日までにお願いします", "2026-12-03"),
        ("Could you send it by Friday?", "2026-11-27"),
        ("Dec 3 would be great.", "2026-12-03"),
        # The last business day before the New Year closure (12/29–1/3).
        ("年内にお願いできれば助かります", "2026-12-28"),
    ],
)
def test_reference_values(text: str, expected: str) -> None:
    assert _due(text) == expected


# -- every form, Japanese --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected", "kind"),
    [
        ("12月3日", "2026-12-03", "date"),
        ("12月3日(木)までに", "2026-12-03", "date"),
        ("12/3までに", "2026-12-03", "date"),
        ("12/3(木)", "2026-12-03", "date"),
        ("12/3(木)17時まで", "2026-12-03 17:00", "date"),
        ("2026年12月10日", "2026-12-10", "date"),
        ("2026-12-03", "2026-12-03", "date"),
        ("2026/12/03納品", "2026-12-03", "date"),
        ("12月3日17時", "2026-12-03 17:00", "date"),
        ("12月3日 午後3時半まで", "2026-12-03 15:30", "date"),
        ("12月3日の午前中まで", "2026-12-03 12:00", "date"),
        ("17:00までに", "2026-11-26 17:00", "time"),
        ("15時までにお願いします", "2026-11-26 15:00", "time"),
        ("明日", "2026-11-27", "relative"),
        ("明日中", "2026-11-27", "relative"),
        ("明日15時まで", "2026-11-27 15:00", "relative"),
        ("明後日までに", "2026-11-28", "relative"),
        ("本日中にお願いします", "2026-11-26", "relative"),
        ("今日中", "2026-11-26", "relative"),
        ("本日17時まで", "2026-11-26 17:00", "relative"),
        ("今週中", "2026-11-27", "end_of_week"),
        ("来週中に", "2026-12-04", "end_of_week"),
        ("今週金曜", "2026-11-27", "weekday"),
        ("来週金曜", "2026-12-04", "weekday"),
        ("来週の金曜日までに", "2026-12-04", "weekday"),
        ("来週月曜まで", "2026-11-30", "weekday"),
        ("再来週の月曜", "2026-12-07", "weekday"),
        ("金曜日までに", "2026-11-27", "weekday"),
        ("今月中", "2026-11-30", "end_of_month"),
        ("今月末", "2026-11-30", "end_of_month"),
        # 12/29–12/31 are closed: next month's end is its last business day.
        ("来月末", "2026-12-28", "end_of_month"),
        ("月末までに", "2026-11-30", "end_of_month"),
        ("3営業日以内", "2026-12-01", "business_days"),
        ("3営業日で", "2026-12-01", "business_days"),
        ("5営業日後", "2026-12-03", "business_days"),
        ("3日以内", "2026-11-29", "days"),
        ("2週間以内", "2026-12-10", "days"),
        ("3時間以内", "2026-11-26 13:00", "hours"),
        ("年内", "2026-12-28", "end_of_year"),
        ("年末まで", "2026-12-28", "end_of_year"),
        ("年度内", "2027-03-31", "end_of_fiscal_year"),
        ("5日まで", "2026-12-05", "date"),
        ("納期:12/4", "2026-12-04", "date"),
        ("期限は12/4です", "2026-12-04", "date"),
        ("締切:12月4日", "2026-12-04", "date"),
    ],
)
def test_japanese_forms(text: str, expected: str, kind: str) -> None:
    found = _deadline(text)
    assert found is not None, text
    assert _due(text) == expected
    assert found.kind == kind


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("１２月３日までに", "2026-12-03"),
        ("１２／３（木）", "2026-12-03"),
        ("納期：１２／３（木）１７：００", "2026-12-03 17:00"),
        ("３営業日以内", "2026-12-01"),
        ("２０２６年１２月１０日", "2026-12-10"),
    ],
)
def test_full_width_digits(text: str, expected: str) -> None:
    assert _due(text) == expected


# -- every form, English ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected", "kind"),
    [
        ("by Friday", "2026-11-27", "weekday"),
        ("by Fri", "2026-11-27", "weekday"),
        ("by Fri.", "2026-11-27", "weekday"),
        ("by next Monday", "2026-11-30", "weekday"),
        ("by this Friday", "2026-11-27", "weekday"),
        ("by Monday 3pm", "2026-11-30 15:00", "weekday"),
        ("by Dec 3", "2026-12-03", "date"),
        ("by Dec. 3", "2026-12-03", "date"),
        ("by December 3rd", "2026-12-03", "date"),
        ("by the 3rd of December", "2026-12-03", "date"),
        ("by 3 Dec 2026", "2026-12-03", "date"),
        ("Dec 3 at 5pm", "2026-12-03 17:00", "date"),
        ("by 12/3", "2026-12-03", "date"),
        ("due 12/3 3pm", "2026-12-03 15:00", "date"),
        ("Deadline: 2026-12-03", "2026-12-03", "date"),
        ("by tomorrow", "2026-11-27", "relative"),
        ("tomorrow EOD", "2026-11-27", "relative"),
        ("EOD tomorrow", "2026-11-27", "relative"),
        ("by end of day", "2026-11-26", "relative"),
        ("EOD please", "2026-11-26", "relative"),
        ("by close of business today", "2026-11-26", "relative"),
        ("by today", "2026-11-26", "relative"),
        ("by 5pm", "2026-11-26 17:00", "time"),
        ("by end of the month", "2026-11-30", "end_of_month"),
        ("by the end of next month", "2026-12-28", "end_of_month"),
        ("by the end of the week", "2026-11-27", "end_of_week"),
        ("by the end of next week", "2026-12-04", "end_of_week"),
        ("within 3 business days", "2026-12-01", "business_days"),
        ("in 3 working days", "2026-12-01", "business_days"),
        ("within 3 days", "2026-11-29", "days"),
        ("within 2 weeks", "2026-12-10", "days"),
        ("within 4 hours", "2026-11-26 14:00", "hours"),
        ("by the end of the year", "2026-12-28", "end_of_year"),
    ],
)
def test_english_forms(text: str, expected: str, kind: str) -> None:
    found = _deadline(text)
    assert found is not None, text
    assert _due(text) == expected
    assert found.kind == kind


# -- what is not a deadline ------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "至急お願いします",
        "大至急で対応をお願いします",
        "ASAP please",
        "as soon as possible",
        "電話番号は03-1234-5678です",
        "TEL: 03-1234-5678 (平日10時〜18時)",
        "バージョン1.2.3にアップデートしてください",
        "Version 2.1.3 is out",
        "1/2 price for the second item",
        "3/4 of the list is done",
        "1/2 のサイズで作ってください",
        "3社に見積もりを依頼してください",
        "100個、3件、5名分",
        "2時間ほどかかります",
        "10時から会議です",
        "12/3",  # a bare slash could be a fraction
        "12月3日の会議の議事録をお願いします",
        "金曜の会議の資料です",
        "毎週月曜に送ってください",
        "毎月末の請求書処理",
        "年末年始はお休みです",
        "本日はありがとうございます",
        "the meeting on Monday went well",
        "先月10日の件です",
    ],
)
def test_not_a_deadline(text: str) -> None:
    assert _deadline(text) is None


def test_a_cutoff_word_is_not_a_deadline_word() -> None:
    # 締め alone is an accounting cutoff: the date stays a plain one, without the word.
    found = _deadline("今月末締めの請求書を整理してください")
    assert found is not None and found.phrase == "今月末"


# -- choosing among several dates -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # A date followed by の and a noun does not beat one with まで.
        ("12月3日の会議の議事録を12月5日までにお願いします", "2026-12-05"),
        ("12月3日（木）の会議の件、11月30日（月）までにご返信ください", "2026-11-30"),
        ("明日の打ち合わせ用の資料を、12月1日締切でお願いします", "2026-12-01"),
        ("12/1から12/3まで", "2026-12-03"),
        ("12月3日から12月5日まで", "2026-12-05"),
        ("明日は休みです。来週火曜日までにお願いします", "2026-12-01"),
        # No deadline word anywhere: the first date in the future.
        ("候補日は11月20日か12月2日です", "2026-12-02"),
        # A deadline word on a past date loses to a future date (the client moved on).
        ("11月20日締切でしたが、12月3日に出します", "2026-12-03"),
        # 12/3 の打ち合わせまでに: the まで belongs to the meeting on that day.
        ("12/3の打ち合わせまでに資料をお願いします", "2026-12-03"),
    ],
)
def test_the_deadline_word_wins(text: str, expected: str) -> None:
    assert _due(text) == expected


def test_phrase_and_kind() -> None:
    found = _deadline("お手数ですが、12月3日(木)までにお願いいたします。")
    assert found == Deadline(
        due=datetime(2026, 12, 3, 18, 0, tzinfo=TOKYO),
        phrase="12月3日(木)までに",
        kind="date",
        end_of_day=True,
    )
    english = _deadline("Please send it by Friday.")
    assert english is not None and english.phrase == "by Friday"


def test_subject_is_read_too() -> None:
    found = _deadline("よろしくお願いします。", subject="【12/3締切】資料作成のお願い")
    assert found is not None and found.due.date() == date(2026, 12, 3)


# -- the year rule and the clock ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "text", "expected"),
    [
        # A few days past is still this year (the client is late, not a year early).
        (datetime(2026, 12, 10, 9, 0, tzinfo=TOKYO), "12/3までに", "2026-12-03"),
        # More than 60 days past rolls to next year.
        (datetime(2026, 12, 10, 9, 0, tzinfo=TOKYO), "1/5までに", "2027-01-05"),
        (datetime(2026, 12, 10, 9, 0, tzinfo=TOKYO), "Jan 5", "2027-01-05"),
        # Early January: a December date is last year's.
        (datetime(2027, 1, 5, 9, 0, tzinfo=TOKYO), "12/28までに", "2026-12-28"),
        # An explicit year is kept.
        (datetime(2026, 12, 10, 9, 0, tzinfo=TOKYO), "2027年1月5日", "2027-01-05"),
        # "5日まで" after the 5th means next month's.
        (datetime(2026, 11, 26, 9, 0, tzinfo=TOKYO), "5日まで", "2026-12-05"),
        # 年内 across the closure, 3営業日 across it.
        (datetime(2026, 12, 25, 9, 0, tzinfo=TOKYO), "3営業日以内", "2027-01-05"),
        # 月末 after this month's last business day means next month's.
        (datetime(2026, 11, 30, 19, 0, tzinfo=TOKYO), "月末まで", "2026-11-30"),
        (datetime(2026, 12, 29, 9, 0, tzinfo=TOKYO), "月末まで", "2027-01-29"),
        # 今週中 on a Saturday: the next business day, not a past Friday.
        (datetime(2026, 11, 28, 9, 0, tzinfo=TOKYO), "今週中", "2026-11-30"),
        # by Friday written on a Friday is that day.
        (datetime(2026, 11, 27, 9, 0, tzinfo=TOKYO), "by Friday", "2026-11-27"),
        # A time already past today means that time on the next business day.
        (datetime(2026, 11, 26, 19, 0, tzinfo=TOKYO), "17:00まで", "2026-11-27 17:00"),
        (datetime(2026, 11, 27, 19, 0, tzinfo=TOKYO), "17時まで", "2026-11-30 17:00"),
    ],
)
def test_relative_to_the_date_sent(sent: datetime, text: str, expected: str) -> None:
    assert _due(text, sent) == expected


def test_sent_is_read_in_the_desk_time_zone() -> None:
    # 16:00 UTC on the 26th is 01:00 on the 27th in Tokyo: 明日 is the 28th.
    sent = datetime(2026, 11, 26, 16, 0, tzinfo=UTC)
    found = _deadline("明日までに", sent)
    assert found is not None
    assert found.due == datetime(2026, 11, 28, 18, 0, tzinfo=TOKYO)


def test_a_naive_date_is_desk_local() -> None:
    found = _deadline("明日までに", datetime(2026, 11, 26, 23, 0))
    assert found is not None and found.due == datetime(2026, 11, 27, 18, 0, tzinfo=TOKYO)


def test_end_of_day_is_a_parameter() -> None:
    found = _deadline("12月3日まで", end_of_day=time(17, 30))
    assert found is not None and found.due == datetime(2026, 12, 3, 17, 30, tzinfo=TOKYO)


# -- #due arguments ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argument", "expected"),
    [
        ("2026-12-03", datetime(2026, 12, 3, 18, 0)),
        ("12/3", datetime(2026, 12, 3, 18, 0)),
        ("１２／３", datetime(2026, 12, 3, 18, 0)),
        ("12/3 15:00", datetime(2026, 12, 3, 15, 0)),
        ("12/3(木) 15時", datetime(2026, 12, 3, 15, 0)),
        ("12月3日", datetime(2026, 12, 3, 18, 0)),
        ("明日", datetime(2026, 11, 27, 18, 0)),
        ("明日 10:00", datetime(2026, 11, 27, 10, 0)),
        ("来週金曜", datetime(2026, 12, 4, 18, 0)),
        ("来週金曜まで", datetime(2026, 12, 4, 18, 0)),
        ("3営業日", datetime(2026, 12, 1, 18, 0)),
        ("今月末", datetime(2026, 11, 30, 18, 0)),
        ("Friday", datetime(2026, 11, 27, 18, 0)),
        ("by Friday", datetime(2026, 11, 27, 18, 0)),
        ("Dec 3", datetime(2026, 12, 3, 18, 0)),
        ("tomorrow 3pm", datetime(2026, 11, 27, 15, 0)),
        ("today", datetime(2026, 11, 26, 18, 0)),
        ("17:00", datetime(2026, 11, 26, 17, 0)),
        ("  12/3  ", datetime(2026, 12, 3, 18, 0)),
        # Anything left over is refused rather than guessed.
        ("12/3 or 12/4", None),
        ("12/3 foo", None),
        ("いつでも", None),
        ("", None),
        ("13/45", None),
        ("2月30日", None),
    ],
)
def test_read_due_argument(argument: str, expected: datetime | None) -> None:
    found = read_due_argument(argument, THURSDAY, TOKYO, CALENDAR)
    assert found == (expected.replace(tzinfo=TOKYO) if expected else None)


def test_default_due() -> None:
    assert default_due(THURSDAY, TOKYO, CALENDAR, 3) == datetime(2026, 12, 1, 18, 0, tzinfo=TOKYO)
    late = datetime(2026, 12, 25, 12, 0, tzinfo=TOKYO)
    assert default_due(late, TOKYO, CALENDAR, 3, time(17, 0)) == datetime(
        2027, 1, 5, 17, 0, tzinfo=TOKYO
    )
    utc = datetime(2026, 11, 26, 16, 0, tzinfo=UTC)  # Friday 01:00 in Tokyo
    assert default_due(utc, TOKYO, CALENDAR, 1) == datetime(2026, 11, 30, 18, 0, tzinfo=TOKYO)


# -- delivery format ---------------------------------------------------------------------------


FORMATS = load_rules(ROOT / "rules.yaml").formats


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Excelでお願いします", "excel"),
        ("エクセル形式で納品してください", "excel"),
        ("format: xlsx", "excel"),
        ("Wordで納品をお願いします", "word"),
        ("ワードでください", "word"),
        ("Please deliver in Word format", "word"),
        ("PDFでお願いします", "pdf"),
        ("ＰＤＦ形式でお送りください", "pdf"),
        ("Please send it as a PDF", "pdf"),
        ("PowerPointで資料を", "powerpoint"),
        ("パワポでまとめてください", "powerpoint"),
        ("Google スプレッドシートで共有してください", "google_sheets"),
        ("Googleスプレッドシートでお願いします", "google_sheets"),
        ("スプレッドシートにまとめて", "google_sheets"),
        ("Google Docs please", "google_docs"),
        ("CSVでください", "csv"),
        # The mention with a format word wins over an earlier bare one.
        ("参考資料はPDFですが、Excelで納品してください", "excel"),
        ("Attached the PDF; please return it in Excel format", "excel"),
        # No format asked for.
        ("パスワードを送ります", None),
        ("キーワードを調査してください", None),
        ("I excel at this", None),
        ("a word count of 500", None),
        ("report.pdf を添付します", None),
        ("よろしくお願いします", None),
    ],
)
def test_read_format(text: str, expected: str | None) -> None:
    assert read_format(text, FORMATS) == expected


def test_read_format_with_an_empty_table() -> None:
    assert read_format("Excelでお願いします", {}) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # IGNORECASE twins of i, s and k must not hide a keyword from the quick check.
        ("POWERPOİNTでお願いします", "powerpoint"),
        ("PowerPoınt でお願いします", "powerpoint"),
        ("Google  Sheets形式で", "google_sheets"),
    ],
)
def test_read_format_finds_case_twins(text: str, expected: str) -> None:
    assert read_format(text, FORMATS) == expected


# -- the quick checks that let a text skip a regex scan -----------------------------------------

# Pieces of deadline phrases, glued at random: each form must match many of the results.
_PHRASE_PARTS = [
    "12", "3", "2026", "/", "-", ".", ":", " ", "年", "月", "日", "時", "分", "半", "間", "以内",
    "後", "営業日", "週間", "まで", "迄", "締", "必着", "今週", "来週", "再来週", "中", "末",
    "いっぱい", "今月", "来月", "再来月", "本日", "今日", "明日", "明後日", "あした", "あさって",
    "じゅう", "曜", "金", "水", "午前", "午後", "正午", "午前中", "年内", "今年", "年末", "年度",
    "今", "頭", "初め", "の", "(", ")", "木", "祝", "12/3", "2026-12-03", "12/3/2026",
    "2026年12月3日", "3営業日", "24時間以内", "3日以内", "5日まで", "Dec 3", "3rd of December",
    "within", "in", "business", "working", "days", "week", "hours", "by", "EOD", "cob", "end", "of",
    "the", "close", "today", "Tomorrow", "tonight", "after", "this", "next", "coming",
    "Friday", "Mon", "tues", "Sat", "month", "year", "month-end", "year end", "beginning",
    "noon", "am", "P.M.", "5pm", "sept", "İ", "ı", "ſ", "\u212a", "WİTHİN", "TODAY",
]  # fmt: skip


def test_every_form_hint_is_in_every_text_the_form_matches() -> None:
    rng = random.Random(26)
    matched: set[int] = set()
    for _ in range(40000):
        parts = (rng.choice(_PHRASE_PARTS) for _ in range(rng.randrange(1, 8)))
        text = nfkc(" ".join(parts) if rng.random() < 0.3 else "".join(parts))
        caseless = asked._caseless(text)
        for index, form in enumerate(asked._FORMS):
            if form.pattern.search(text):
                matched.add(index)
                assert any(word in caseless for word in form.hint), (form.hint, text)
    assert matched == set(range(len(asked._FORMS)))  # the parts exercise every form


def test_format_keyword_pieces_are_in_every_text_it_matches() -> None:
    texts = ["EXCEL", "ｅｘｃｅｌ", "Google\tSheets", "googlesheets", "ＰＤＦ", "PowerPoınt"]
    for keyword in (word for words in FORMATS.values() for word in words):
        pieces = asked._pieces(keyword)
        for text in (nfkc(t) for t in texts):
            if asked._keyword_pattern(keyword).search(text):
                assert all(piece in asked._caseless(text) for piece in pieces), (keyword, text)


# -- hours -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2h", 2.0),
        ("1.5h", 1.5),
        ("90m", 1.5),
        ("90min", 1.5),
        ("45 minutes", 0.75),
        ("2 hours", 2.0),
        ("1h30m", 1.5),
        ("2時間", 2.0),
        ("1時間30分", 1.5),
        ("1時間半", 1.5),
        ("30分", 0.5),
        ("1.5時間", 1.5),
        ("２ｈ", 2.0),
        ("１．５時間", 1.5),
        ("2", 2.0),
        ("1.5h 修正込み", 1.5),
        ("abc", None),
        ("2件", None),
        ("-1h", None),
        ("", None),
    ],
)
def test_read_hours(text: str, expected: float | None) -> None:
    assert read_hours(text) == expected


# -- purity -------------------------------------------------------------------------------------


@pytest.mark.parametrize("module", ["asked.py", "calendar_jp.py"])
def test_module_is_pure(module: str) -> None:
    tree = ast.parse((ROOT / "mailflow" / module).read_text(encoding="utf-8"))
    names = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    names |= {
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    }
    forbidden = {"peewee", "socket", "smtplib", "imapclient", "aiosmtpd", "mailflow.store"}
    assert not {name.split(".")[0] for name in names} & forbidden
    assert "mailflow.store" not in names


def test_nfkc_never_joins_across_a_line_break() -> None:
    """A subject and a text are normalised apart and joined by "\\n" (_subject_and_text):
    no character composes, decomposes or reorders across a line break."""
    for code in range(0x110000):
        if 0xD800 <= code < 0xE000:
            continue  # surrogates are no text
        char = chr(code)
        alone = unicodedata.normalize("NFKC", char)
        assert unicodedata.normalize("NFKC", char + "\n" + char) == alone + "\n" + alone, hex(code)
    # Sequences that compose or reorder within a line: Hangul jamo, marks, half-width kana.
    pieces = ["\u1100", "\u1161", "\u11a8", "e", "\u0301", "\u0323", "ｶ", "ﾞ", "か", "\u3099", "①"]
    rng = random.Random(15)
    for _ in range(5000):
        subject = "".join(rng.choice(pieces) for _ in range(rng.randrange(0, 5)))
        text = "".join(rng.choice(pieces) for _ in range(rng.randrange(0, 5)))
        joined = unicodedata.normalize("NFKC", subject + "\n" + text)
        assert asked._subject_and_text(subject, text) == joined
