"""A realistic mix of inbound desk mail for benchmarks: ``generate(n, seed) -> list[bytes]``.

Two thirds come from Japanese clients (ISO-2022-JP with the Windows extension characters,
Outlook-style headers, encoded-word subjects with ①㈱, quoted replies, signatures), one
third is English UTF-8 (quoted-printable or base64). One mail in ten carries a ~200 KB
attachment (xlsx or pdf) with a Japanese RFC 2231 file name. Deterministic for a seed.

    python bench/mixgen.py 2000 OUTDIR     # writes OUTDIR/00000.eml …
"""

from __future__ import annotations

import base64
import quopri
import random
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from urllib.parse import quote

DESK = "desk@secretary.example"
JA_SENDERS: tuple[tuple[str, str], ...] = (("山田 太郎", "yamada@acme.example"),)
EN_SENDERS: tuple[tuple[str, str], ...] = (("Jin Kim", "kim@beta.example"),)
ATTACHMENT_SIZE = 200 * 1024

_JA_SUBJECTS = (
    "【至急】競合①〜③社の料金調査のお願い",
    "㈱アクメ 請求書データ入力の件",
    "Re: 12月の会議日程調整について",
    "資料翻訳のご依頼（英→日）",
    "RE: 見積書②の修正について",
    "来週金曜までに議事録作成をお願いします",
)
_JA_BODIES = (
    "お世話になっております。㈱アクメの山田です。\n\n競合①〜③社の料金を調べて、"
    "Excelにまとめていただけますでしょうか。\n12月3日までにお願いいたします。\n",
    "お疲れ様です。\n\n添付の請求書（№123〜№140）をスプレッドシートに入力してください。\n"
    "不明点があればご連絡ください。\n",
    "ご確認ありがとうございます。\n内容、問題ありません。\n引き続きよろしくお願いいたします。\n",
    "髙橋様の会議資料を英語から日本語に翻訳してください。\n納期は来週金曜です。\n",
)
_JA_SIGNATURE = (
    "\n━━━━━━━━━━━━━━━━━━━━\n株式会社アクメ 営業部\n{name}\n"
    "TEL: 03-1234-5678 / Mail: {email}\n━━━━━━━━━━━━━━━━━━━━\n"
)
_JA_QUOTE = (
    "\n-----元のメッセージ-----\n差出人: 田中 花子 <tanaka@secretary.example>\n"
    "送信日時: 2026年11月25日 18:00\n宛先: {email}\n件名: 競合調査\n\n"
    "{name}様\n\nいつもお世話になっております。\nご依頼の件、承知いたしました。\n"
)
_EN_SUBJECTS = (
    "Translate our product sheet",
    "Re: Meeting notes for Dec 3",
    "Data entry for November invoices",
    "Research: three competitors' pricing",
)
_EN_BODIES = (
    "Hi,\n\nPlease translate the attached sheet into Japanese by Friday.\n"
    "It's about 4 pages – let me know if anything's unclear.\n\nThanks,\n{first}\n",
    "Hello team,\n\nCould you compile the meeting notes into a one-page summary?\n"
    "A Word document is fine. No rush — end of next week works.\n\nBest,\n{first}\n",
)
_EN_QUOTE = (
    "\nOn Wed, Nov 25, 2026 at 6:00 PM Tanaka Hanako <tanaka@secretary.example> wrote:\n"
    "> Dear {first},\n>\n> We have received your request and will start today.\n>\n"
    "> Best regards,\n"
)
_FILES = (
    ("見積書①_㈱アクメ_2026年12月.xlsx",
     "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    ("議事録（11月定例）.pdf", "application/pdf"),
)  # fmt: skip


def generate(
    n: int,
    seed: int = 0,
    *,
    ja_senders: Sequence[tuple[str, str]] = JA_SENDERS,
    en_senders: Sequence[tuple[str, str]] = EN_SENDERS,
) -> list[bytes]:
    """``n`` messages: 2/3 Japanese, 1/3 English, 10 % with a ~200 KB attachment."""
    rng = random.Random(seed)
    start = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
    mails: list[bytes] = []
    for i in range(n):
        japanese = i % 3 != 2
        attached = i % 10 == 7
        when = start + timedelta(minutes=7 * i)
        if japanese:
            name, email = ja_senders[rng.randrange(len(ja_senders))]
            mails.append(_japanese(rng, name, email, when, i, attached))
        else:
            name, email = en_senders[rng.randrange(len(en_senders))]
            mails.append(_english(rng, name, email, when, i, attached))
    return mails


def _jis(text: str) -> bytes:
    """ISO-2022-JP as Outlook writes it: JIS X 0208 plus the cp932 extension rows."""
    out = bytearray()
    kanji = False
    for ch in text:
        if ord(ch) < 0x80:
            if kanji:
                out += b"\x1b(B"
                kanji = False
            out += ch.encode("ascii")
            continue
        lead, trail = ch.encode("cp932")
        row = (lead - 0x70 if lead < 0xA0 else lead - 0xB0) * 2
        if trail < 0x9F:
            row -= 1
            trail -= 0x1F if trail < 0x80 else 0x20
        else:
            trail -= 0x7E
        if not kanji:
            out += b"\x1b$B"
            kanji = True
        out += bytes((row, trail))
    if kanji:
        out += b"\x1b(B"
    return bytes(out)


def _jis_word(text: str) -> str:
    return f"=?ISO-2022-JP?B?{base64.b64encode(_jis(text)).decode()}?="


def _utf8_word(text: str) -> str:
    return text if text.isascii() else f"=?UTF-8?B?{base64.b64encode(text.encode()).decode()}?="


def _common(
    sender: str, subject: str, when: datetime, i: int, outlook: bool, extra: str = ""
) -> str:
    head = (
        f"Received: from mail{i % 7}.client.example "
        f"(mail{i % 7}.client.example [192.0.2.{i % 250}])"
        f"\r\n\tby mx.secretary.example with ESMTPS id {i:08X}\r\n\tfor <{DESK}>; "
        f"{format_datetime(when)}\r\n"
        f"From: {sender}\r\nTo: {DESK}\r\nSubject: {subject}\r\n"
        f"Date: {format_datetime(when)}\r\n"
        f"Message-ID: <{i:06d}.{when.timestamp():.0f}@client.example>\r\n"
        f"MIME-Version: 1.0\r\n{extra}"
    )
    if outlook:
        head += (
            "Thread-Topic: request\r\nThread-Index: AdmXyZ1234567890abcdefABCDEF==\r\n"
            "X-MS-Has-Attach: \r\nX-MS-TNEF-Correlator: \r\n"
            "x-ms-exchange-messagesentrepresentingtype: 1\r\n"
            "X-Mailer: Microsoft Outlook 16.0\r\nContent-Language: ja-JP\r\n"
            "Authentication-Results: mx.secretary.example; dkim=pass header.d=client.example; "
            "dmarc=pass header.from=client.example\r\n"
        )
    return head


def _japanese(rng: random.Random, name: str, email: str, when: datetime, i: int,
              attached: bool) -> bytes:  # fmt: skip
    body = rng.choice(_JA_BODIES) + _JA_SIGNATURE.format(name=name, email=email)
    if rng.random() < 0.5:
        body += _JA_QUOTE.format(name=name, email=email)
    payload = _jis(body).replace(b"\n", b"\r\n")
    sender = f"{_jis_word(name)} <{email}>"
    text_part = (
        b'Content-Type: text/plain; charset="iso-2022-jp"\r\n'
        b"Content-Transfer-Encoding: 7bit\r\n\r\n" + payload
    )
    head = _common(sender, _jis_word(rng.choice(_JA_SUBJECTS)), when, i, outlook=True)
    return _assemble(head, text_part, rng, attached)


def _english(rng: random.Random, name: str, email: str, when: datetime, i: int,
             attached: bool) -> bytes:  # fmt: skip
    first = name.split()[0]
    body = rng.choice(_EN_BODIES).format(first=first)
    if rng.random() < 0.5:
        body += _EN_QUOTE.format(first=first)
    data = body.replace("\n", "\r\n").encode("utf-8")
    if i % 2:
        encoding, encoded = "quoted-printable", quopri.encodestring(data)
    else:
        encoding, encoded = "base64", base64.encodebytes(data).replace(b"\n", b"\r\n")
    text_part = (
        f"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: {encoding}\r\n\r\n"
    ).encode() + encoded
    head = _common(f"{_utf8_word(name)} <{email}>", rng.choice(_EN_SUBJECTS), when, i, False)
    return _assemble(head, text_part, rng, attached)


def _assemble(head: str, text_part: bytes, rng: random.Random, attached: bool) -> bytes:
    if not attached:
        return head.encode("ascii") + text_part
    boundary = f"----=_NextPart_{rng.getrandbits(64):016X}"
    filename, ctype = rng.choice(_FILES)
    return (
        head.encode("ascii")
        + f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n\r\n'.encode()
        + f"This is a multi-part message in MIME format.\r\n\r\n--{boundary}\r\n".encode()
        + text_part
        + f"\r\n--{boundary}\r\n".encode()
        + _attachment(rng, filename, ctype)
        + f"\r\n--{boundary}--\r\n".encode()
    )


def _attachment(rng: random.Random, filename: str, ctype: str) -> bytes:
    encoded_name = quote(filename.encode("utf-8"), safe="")
    # RFC 2231 continuations, as Thunderbird and Outlook split long names.
    pieces = _split_escaped(encoded_name, 60)
    params = ";\r\n".join(
        f" filename*{k}*={'UTF-8' + chr(39) * 2 if k == 0 else ''}{piece}"
        for k, piece in enumerate(pieces)
    )
    content = rng.randbytes(ATTACHMENT_SIZE)
    body = base64.encodebytes(content).replace(b"\n", b"\r\n")
    return (
        f'Content-Type: {ctype}; name="{_jis_word(filename)}"\r\n'
        f"Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment;\r\n{params}\r\n\r\n"
    ).encode() + body


def _split_escaped(text: str, width: int) -> list[str]:
    """Cut a %-encoded value into pieces of about ``width`` without splitting a %XX."""
    pieces: list[str] = []
    while text:
        cut = min(width, len(text))
        while cut < len(text) and "%" in text[max(cut - 2, 0) : cut]:
            cut += 1
        pieces.append(text[:cut])
        text = text[cut:]
    return pieces


def main(argv: list[str]) -> int:
    count = int(argv[1]) if len(argv) > 1 else 2000
    target = Path(argv[2]) if len(argv) > 2 else Path("bench/out/mix")
    target.mkdir(parents=True, exist_ok=True)
    for k, mail in enumerate(generate(count, seed=1)):
        (target / f"{k:05d}.eml").write_bytes(mail)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
