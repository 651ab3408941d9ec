"""What a mail means for the desk: (mail, sender, matched request) → Outcome.

Pure: it reads values (the parsed mail, the directory snapshot, the clock) and returns the
plan — request to open, events to record, notices to send — that the commit step carries
out in one transaction.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from mailflow.commands import read_commands
from mailflow.conversation import apply_command, client_mail, spoofed, staff_mail, staff_receipt
from mailflow.directory import Directory
from mailflow.model import (
    Address,
    Classification,
    EventDraft,
    ForwardedMail,
    Notice,
    Outcome,
    Role,
)
from mailflow.opening import open_request
from mailflow.phrases import phrase
from mailflow.situation import RequestView, Situation
from mailflow.skills import detect_language
from mailflow.transitions import Step

_FORWARD_PREFIX = re.compile(r"^\s*((fwd?|転送|fw)\s*[:：]\s*)+", re.IGNORECASE)


def plan(situation: Situation) -> Outcome:
    """The single entry point: one path for every mail."""
    mail, sender = situation.mail, situation.sender
    if situation.classification is Classification.BOUNCE:
        return _bounce(situation)
    if situation.classification is not Classification.HUMAN:
        # Nothing automatic ever answers something automatic.
        return Outcome(note=f"{situation.classification}: {situation.classification_reason}")
    if situation.oversized is not None:
        return _oversized(situation, *situation.oversized)
    if sender is None:
        return _unknown_sender(situation)
    if situation.request is not None:
        return _on_request(situation, situation.request)
    if sender.role is Role.CLIENT and sender.client_id is not None:
        client = situation.directory.clients[sender.client_id]
        # The display name the client wrote beats the directory's company-level name.
        name = mail.sender.name if mail.sender and mail.sender.name else sender.name
        return open_request(
            situation,
            client,
            Address(sender.email, name),
            sender.person_id,
            mail.subject,
            mail.text,
        )
    return _staff_without_request(situation)


def _on_request(situation: Situation, view: RequestView) -> Outcome:
    sender = situation.sender
    assert sender is not None
    if sender.role is Role.CLIENT:
        return client_mail(situation, view)
    return staff_mail(situation, view)


def _staff_without_request(situation: Situation) -> Outcome:
    """A director forwarding a client's mail opens a request for that client (DESIGN §4);
    anything else from staff without a request is kept, with a receipt if it had commands."""
    sender, mail = situation.sender, situation.mail
    assert sender is not None
    forwarded = mail.forwarded
    leads = (Role.DIRECTOR, Role.COORDINATOR)
    if sender.role in leads and forwarded is not None and forwarded.sender is not None:
        if not situation.authenticated:
            return spoofed(situation, None)
        return forward(situation, forwarded)
    block = read_commands(mail.text)
    reason = phrase("staff_without_ref", role=sender.role.value, person=sender.person_id)
    if not block:
        return Outcome(hold_reason=reason)
    receipt = staff_receipt(
        situation,
        [],
        [phrase("no_request").refused(c.line) for c in block.commands],
    )
    return Outcome(hold_reason=reason, notices=(receipt,))


def forward(situation: Situation, forwarded: ForwardedMail) -> Outcome:
    """Open the request for the forwarded client contact, then apply the director's tags."""
    sender = situation.sender
    assert sender is not None and forwarded.sender is not None
    original = situation.directory.identify(forwarded.sender.email)
    if original is None or original.client_id is None:
        refusal = phrase("forward_not_client", sender=forwarded.sender.email)
        receipt = staff_receipt(situation, [], [refusal.refused("(forward)")])
        return Outcome(hold_reason=refusal, notices=(receipt,))
    client = situation.directory.clients[original.client_id]
    contact = Address(forwarded.sender.email, forwarded.sender.name or original.name)
    subject = _FORWARD_PREFIX.sub("", forwarded.subject or situation.mail.subject).strip()
    opened = open_request(
        situation,
        client,
        contact,
        sender.person_id,
        subject,
        forwarded.text,
        forwarded_by=sender.person_id,
    )
    assert opened.new_request is not None
    view = RequestView.from_new(opened.new_request, opened.changes.get("data", {}))
    step = Step(situation, view, sender)
    opened_for = phrase("request_opened", company=client.company, contact=contact.email)
    step.applied.append(opened_for.done("(forward)"))
    block = read_commands(situation.mail.text)
    for command in block.commands:
        apply_command(step, command, block)
    step.receipt()
    return replace(
        opened,
        events=opened.events + tuple(step.events),
        notices=opened.notices + tuple(step.notices),
        changes={**opened.changes, **step.changes},
    )


def _unknown_sender(situation: Situation) -> Outcome:
    """No request; the mail is kept; the sender gets one polite answer (rate-limited)."""
    mail = situation.mail
    if mail.sender is None:
        return Outcome(hold_reason=phrase("no_sender_address"))
    words = mail.subject + mail.text
    language = detect_language(words) if words.strip() else situation.desk_language
    notice = Notice(
        kind="unknown_sender",
        to=(mail.sender,),
        language=language,
        recipient_id=mail.sender.email,
        context={
            "recipient": {"id": mail.sender.email, "name": mail.sender.name},
            "inbox": {"sender": str(mail.sender), "subject": mail.subject},
        },
    )
    return Outcome(
        hold_reason=phrase("unknown_sender_held", sender=mail.sender.email),
        notices=(notice,),
    )


def _oversized(situation: Situation, size: int, limit: int) -> Outcome:
    """Kept, not processed; a known sender is asked for a shared link instead."""
    mail, sender = situation.mail, situation.sender
    reason = phrase("too_large", size=size, limit=limit)
    if sender is None or mail.sender is None:
        return Outcome(hold_reason=reason)
    notice = Notice(
        kind="too_large",
        to=(Address(sender.email, mail.sender.name or sender.name),),
        language=sender.language,
        recipient_id=sender.person_id,
        context={
            "recipient": {"id": sender.person_id, "name": mail.sender.name or sender.name},
            "mail": {"subject": mail.subject, "size": size, "limit": limit},
        },
    )
    return Outcome(hold_reason=reason, notices=(notice,))


def _bounce(situation: Situation) -> Outcome:
    """A bounce of our own mail tells the director of its request; others are noted."""
    bounce = situation.mail.bounce
    outbox = situation.bounced
    note = f"bounce: {situation.classification_reason}"
    if bounce is None or outbox is None:
        return Outcome(note=note)
    return delivery_failed(
        situation.directory,
        outbox,
        situation.bounced_request,
        recipients=bounce.recipients,
        status=bounce.status,
        diagnostic=bounce.diagnostic,
        permanent=bounce.permanent,
        note=note,
    )


def delivery_failed(
    directory: Directory,
    outbox: Mapping[str, Any],
    request: Mapping[str, Any] | None,
    *,
    recipients: Sequence[str],
    status: str,
    diagnostic: str,
    permanent: bool,
    note: str = "",
) -> Outcome:
    """A mail of ours did not arrive (a bounce, or the relay refused it for good): the
    director of its request is told, and the request's history says so."""
    ref = request["ref"] if request else None
    director_id = request["director"] if request else None
    director = directory.directors.get(director_id) if director_id else None
    director = director or next(iter(directory.directors.values()), None)
    event = EventDraft(
        kind="bounce",
        actor="mailer-daemon",
        detail={
            "recipients": list(recipients),
            "status": status,
            "diagnostic": diagnostic[:500],
            "outbox_id": outbox["id"],
            "kind": outbox["kind"],
        },
    )
    notices: tuple[Notice, ...] = ()
    if director is not None and outbox["kind"] != "bounce_alert":
        notices = (
            Notice(
                kind="bounce_alert",
                to=(Address(director.email, director.name),),
                language=director.language,
                recipient_id=director.id,
                context={
                    "recipient": {"id": director.id, "name": director.name},
                    "bounce": {
                        "recipients": list(recipients),
                        "status": status,
                        "diagnostic": diagnostic,
                        "permanent": permanent,
                    },
                    "original": {
                        "kind": outbox["kind"],
                        "subject": outbox["subject"],
                        "to": outbox["to"],
                    },
                },
            ),
        )
    return Outcome(
        request_ref=ref,
        events=(event,) if ref else (),
        notices=notices,
        note=note or f"delivery failed: {diagnostic[:200]}",
    )


def quarantine_notice(
    directory: Directory, inbox_id: int, sender: str, subject: str, reason: str
) -> Notice | None:
    """The director hears about a mail that could not be processed (DESIGN §2)."""
    director = next(iter(directory.directors.values()), None)
    if director is None:
        return None
    return Notice(
        kind="quarantined",
        to=(Address(director.email, director.name),),
        language=director.language,
        recipient_id=director.id,
        context={
            "recipient": {"id": director.id, "name": director.name},
            "inbox": {"id": inbox_id, "sender": sender, "subject": subject, "reason": reason[:500]},
        },
    )
