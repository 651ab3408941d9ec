"""What a mail means for the desk: (mail, sender, matched request) → Outcome.

Pure: it reads values (the parsed mail, the directory snapshot, the clock) and returns the
plan — request to open, events to record, notices to send — that the commit step carries
out in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mailflow.directory import Client, Directory
from mailflow.model import (
    Address,
    Classification,
    Decision,
    EventDraft,
    NewRequest,
    Notice,
    Outcome,
    ParsedMail,
    Role,
    Sender,
    ServiceModel,
    State,
)


@dataclass(frozen=True)
class Situation:
    """Everything planning may look at for one mail."""

    mail: ParsedMail
    classification: Classification
    classification_reason: str
    sender: Sender | None
    matched_ref: str | None
    directory: Directory
    now: datetime


def plan(situation: Situation) -> Outcome:
    """The single entry point: one path for every mail."""
    mail, sender = situation.mail, situation.sender
    if situation.classification is not Classification.HUMAN:
        # Nothing automatic ever answers something automatic.
        return Outcome(note=f"{situation.classification}: {situation.classification_reason}")
    if sender is None:
        address = mail.sender.email if mail.sender else "(no From)"
        return Outcome(hold_reason=f"unknown sender {address}: in no role of people.yaml")
    if situation.matched_ref is not None:
        return _follow_up(situation, situation.matched_ref)
    if sender.role is Role.CLIENT and sender.client_id is not None:
        client = situation.directory.clients[sender.client_id]
        return _open_request(mail, sender, client, situation.directory)
    return Outcome(
        hold_reason=f"{sender.role} {sender.person_id} wrote without a request reference; "
        "forwarded requests and commands are not handled yet",
    )


def _follow_up(situation: Situation, ref: str) -> Outcome:
    """A later mail about a known request is recorded on it (commands come later)."""
    sender = situation.sender
    assert sender is not None
    event = EventDraft(
        kind="message",
        actor=sender.person_id,
        detail={
            "role": sender.role.value,
            "subject": situation.mail.subject,
            "text": situation.mail.text[:4000],
        },
    )
    return Outcome(request_ref=ref, events=(event,))


def route(client: Client, directory: Directory) -> Decision:
    """Director model → the client's director triages; direct → the dedicated member."""
    if client.plan is ServiceModel.DIRECT and client.member:
        return Decision(
            rule="default",
            route="member",
            reasons=(
                f"client {client.id} is on the direct plan; dedicated member {client.member}",
            ),
            suggested_member=client.member,
        )
    director = directory.director_for(client)
    name = director.id if director else "none"
    return Decision(
        rule="default",
        route="director",
        reasons=(f"client {client.id} is on the director plan; director {name} triages",),
    )


def _open_request(
    mail: ParsedMail, sender: Sender, client: Client, directory: Directory
) -> Outcome:
    decision = route(client, directory)
    direct = decision.route == "member"
    director = directory.director_for(client)
    new = NewRequest(
        client_id=client.id,
        model=ServiceModel.DIRECT if direct else ServiceModel.DIRECTOR,
        subject=mail.subject.strip() or "(no subject)",
        text=mail.text,
        language=client.language,
        director=director.id if director else None,
        assignee=decision.suggested_member if direct else None,
        state=State.ASSIGNED if direct else State.NEW,
        decision=decision,
        skills=decision.skills,
        priority=decision.priority,
    )
    created = EventDraft(
        kind="created",
        actor=sender.person_id,
        to_state=new.state,
        detail={"rule": decision.rule, "reasons": list(decision.reasons)},
    )
    # The display name the client wrote beats the directory's company-level name.
    contact = Address(
        sender.email, mail.sender.name if mail.sender and mail.sender.name else sender.name
    )
    context = _request_context(new, mail, client, contact, directory)
    notices = [_confirmation(sender.person_id, contact, client, context)]
    if direct and new.assignee:
        notices.append(_to_person(directory, "assignment", new.assignee, context))
    elif director is not None:
        notices.append(
            _to_person(
                directory,
                "new_request",
                director.id,
                {
                    **context,
                    "suggestion": {
                        "member": None,
                        "runner_up": None,
                        "reasons": list(decision.reasons),
                    },
                },
            )
        )
    return Outcome(new_request=new, events=(created,), notices=tuple(notices))


def _request_context(
    new: NewRequest, mail: ParsedMail, client: Client, contact: Address, directory: Directory
) -> dict[str, Any]:
    member = directory.members.get(new.assignee) if new.assignee else None
    return {
        "request": {
            "subject": new.subject,
            "text": new.text,
            "due": new.due.isoformat() if new.due else None,
            "skills": list(new.skills),
            "priority": new.priority,
            "model": new.model.value,
            "attachments": [
                {"filename": a.filename, "size": a.size} for a in mail.attachments if not a.inline
            ],
        },
        "client": {
            "id": client.id,
            "company": client.company,
            "contact_name": contact.name,
            "contact_email": contact.email,
        },
        "member": {"id": member.id, "name": member.name} if member else None,
    }


def _confirmation(
    person_id: str, contact: Address, client: Client, context: dict[str, Any]
) -> Notice:
    return Notice(
        kind="confirmation",
        to=(contact,),
        language=client.language,
        recipient_id=person_id,
        context={**context, "recipient": {"id": person_id, "name": contact.name}},
    )


def _to_person(directory: Directory, kind: str, person_id: str, context: dict[str, Any]) -> Notice:
    address = directory.address_of(person_id)
    person = directory.members.get(person_id) or directory.directors.get(person_id)
    language = person.language if person else "ja"
    return Notice(
        kind=kind,
        to=(address,),
        language=language,
        recipient_id=person_id,
        context={**context, "recipient": {"id": person_id, "name": address.name}},
    )
