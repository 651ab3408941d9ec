"""Mail about a request that exists: commands, deliveries, questions, client replies.

Pure. Staff mail is read as commands (DESIGN §4) and deliveries, and needs an
authenticated sender; client mail is read as an answer, an acceptance, a revision or a
follow-up (DESIGN §5). Each step goes through ``transitions.Step``, so what is legal is
decided in one place.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from mailflow.asked import read_due_argument, read_hours
from mailflow.commands import Command, CommandBlock, known_commands, read_commands
from mailflow.directory import Member
from mailflow.model import (
    Attachment,
    EventDraft,
    FileRef,
    Notice,
    Outcome,
    Role,
    ServiceModel,
    State,
)
from mailflow.phrases import Phrase, phrase
from mailflow.precheck import pre_checks
from mailflow.situation import RequestView, Situation
from mailflow.skills import KeywordSet, normalize
from mailflow.transitions import Refusal, Step

PRIORITIES = {
    "high": "high",
    "normal": "normal",
    "low": "low",
    "高": "high",
    "急ぎ": "high",
    "至急": "high",
    "urgent": "high",
    "通常": "normal",
    "低": "low",
}
_URL = re.compile(r"https?://\S+")


# -- staff ------------------------------------------------------------------------------


def staff_mail(situation: Situation, view: RequestView) -> Outcome:
    """A director's, coordinator's or member's mail on a request."""
    sender = situation.sender
    assert sender is not None
    if not situation.authenticated:
        return spoofed(situation, view.ref)
    step = Step(situation, view, sender)
    block = read_commands(situation.mail.text)
    for command in block.commands:
        apply_command(step, command, block)
    if not block.commands:
        _plain_staff_mail(step, block)
    elif _delivers(step, block) and not block.named("done"):
        _record(step, "#done (attachments)", lambda: _deliver(step, None, block.body))
    step.receipt()
    return _outcome(step, view.ref)


def _delivers(step: Step, block: CommandBlock) -> bool:
    return step.actor.role is Role.MEMBER and bool(_files(step.situation.mail.attachments))


def _plain_staff_mail(step: Step, block: CommandBlock) -> None:
    """Without commands: a member's files deliver, a member's words are a question, a
    lead's words answer the member's open question."""
    text = block.body
    if _delivers(step, block):
        _record(step, "(attachments)", lambda: _deliver(step, None, text))
    elif step.actor.role is Role.MEMBER and step.view.model is ServiceModel.DIRECT:
        _record(step, "(message to the client)", lambda: _ask(step, text))
    elif step.actor.role is Role.MEMBER:
        _record(step, "(question to the director)", lambda: _member_question(step, text))
    elif step.view.data.get("member_question"):
        _record(step, "(answer to the member)", lambda: _answer_member(step, text))
    else:
        step.refused.append(phrase("no_command").refused("(no command)"))


def _record(step: Step, line: str, action: Callable[[], Phrase]) -> None:
    try:
        step.applied.append(action().done(line))
    except Refusal as refusal:
        step.refused.append(refusal.phrase.refused(line))


def apply_command(step: Step, command: Command, block: CommandBlock) -> None:
    handler = HANDLERS.get(command.name)
    if handler is None:
        step.refused.append(phrase("unknown_command", known=known_commands()).refused(command.line))
        return
    _record(step, command.line, lambda: handler(step, command, block))


def _assign(step: Step, command: Command, block: CommandBlock) -> Phrase:
    step.check("assign")
    member = _member_named(step, command.argument)
    previous = step.view.assignee
    step.set(assignee=member.id)
    step.move("assign", member=member.id, previous=previous)
    missing = [skill for skill in step.view.skills if skill not in member.skills]
    step.notify_staff("assignment", member.id)
    if missing:
        return phrase(
            "assigned_lacking", member=member.name, member_id=member.id, skills=", ".join(missing)
        )
    return phrase("assigned", member=member.name, member_id=member.id)


def _member_named(step: Step, argument: str) -> Member:
    wanted = argument.strip().lstrip("@").split()[0].lower() if argument.strip() else ""
    members = step.directory.members
    found = members.get(wanted) or next(
        (
            m
            for m in members.values()
            if wanted and wanted in (m.email, m.name.replace(" ", "").lower())
        ),
        None,
    )
    if found is None:
        raise Refusal("no_member", wanted=argument, members=", ".join(members))
    return found


def _due(step: Step, command: Command, block: CommandBlock) -> Phrase:
    step.check("due")
    if step.actor.role is Role.MEMBER and step.view.model is not ServiceModel.DIRECT:
        raise Refusal("director_sets_due")
    situation = step.situation
    due = read_due_argument(command.argument, situation.now, situation.tz, situation.calendar)
    if due is None:
        raise Refusal("unreadable_date", argument=command.argument)
    step.set(due=due)
    step.move("due", due=due.isoformat())
    return phrase("due_set", due=due.strftime("%Y-%m-%d %H:%M"))


def _approve(step: Step, command: Command, block: CommandBlock) -> Phrase:
    step.check("approve")
    pending = step.view.data.get("pending_delivery")
    if not pending:
        raise Refusal("nothing_to_approve")
    files = tuple(FileRef(**f) for f in pending.get("files", []))
    step.move("approve", note=command.argument)
    step.set_data(pending_delivery=None, delivered=pending)
    step.notify_client(
        "delivery",
        files=files,
        delivery={
            "text": pending.get("text", ""),
            "note": command.argument or None,
            "files": [{"filename": f.filename, "size": f.size} for f in files],
        },
    )
    return phrase("approved", files=len(files))


def _revise(step: Step, command: Command, block: CommandBlock) -> Phrase:
    step.check("revise")
    if not command.argument.strip():
        raise Refusal("revise_needs_text")
    step.move("revise", feedback=command.argument)
    step.set_data(pending_delivery=None, client_revision=None)
    step.notify_staff(
        "revision",
        step.view.assignee,
        revision={
            "text": command.argument,
            "by": {"name": step.actor.name, "role": "director"},
            "round": step.view.revision_count,
        },
    )
    return phrase("revised")


def _ask(step: Step, text: str) -> Phrase:
    step.check("ask")
    if not text.strip():
        raise Refusal("ask_needs_text")
    step.move("ask", question=text)
    step.set_data(asker={"id": step.actor.person_id, "role": step.actor.role.value})
    step.notify_client(
        "question",
        question={
            "text": text,
            "asker": {
                "id": step.actor.person_id,
                "name": step.actor.name,
                "role": step.actor.role.value,
            },
        },
    )
    return phrase("asked")


def _estimate(step: Step, command: Command, block: CommandBlock) -> Phrase:
    step.check("estimate")
    hours = read_hours(command.argument)
    if hours is None or hours <= 0:
        raise Refusal("unreadable_hours", argument=command.argument)
    step.set(hours_estimate=hours)
    step.move("estimate", hours=hours)
    step.notify_client("estimate", estimate=_estimate_facts(step, hours, block.body))
    return phrase("estimated", hours=f"{hours:g}")


def _estimate_facts(step: Step, hours: float, note: str) -> dict[str, object]:
    monthly = step.client.monthly_hours
    used = step.situation.hours_used
    local = step.situation.now.astimezone(step.situation.tz)
    return {
        "hours": hours,
        "used": round(used, 2),
        "left": round(monthly - used, 2) if monthly is not None else None,
        "monthly": monthly,
        "month": local.strftime("%Y-%m"),
        "note": note or None,
    }


def _done(step: Step, command: Command, block: CommandBlock) -> Phrase:
    hours = read_hours(command.argument) if command.argument.strip() else None
    if command.argument.strip() and hours is None:
        raise Refusal("unreadable_done_hours", argument=command.argument)
    return _deliver(step, hours, block.body)


def _deliver(step: Step, hours: float | None, text: str) -> Phrase:
    director_model = step.view.model is ServiceModel.DIRECTOR
    step.check("done" if director_model else "deliver")
    files = _files(step.situation.mail.attachments)
    if not files and not _URL.search(text):
        raise Refusal("nothing_to_deliver")
    if hours:
        _log_hours(step, hours)
    delivery = {
        "text": text,
        "files": [f.as_dict() for f in files],
        "hours": hours,
        "at": step.situation.now.isoformat(),
    }
    if director_model:
        step.move("done", files=[f.filename for f in files], hours=hours)
        step.set_data(pending_delivery=delivery)
        checks = pre_checks(step.view, files, text, step.client, step.directory, step.situation.now)
        step.notify_staff(
            "review",
            step.lead(),
            files=files,
            checks=checks,
            delivery={
                "text": text,
                "hours": hours,
                "files": [{"filename": f.filename, "size": f.size} for f in files],
            },
        )
        return phrase("delivered_for_review", files=len(files))
    step.move("deliver", files=[f.filename for f in files], hours=hours)
    step.set_data(delivered=delivery)
    step.notify_client(
        "delivery",
        files=files,
        delivery={
            "text": text,
            "note": None,
            "files": [{"filename": f.filename, "size": f.size} for f in files],
        },
    )
    return phrase("delivered", files=len(files))


def _log_hours(step: Step, hours: float) -> None:
    """Count hours against the month; warn client and coordinator at 80 % and 100 %."""
    step.hours.append((step.actor.person_id, hours))
    step.set(hours_spent=round(step.view.hours_spent + hours, 2))
    monthly = step.client.monthly_hours
    if not monthly:
        return
    before = step.situation.hours_used + sum(h for _, h in step.hours[:-1])
    after = before + hours
    for threshold in (100, 80):
        if before < monthly * threshold / 100 <= after:
            facts = {
                "used": round(after, 2),
                "monthly": monthly,
                "threshold": threshold,
                "percent": round(after / monthly * 100),
                "month": step.situation.now.astimezone(step.situation.tz).strftime("%Y-%m"),
            }
            step.notify_client("hours_warning", hours=facts)
            step.notify_staff("hours_warning", step.client.coordinator, hours=facts)
            step.events.append(EventDraft(kind="hours_warning", actor="mailflow", detail=facts))
            break


def _simple(name: str, done: str) -> Callable[[Step, Command, CommandBlock], Phrase]:
    """A command that only moves the request; ``done`` is the code of what its receipt says."""

    def handler(step: Step, command: Command, block: CommandBlock) -> Phrase:
        step.check(name)
        if name == "hold":
            step.set_data(previous_state=step.view.state.value)
        target = None
        if name == "resume":
            target = State(step.view.data.get("previous_state", State.IN_PROGRESS.value))
            step.set_data(previous_state=None)
        if name == "reject" and not command.argument.strip():
            raise Refusal("reject_needs_reason")
        step.move(name, target=target, reason=command.argument or None)
        if name in {"hold", "close", "reject"}:
            step.notify_client(
                "status_update",
                status={"state": step.view.state.value, "reason": command.argument or None},
            )
        return phrase(done)

    return handler


def _priority(step: Step, command: Command, block: CommandBlock) -> Phrase:
    step.check("priority")
    value = PRIORITIES.get(command.argument.strip().lower())
    if value is None:
        raise Refusal("unknown_priority")
    step.set(priority=value)
    step.move("priority", priority=value)
    return phrase("priority_set", priority=value)


def _skill(step: Step, command: Command, block: CommandBlock) -> Phrase:
    step.check("skill")
    name = command.argument.strip().lower()
    if name not in step.situation.rules.skills:
        raise Refusal("unknown_skill", skill=name, known=", ".join(step.situation.rules.skills))
    step.set(skills=tuple(dict.fromkeys((*step.view.skills, name))))
    step.move("skill", skill=name)
    return phrase("skill_added", skill=name)


def _note(step: Step, command: Command, block: CommandBlock) -> Phrase:
    step.check("note")
    if not command.argument.strip():
        raise Refusal("note_needs_text")
    step.set_data(notes=[*step.view.data.get("notes", []), command.argument])
    step.move("note", note=command.argument)
    return phrase("note_kept")


def _ask_command(step: Step, command: Command, block: CommandBlock) -> Phrase:
    return _ask(step, command.argument)


HANDLERS: dict[str, Callable[[Step, Command, CommandBlock], Phrase]] = {
    "assign": _assign,
    "due": _due,
    "approve": _approve,
    "revise": _revise,
    "ask": _ask_command,
    "estimate": _estimate,
    "done": _done,
    "priority": _priority,
    "skill": _skill,
    "note": _note,
    "hold": _simple("hold", "held"),
    "resume": _simple("resume", "resumed"),
    "close": _simple("close", "closed"),
    "reject": _simple("reject", "rejected"),
}


def _member_question(step: Step, text: str) -> Phrase:
    step.check("question")
    if not text.strip():
        raise Refusal("empty_mail")
    if step.view.state is State.ASSIGNED:
        step.set(state=State.IN_PROGRESS)
    step.move("question", question=text)
    step.set_data(member_question={"id": step.actor.person_id, "text": text})
    step.notify_staff(
        "question",
        step.lead(),
        question={
            "text": text,
            "asker": {"id": step.actor.person_id, "name": step.actor.name, "role": "member"},
        },
    )
    return phrase("question_sent")


def _answer_member(step: Step, text: str) -> Phrase:
    step.check("answer")
    asked = step.view.data["member_question"]
    step.move("answer", answer=text, to=asked["id"])
    step.set_data(member_question=None)
    step.notify_staff("answer", asked["id"], answer={"text": text, "by": {"name": step.actor.name}})
    return phrase("answer_sent")


def _files(attachments: tuple[Attachment, ...]) -> tuple[FileRef, ...]:
    return tuple(
        FileRef(a.sha256, a.filename, a.content_type, a.size) for a in attachments if not a.inline
    )


def _outcome(step: Step, ref: str | None) -> Outcome:
    return Outcome(
        request_ref=ref,
        events=tuple(step.events),
        notices=tuple(step.notices),
        changes=dict(step.changes),
        hours=tuple(step.hours),
        note=f"{len(step.applied)} applied, {len(step.refused)} refused",
    )


# -- spoofing -----------------------------------------------------------------------------


def spoofed(situation: Situation, ref: str | None) -> Outcome:
    """Nothing is done; the attempt is recorded and the real owner is told (once a day)."""
    sender = situation.sender
    assert sender is not None
    mail = situation.mail
    commands = [c.line for c in read_commands(mail.text).commands]
    why = situation.auth_reason or phrase("not_authenticated")
    event = EventDraft(
        kind="spoofed",
        actor=sender.person_id,
        detail={
            "from": str(mail.sender),
            "subject": mail.subject,
            "commands": commands,
            "why": why.text,
        },
    )
    person = situation.directory.person(sender.person_id)
    notices: tuple[Notice, ...] = ()
    if person is not None:
        notices = (
            Notice(
                kind="security_alert",
                to=(situation.directory.address_of(person.id),),
                language=person.language,
                recipient_id=person.id,
                context={
                    "recipient": {"id": person.id, "name": person.name},
                    "attempt": {
                        "sender": str(mail.sender),
                        "subject": mail.subject,
                        "commands": commands,
                        **why.why(),
                    },
                },
            ),
        )
    return Outcome(
        request_ref=ref,
        events=(event,) if ref else (),
        notices=notices,
        hold_reason=phrase("unauthenticated", sender=sender.email, why=why.text),
    )


# -- clients ------------------------------------------------------------------------------


def client_mail(situation: Situation, view: RequestView) -> Outcome:
    """A client's reply: an answer, an acceptance, a revision, an estimate's approval."""
    sender = situation.sender
    assert sender is not None
    step = Step(situation, view, sender)
    text = situation.mail.text
    kind, keyword = classify_reply(text, situation)
    if view.data.get("asker"):
        _client_answer(step, text)
    elif view.state is State.DELIVERED:
        _delivered_reply(step, text, kind, keyword)
    elif view.state is State.ESTIMATED and kind == "acceptance":
        _approve_estimate(step, text)
    else:
        _client_message(step, text, "follow_up" if kind != "unclear" else "unclear")
    return _outcome(step, view.ref)


def classify_reply(text: str, situation: Situation) -> tuple[str, str]:
    """acceptance / revision / unclear by rules.yaml's phrases; revision words win."""
    head = normalize(text[:600])
    replies = situation.rules.replies
    for kind in ("revision", "acceptance"):
        words = [w for language in replies.get(kind, {}).values() for w in language]
        found = KeywordSet(words).find(head)
        if found:
            return kind, found
    return "unclear", ""


def _client_answer(step: Step, text: str) -> None:
    asker = step.view.data["asker"]
    step.move("answer", answer=text, to=asker["id"])
    step.set_data(asker=None)
    step.notify_staff(
        "answer", asker["id"], answer={"text": text, "by": {"name": step.contact().name}}
    )


def _delivered_reply(step: Step, text: str, kind: str, keyword: str) -> None:
    if kind == "acceptance":
        step.move("accept", keyword=keyword)
        step.notify_staff(
            "feedback",
            step.view.assignee,
            feedback={"text": text, "by": {"name": step.contact().name}},
        )
    elif kind == "revision":
        _client_revision(step, text, keyword)
    else:
        _client_message(step, text, "unclear")


def _client_revision(step: Step, text: str, keyword: str) -> None:
    """Back to work, revision round + 1: through the director, or straight to the member."""
    rounds = step.view.revision_count + 1
    step.set(revision_count=rounds)
    revision = {
        "text": text,
        "by": {"name": step.contact().name, "role": "client"},
        "round": rounds,
    }
    if step.view.model is ServiceModel.DIRECTOR:
        step.move("client_revision", target=State.IN_REVIEW, keyword=keyword, round=rounds)
        step.set_data(client_revision=text)
        step.notify_staff("revision", step.lead(), revision=revision)
    else:
        step.move("client_revision", target=State.IN_PROGRESS, keyword=keyword, round=rounds)
        step.notify_staff("revision", step.view.assignee, revision=revision)


def _approve_estimate(step: Step, text: str) -> None:
    step.move("approve_estimate", hours=step.view.hours_estimate)
    step.notify_staff(
        "answer", step.view.assignee, answer={"text": text, "by": {"name": step.contact().name}}
    )


def _client_message(step: Step, text: str, classification: str) -> None:
    """Anything else a client writes goes to whoever acts on it now."""
    to = step.view.assignee if step.view.model is ServiceModel.DIRECT else step.lead()
    step.move("client_message", classification=classification, text=text[:4000])
    step.notify_staff(
        "client_message",
        to or step.lead(),
        message={"text": text, "classification": classification},
    )


def staff_receipt(
    situation: Situation, applied: list[dict[str, object]], refused: list[dict[str, object]]
) -> Notice:
    """A receipt for staff mail that concerns no request (yet)."""
    sender = situation.sender
    assert sender is not None
    mail = situation.mail
    context = {
        "request": {
            "subject": mail.subject,
            "text": "",
            "due": None,
            "skills": [],
            "priority": "normal",
            "model": "director",
            "format": None,
            "state": None,
            "revision_count": 0,
            "hours_estimate": None,
            "hours_spent": 0.0,
            "notes": None,
            "attachments": [],
        },
        "client": {"id": "", "company": "", "contact_name": None, "contact_email": None},
        "member": None,
        "director": None,
        "recipient": {"id": sender.person_id, "name": sender.name},
        "receipt": {"applied": applied, "refused": refused, "state": None, "possible": []},
    }
    return Notice(
        kind="receipt",
        to=(situation.directory.address_of(sender.person_id),),
        language=sender.language,
        recipient_id=sender.person_id,
        context=context,
    )
