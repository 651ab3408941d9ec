"""Playing whole conversations by email against a real instance (scenario tests).

``Desk`` wraps a Service: people send mail (replies go to the signed Reply-To of the mail
they answer, with In-Reply-To, as a mail client does) and the test reads back states,
events and the outbox rows each mail produced.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass, field
from email.header import Header
from pathlib import Path
from typing import Any

from mailflow.service import Service

DESK = "desk@secretary.example"


@dataclass(frozen=True)
class File:
    name: str
    payload: bytes
    content_type: str = "application/octet-stream"


@dataclass
class Desk:
    service: Service
    seen: int = 0
    clock_offset: int = field(default=0)

    @classmethod
    def open(cls, home: Path) -> Desk:
        return cls(Service(home))

    def close(self) -> None:
        self.service.store.close()

    # -- sending -------------------------------------------------------------------------

    def send(self, raw: bytes) -> list[dict[str, Any]]:
        """Deliver one mail; return the outbox rows it produced."""
        self.service.store.accept(raw, "smtp", "")
        self.service.desk.process_pending()
        return self.new_rows()

    def new_rows(self) -> list[dict[str, Any]]:
        rows = self.service.store.list_outbox()
        fresh, self.seen = rows[self.seen :], len(rows)
        return fresh

    def reply(
        self,
        row: dict[str, Any],
        sender: str,
        text: str,
        *,
        name: str = "",
        files: tuple[File, ...] = (),
        extra_headers: str = "",
    ) -> list[dict[str, Any]]:
        """``sender`` answers the outbox ``row`` (to its Reply-To, threaded)."""
        return self.send(
            mail(
                sender,
                row["reply_to"],
                "Re: " + row["subject"],
                text,
                name=name,
                in_reply_to=row["message_id"],
                files=files,
                extra_headers=extra_headers,
            )
        )

    # -- reading -------------------------------------------------------------------------

    def request(self, ref: str = "MF-0001") -> dict[str, Any]:
        shown = self.service.store.show_request(ref)
        assert shown is not None, f"no request {ref}"
        return shown

    def events(self, ref: str = "MF-0001") -> list[str]:
        return [event["kind"] for event in self.request(ref)["events"]]


def kinds(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(kind, first recipient) of each row, in order."""
    return [(row["kind"], row["to"][0]) for row in rows]


def only(rows: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    matching = [row for row in rows if row["kind"] == kind]
    assert len(matching) == 1, f"expected one {kind}, got {kinds(rows)}"
    return matching[0]


def mail(
    sender: str,
    to: str,
    subject: str,
    text: str,
    *,
    name: str = "",
    in_reply_to: str | None = None,
    files: tuple[File, ...] = (),
    extra_headers: str = "",
    charset: str = "utf-8",
) -> bytes:
    """A mail as a real client writes it: UTF-8 (or ISO-2022-JP), optional attachments."""
    from_header = f"{Header(name, 'utf-8').encode()} <{sender}>" if name else sender
    head = (
        f"From: {from_header}\r\nTo: {to}\r\nSubject: {Header(subject, 'utf-8').encode()}\r\n"
        f"Date: Thu, 26 Nov 2026 10:00:00 +0900\r\n"
        f"Message-ID: <{uuid.uuid4().hex}@{sender.rpartition('@')[2]}>\r\n"
    )
    if in_reply_to:
        head += f"In-Reply-To: {in_reply_to}\r\nReferences: {in_reply_to}\r\n"
    head += extra_headers + "MIME-Version: 1.0\r\n"
    body = _text_part(text, charset)
    if not files:
        return (head + body).encode("ascii")
    parts = [f"--B\r\n{body}\r\n"]
    for file in files:
        encoded = base64.encodebytes(file.payload).decode("ascii").replace("\n", "\r\n")
        filename = Header(file.name, "utf-8").encode()
        parts.append(
            f'--B\r\nContent-Type: {file.content_type}; name="{filename}"\r\n'
            f'Content-Disposition: attachment; filename="{filename}"\r\n'
            f"Content-Transfer-Encoding: base64\r\n\r\n{encoded}\r\n"
        )
    multipart = 'Content-Type: multipart/mixed; boundary="B"\r\n\r\n' + "".join(parts) + "--B--\r\n"
    return (head + multipart).encode("ascii")


def _text_part(text: str, charset: str) -> str:
    if charset == "iso-2022-jp":
        payload = text.encode("iso-2022-jp").decode("ascii").replace("\n", "\r\n")
        return (
            "Content-Type: text/plain; charset=iso-2022-jp\r\n"
            f"Content-Transfer-Encoding: 7bit\r\n\r\n{payload}\r\n"
        )
    encoded = base64.encodebytes(text.encode("utf-8")).decode("ascii").replace("\n", "\r\n")
    return (
        "Content-Type: text/plain; charset=utf-8\r\n"
        f"Content-Transfer-Encoding: base64\r\n\r\n{encoded}"
    )
