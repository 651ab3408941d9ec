"""`mailflow demo`: a scripted conversation on a temporary instance, printed step by step.

Plays both service models by email through the real pipeline — a Japanese client of the
director model (request, assignment, delivery, review, approval, thanks) and an English
client of the direct model (estimate, approval, delivery with hours) — and prints, for every
mail, who sent it, the request's state after it and the mails the desk wrote in answer.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from typing import Any

from mailflow.instance import init_instance
from mailflow.service import Service

DESK = "desk@secretary.example"

Say = Callable[[str], None]


@contextmanager
def demo_instance() -> Iterator[Service]:
    with tempfile.TemporaryDirectory(prefix="mailflow-demo-") as folder:
        home = Path(folder) / "instance"
        init_instance(home, demo=True, force=False)
        service = Service(home)
        try:
            yield service
        finally:
            service.store.close()


def _mail(
    sender: str,
    name: str,
    to: str,
    subject: str,
    text: str,
    *,
    in_reply_to: str | None = None,
    attachment: tuple[str, bytes] | None = None,
) -> bytes:
    message = EmailMessage()
    message["From"] = f"{name} <{sender}>"
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=True)
    message["Message-ID"] = f"<{uuid.uuid4().hex}@{sender.rpartition('@')[2]}>"
    if in_reply_to:
        message["In-Reply-To"] = message["References"] = in_reply_to
    message.set_content(text)
    if attachment:
        filename, payload = attachment
        message.add_attachment(
            payload, maintype="application", subtype="octet-stream", filename=filename
        )
    return message.as_bytes()


class Conversation:
    """Sends mail as people would (replying to the desk's signed Reply-To) and reports."""

    def __init__(self, service: Service, say: Say) -> None:
        self.service = service
        self.say = say
        self.seen = len(service.store.list_outbox())

    def send(self, who: str, raw: bytes) -> list[dict[str, Any]]:
        self.service.store.accept(raw, "demo", "")
        self.service.desk.process_pending()
        rows = self.service.store.list_outbox()[self.seen :]
        self.seen += len(rows)
        requests = self.service.store.list_requests()
        state = f"{requests[-1]['ref']} {requests[-1]['state']}" if requests else "no request"
        self.say(
            f"  {who:<28} → {state:<22} desk wrote: "
            + (", ".join(f"{r['kind']} to {r['to'][0]}" for r in rows) or "nothing")
        )
        return rows

    def reply(
        self,
        row: dict[str, Any],
        sender: str,
        name: str,
        text: str,
        attachment: tuple[str, bytes] | None = None,
    ) -> list[dict[str, Any]]:
        raw = _mail(
            sender,
            name,
            row["reply_to"],
            "Re: " + row["subject"],
            text,
            in_reply_to=row["message_id"],
            attachment=attachment,
        )
        return self.send(f"{name} ({text.splitlines()[0][:14]})", raw)


def _only(rows: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    return next(row for row in rows if row["kind"] == kind)


def director_model(talk: Conversation) -> None:
    talk.say("Director model — 株式会社アクメ, director 田中, member 佐藤:")
    rows = talk.send(
        "山田 (client request)",
        _mail(
            "yamada@acme.example",
            "山田 太郎",
            DESK,
            "競合調査のお願い",
            "お世話になっております。\n競合3社の料金を調査し、Excelで12月3日までにお願いします。\n",
        ),
    )
    rows = talk.reply(
        _only(rows, "new_request"), "tanaka@secretary.example", "田中 花子", "#担当 sato\n"
    )
    assignment = _only(rows, "assignment")
    rows = talk.reply(
        assignment,
        "sato@members.example",
        "佐藤 一郎",
        "#完了 2h\n調査結果をお送りします。\n",
        attachment=("競合調査.xlsx", b"PK\x03\x04 demo"),
    )
    rows = talk.reply(
        _only(rows, "review"),
        "tanaka@secretary.example",
        "田中 花子",
        "#承認 ご確認をお願いいたします。\n",
    )
    talk.reply(
        _only(rows, "delivery"),
        "yamada@acme.example",
        "山田 太郎",
        "ありがとうございました。助かりました。\n",
    )


def direct_model(talk: Conversation) -> None:
    talk.say("Direct model — Beta LLC, dedicated member 鈴木, 20 h a month:")
    rows = talk.send(
        "Kim (client request)",
        _mail(
            "kim@beta.example",
            "Jin Kim",
            DESK,
            "Translate our product sheet",
            "Please translate the product sheet into Japanese by Friday.\n",
        ),
    )
    assignment = _only(rows, "assignment")
    rows = talk.reply(assignment, "suzuki@members.example", "鈴木 美咲", "#estimate 3h\n")
    talk.reply(_only(rows, "estimate"), "kim@beta.example", "Jin Kim", "OK, go ahead.\n")
    rows = talk.reply(
        assignment,
        "suzuki@members.example",
        "鈴木 美咲",
        "#done 2.5h\nHere is the translation.\n",
        attachment=("product_sheet_ja.docx", b"PK\x03\x04 demo"),
    )
    talk.reply(_only(rows, "delivery"), "kim@beta.example", "Jin Kim", "Thanks, looks great!\n")


def run_demo(say: Say) -> int:
    """Play both conversations; return how many requests ended closed."""
    with demo_instance() as service:
        talk = Conversation(service, say)
        director_model(talk)
        direct_model(talk)
        closed = [r for r in service.store.list_requests() if r["state"] == "closed"]
        sent = service.sender.flush()
        say(f"{len(closed)} requests closed; {sent.sent} mails written to the sent Maildir.")
        return len(closed)
