"""Body choice, HTML to text, and new text separated from quotes and signatures."""

from __future__ import annotations

from email.parser import BytesParser
from email.policy import compat32
from pathlib import Path

import pytest

from mailflow.errors import ProcessingError
from mailflow.parse import parse_mail, split_quoted
from mailflow.parse.content_type import content_charset, content_type_of
from mailflow.parse.html import html_to_text

MAIL = Path(__file__).parent / "mail"


def _mail(body: str, *, ctype: str = "text/plain", charset: str = "utf-8") -> bytes:
    head = f"From: a@x.jp\r\nSubject: t\r\nContent-Type: {ctype}; charset={charset}\r\n"
    head += "Content-Transfer-Encoding: 8bit\r\n\r\n"
    return head.encode() + body.replace("\n", "\r\n").encode()


def test_shift_jis_part_with_cp932_chars() -> None:
    mail = parse_mail((MAIL / "outlook_sjis_rfc2047_filename.eml").read_bytes())
    assert mail.text == "お見積もりを送ります。①②㈱髙﨑 ～"


def test_no_charset_jis_part() -> None:
    raw = b"From: a@x.jp\r\nSubject: x\r\n\r\n" + "依頼です".encode("iso2022_jp") + b"\r\n"
    assert parse_mail(raw).text == "依頼です"


def test_bogus_charset_part_is_sniffed_and_reported() -> None:
    mail = parse_mail(_mail("こんにちは", charset="x-no-such-charset"))
    assert mail.text == "こんにちは"
    assert any("x-no-such-charset" in defect for defect in mail.defects)


def test_crlf_and_trailing_whitespace_normalised() -> None:
    mail = parse_mail(_mail("line one   \nline two\t\n\n\n"))
    assert mail.text == "line one\nline two"
    assert mail.size == len(_mail("line one   \nline two\t\n\n\n"))


JA_GMAIL = """承知しました。
#due 12/3

2026年11月26日(木) 10:00 山田 太郎 <taro@example.co.jp>:
> 資料の作成をお願いします。
> よろしくお願いします。
"""
JA_OUTLOOK = """了解です。
以上

-----元のメッセージ-----
差出人: 山田 太郎 <taro@example.co.jp>
送信日時: 2026年11月26日 10:00
宛先: desk@secretary.example
件名: 資料作成

本文です。
"""
JA_OUTLOOK_NO_MARKER = """確認しました。

差出人: 山田 太郎 [mailto:taro@example.co.jp]
送信日時: 2026年11月26日 10:00
件名: 資料作成

本文です。
"""
JA_SAN = """ありがとうございます。

山田 太郎 さんは書きました:
> 本文
"""
JA_APPLE = """OKです

2026/11/26 10:00、山田 太郎 <taro@example.co.jp>のメール:

> 本文
"""
JA_IPHONE = """OKです

2026/11/26 10:00、山田 太郎 <taro@example.co.jp> のメッセージ:

> 本文
"""
EN_GMAIL_WRAPPED = """Sounds good.

On Thu, Nov 26, 2026 at 10:00 AM Taro Yamada <
taro@example.co.jp> wrote:

> Could you draft the report?
"""
EN_OUTLOOK = """Thanks, will do.

-----Original Message-----
From: Taro <taro@example.co.jp>
Sent: Thursday, November 26, 2026 10:00 AM
Subject: report

original
"""
EN_OUTLOOK_FROM_SENT = """Thanks.

________________________________
From: Taro <taro@example.co.jp>
Sent: Thursday, November 26, 2026 10:00 AM
To: desk@secretary.example
Subject: report
"""
THUNDERBIRD_BOTTOM = """On 2026/11/26 10:00, Taro Yamada wrote:
> Could you?

Yes, I can.
"""


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (JA_GMAIL, "承知しました。\n#due 12/3"),
        (JA_OUTLOOK, "了解です。\n以上"),
        (JA_OUTLOOK_NO_MARKER, "確認しました。"),
        (JA_SAN, "ありがとうございます。"),
        (JA_APPLE, "OKです"),
        (JA_IPHONE, "OKです"),
        (EN_GMAIL_WRAPPED, "Sounds good."),
        (EN_OUTLOOK, "Thanks, will do."),
        (EN_OUTLOOK_FROM_SENT, "Thanks."),
        (THUNDERBIRD_BOTTOM, "Yes, I can."),
    ],
)
def test_new_text_is_separated_from_quotes(body: str, expected: str) -> None:
    text, quoted = split_quoted(body)
    assert text == expected
    assert quoted
    assert expected not in quoted


def test_interleaved_reply_keeps_answers() -> None:
    text, quoted = split_quoted("> question one\nanswer one\n> question two\nanswer two\n")
    assert text == "answer one\nanswer two"
    assert quoted == "> question one\n> question two"


@pytest.mark.parametrize(
    "separator", ["-- ", "--", "――――――――", "━━━━━━━━━━", "＝＝＝＝＝＝", "-----------"]
)
def test_signature_separators(separator: str) -> None:
    body = f"本文です。\n\n{separator}\n株式会社サンプル\n山田 太郎\nTEL 03-0000-0000\n"
    text, quoted = split_quoted(body)
    assert text == "本文です。"
    assert quoted.startswith(separator.rstrip())


def test_ijou_is_not_a_separator_and_lone_rule_is_kept() -> None:
    body = "本文です。\n以上\nよろしくお願いします。"
    assert split_quoted(body) == (body, "")
    assert split_quoted("見出し\n━━━━━━\n本文です。\n")[0] == "見出し\n━━━━━━\n本文です。"


def test_crlf_input() -> None:
    assert split_quoted("a  \r\nb\r\n\r\n> q\r\n") == ("a\nb", "> q")


HTML = """<html><head><title>t</title><style>p {color: red}</style>
<script>alert(1)</script></head><body>
<span style="display:none">preheader text</span>
<p>こんにちは&amp;お世話に&nbsp;なっております。</p><div>一行目<br>二行目</div>
<ul><li>one</li><li>two</li></ul>
<div class="gmail_quote">On Thu, Nov 26, 2026 at 10:00 AM Taro &lt;t@x.jp&gt; wrote:<br>
<blockquote>quoted <b>line</b><br>second</blockquote></div></body></html>"""


def test_html_to_text() -> None:
    text = html_to_text(HTML)
    assert "alert" not in text and "color" not in text and "preheader" not in text
    assert "こんにちは&お世話に\xa0なっております。" in text
    assert "一行目\n二行目" in text
    assert "- one\n- two" in text
    assert "> quoted line\n> second" in text


@pytest.mark.parametrize(
    ("html", "text"),
    [
        # Japanese wrapped in the source joins as a browser shows it: without a space.
        ("<p>いつもお世話に\nなっております。\n本日は</p>", "いつもお世話になっております。本日は"),
        ("<p>資料を\r\n   お送りします。</p>", "資料をお送りします。"),
        ("<p>本日は<b>\n資料</b>を<i>\n</i>お送り</p>", "本日は資料をお送り"),
        ("<p>ﾃﾞｰﾀ\nｴﾝﾄﾘｰ（\n２件）</p>", "ﾃﾞｰﾀｴﾝﾄﾘｰ（２件）"),
        # A space written between Japanese words stays; Latin and Hangul keep their space.
        ("<p>山田 太郎\n様</p>", "山田 太郎様"),
        ("<p>Hello\nworld</p>", "Hello world"),
        ("<p>日本\nEnglish\n日本</p>", "日本 English 日本"),
        ("<p>한국\n어</p>", "한국 어"),
        ("<pre>一行目\n二行目</pre>", "一行目\n二行目"),
        ("<p>- a <b> b </b>  c</p>", "- a b c"),
    ],
)
def test_html_line_breaks_as_a_browser_joins_them(html: str, text: str) -> None:
    assert html_to_text(html) == text


def test_html_only_mail_gives_text_and_keeps_source() -> None:
    mail = parse_mail(_mail(HTML, ctype="text/html"))
    assert mail.html.startswith("<html>")
    assert mail.text.startswith("こんにちは&お世話に")
    assert "一行目\n二行目" in mail.text
    assert "> quoted line" in mail.quoted


def test_plain_part_preferred_over_html() -> None:
    raw = (
        b"From: a@x.jp\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n"
        b"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nplain\r\n"
        b"--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>html</p>\r\n--b--\r\n"
    )
    mail = parse_mail(raw)
    assert mail.text == "plain"
    assert mail.html == "<p>html</p>"


def test_format_flowed_is_unwrapped() -> None:
    raw = (
        b"From: a@x.jp\r\nContent-Type: text/plain; charset=utf-8; format=flowed\r\n\r\n"
        b"one long \r\nline\r\n-- \r\nsig\r\n"
    )
    mail = parse_mail(raw)
    assert mail.text == "one long line"
    assert mail.quoted == "--\nsig"


@pytest.mark.parametrize(
    ("params", "text"),
    [
        # The parameter is found by its name, however its value is written (RFC 2231 too).
        (b"format*0=flo; format*1=wed", "one long line"),
        (b'FORMAT="flowed"', "one long line"),
        (b"format=fixed", "one long\nline"),
        (b"x-note=format", "one long\nline"),
    ],
)
def test_format_parameter_however_written(params: bytes, text: str) -> None:
    raw = (
        b"From: a@x.jp\r\nContent-Type: text/plain; charset=utf-8; " + params + b"\r\n\r\n"
        b"one long \r\nline\r\n"
    )
    assert parse_mail(raw).text == text


@pytest.mark.parametrize("raw", [b"", b"   \r\n\r\n"])
def test_empty_input_is_a_processing_error(raw: bytes) -> None:
    with pytest.raises(ProcessingError, match="empty"):
        parse_mail(raw)


def test_garbage_input_does_not_raise() -> None:
    for raw in (bytes(range(256)), b"\x00" * 100, b"no headers at all", b"Subject: x"):
        mail = parse_mail(raw)
        assert mail.size == len(raw)


def test_deep_nesting_does_not_raise() -> None:
    depth = 200
    head = b"".join(
        b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i)
        for i in range(depth)
    )
    tail = b"".join(b"\r\n--b%d--\r\n" % i for i in reversed(range(depth)))
    raw = b"From: a@x.jp\r\n" + head + b"Content-Type: text/plain\r\n\r\ndeep" + tail
    try:
        mail = parse_mail(raw)
    except ProcessingError:
        return
    assert isinstance(mail.text, str)


@pytest.mark.parametrize(
    "fields",
    [
        b"Content-Type: text/plain; charset=ISO-2022-JP\r\n",
        b'content-type: TEXT/HTML; charset="utf-8"\r\nContent-Type: text/plain\r\n',
        b"Content-Type: text/plain; charset*=utf-8''%E3%81%82\r\n",
        b"Content-Type: text/plain; charset=\xe3\x81\x82\r\n",
        b"Content-Type: bogus; charset=\r\n",
        b"Content-Type: \r\n",
        b"Subject: no content type\r\n",
    ],
)
def test_content_type_and_charset_read_as_the_stdlib_does(fields: bytes) -> None:
    part = BytesParser(policy=compat32).parsebytes(fields + b"\r\nbody\r\n")
    for _ in range(2):  # the second reading comes from the kept ones
        assert content_type_of(part) == part.get_content_type()
        assert content_charset(part) == part.get_content_charset()


def test_a_digest_part_without_content_type_keeps_its_default_type() -> None:
    raw = b'Content-Type: multipart/digest; boundary="d"\r\n\r\n--d\r\n\r\nSubject: x\r\n\r\n--d--'
    inner = BytesParser(policy=compat32).parsebytes(raw).get_payload(0)
    assert content_type_of(inner) == "message/rfc822"
