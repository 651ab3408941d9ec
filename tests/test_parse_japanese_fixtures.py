"""Issue 3 §1–3 on Japanese fixtures written for them (tests/mail/ja_*.eml).

Each fixture holds one real-world habit: split encoded words, RFC 2231 names, raw 8-bit
headers, mislabelled charsets, Outlook/Gmail/Thunderbird/iPhone quoting, signature rules.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mailflow.model import ParsedMail
from mailflow.parse import parse_mail

MAIL = Path(__file__).resolve().parent / "mail"


def _parse(name: str) -> ParsedMail:
    return parse_mail((MAIL / name).read_bytes())


# -- §1 headers ------------------------------------------------------------------------


def test_iso2022jp_sequence_split_across_encoded_words() -> None:
    assert _parse("ja_split_encoded_word.eml").subject == "【至急】㈱アクメ様 請求書①の件"


def test_rfc2231_continuations_utf8_and_outlook_quoted_words() -> None:
    names = [a.filename for a in _parse("ja_rfc2231_filenames.eml").attachments]
    assert names == ["見積書①_㈱アクメ.xlsx", "議事録（11月）.pdf", "契約書ドラフト.doc"]


def test_raw_8bit_headers_and_japanese_address_lists() -> None:
    mail = _parse("ja_raw_8bit_headers.eml")
    assert mail.subject == "請求書①の送付について"  # raw Shift_JIS (cp932) bytes
    assert mail.sender is not None and mail.sender.name == "佐藤 花子"  # raw UTF-8 bytes
    assert [(a.email, a.name) for a in mail.to] == [
        ("desk@secretary.example", ""),
        ("suzuki@client.example", "鈴木 一郎"),
        ("takahashi@client.example", "高橋, 美咲"),
    ]
    assert mail.text == "髙橋様、ご確認ください。～"


# -- §2 charsets -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("ja_sjis_label_cp932_chars.eml", "①②③ ㈱ № ℡ Ⅰ Ⅱ 髙﨑"),
        ("ja_eucjp.eml", "日本語のテキストです。ｶﾀｶﾅ"),
        ("ja_halfwidth_kana_escape.eml", "お問い合わせ ｶﾀｶﾅ"),
        ("ja_jis_without_charset.eml", "文字コードの指定がないメールです。"),
        ("ja_bogus_charset.eml", "シフトJISの本文です。"),
        ("ja_jis_label_utf8_body.eml", "本当はUTF-8の本文です。"),
    ],
)
def test_charsets(name: str, text: str) -> None:
    mail = _parse(name)
    assert mail.text == text
    assert mail.sender is not None and mail.sender.name == "山田 太郎"


def test_bogus_charset_is_noted_as_a_defect() -> None:
    assert any("x-unknown-japanese" in d for d in _parse("ja_bogus_charset.eml").defects)


def test_html_only_mail_becomes_text_with_quotes_apart() -> None:
    mail = _parse("ja_html_only.eml")
    assert mail.text == "お世話になっております。\n①の件、㈱アクメです。"
    assert mail.quoted == "> 以前のメール"


# -- §3 new text versus quoted text ------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text", "quote_starts"),
    [
        (
            "ja_outlook_original_message.eml",
            "承知しました。明日中に対応します。",
            "-----元のメッセージ",
        ),
        ("ja_outlook_header_block.eml", "資料を確認しました。", "差出人: 田中 花子"),
        (
            "ja_gmail_attribution.eml",
            "ありがとうございます。問題ありません。",
            "2026年11月26日(木)",
        ),
        ("ja_thunderbird_attribution.eml", "修正をお願いします。", "田中 花子 さんは書きました:"),
        ("ja_iphone_attribution.eml", "了解です", "iPhoneから送信"),
        ("ja_signature_rule.eml", "来週金曜までにお願いします。", "━━━━"),
    ],
)
def test_new_text_and_quote(name: str, text: str, quote_starts: str) -> None:
    mail = _parse(name)
    assert mail.text == text
    assert mail.quoted.startswith(quote_starts)


def test_interleaved_answers_are_new_text() -> None:
    mail = _parse("ja_interleaved_reply.eml")
    assert mail.text == "田中様\n12月3日まででお願いします。\nExcelでお願いします。"
    assert mail.quoted == "> 納期はいつですか？\n> 形式は？"
