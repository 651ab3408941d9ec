"""Builders for realistic test mail, as Japanese and English clients send it."""

from __future__ import annotations

import base64
import uuid
from email.header import Header

DESK = "desk@secretary.example"
REQUEST_BODY = (
    "お世話になっております。\n競合3社の料金を調べてください。\nよろしくお願いいたします。\n"
)


def iso2022jp_header(text: str) -> str:
    return Header(text, "iso-2022-jp").encode()


def client_mail(
    sender: str = "yamada@acme.example",
    name: str = "山田 太郎",
    subject: str = "競合調査のお願い",
    body: str = REQUEST_BODY,
    *,
    charset: str = "iso-2022-jp",
    to: str = DESK,
    message_id: str | None = None,
    in_reply_to: str | None = None,
    extra_headers: str = "",
    date: str = "Thu, 26 Nov 2026 10:00:00 +0900",
) -> bytes:
    """A plain-text mail in ISO-2022-JP (as Outlook and carrier phones send it) or UTF-8."""
    message_id = message_id or f"<{uuid.uuid4().hex}@mail.example>"
    if charset == "iso-2022-jp":
        from_header = f"{iso2022jp_header(name)} <{sender}>"
        subject_header = iso2022jp_header(subject)
        payload = body.encode("iso-2022-jp")
        encoding = "7bit"
    else:
        from_header = f"=?utf-8?b?{base64.b64encode(name.encode()).decode()}?= <{sender}>"
        subject_header = f"=?utf-8?b?{base64.b64encode(subject.encode()).decode()}?="
        payload = base64.encodebytes(body.encode("utf-8"))
        encoding = "base64"
    threading = (
        f"In-Reply-To: {in_reply_to}\r\nReferences: {in_reply_to}\r\n" if in_reply_to else ""
    )
    head = (
        f"From: {from_header}\r\nTo: {to}\r\nSubject: {subject_header}\r\n"
        f"Date: {date}\r\nMessage-ID: {message_id}\r\n{threading}{extra_headers}"
        f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset={charset}\r\n"
        f"Content-Transfer-Encoding: {encoding}\r\n\r\n"
    )
    return head.encode("ascii") + payload.replace(b"\n", b"\r\n").replace(b"\r\r\n", b"\r\n")


def english_mail(**kwargs: object) -> bytes:
    defaults: dict[str, object] = {
        "sender": "kim@beta.example",
        "name": "Jin Kim",
        "subject": "Translate our product sheet",
        "body": "Hi,\nPlease translate the attached sheet into Japanese.\nThanks,\nJin\n",
        "charset": "utf-8",
    }
    defaults.update(kwargs)
    return client_mail(**defaults)  # type: ignore[arg-type]
