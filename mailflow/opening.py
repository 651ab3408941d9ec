"""Opening a request: rules → route, member, deadline, format → the first notices.

Pure. The client's text says what was asked (deadline, delivery format); rules.yaml says
where the request goes and which skills it needs; ``assign`` picks the member.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, time
from functools import lru_cache
from typing import Any

from mailflow.asked import default_due, read_deadline, read_format
from mailflow.assign import Assignment, choose_member, direct_member, explain_lines
from mailflow.directory import Client, Directory
from mailflow.model import (
    Address,
    Decision,
    EventDraft,
    NewRequest,
    Notice,
    Outcome,
    ParsedMail,
    ServiceModel,
    State,
)
from mailflow.phrases import composed
from mailflow.rules import MailFacts, Routing, route
from mailflow.situation import Situation
from mailflow.yamlfile import parse_hours


@dataclass(frozen=True)
class Opening:
    """Who a new request goes to and why, before any notice is written."""

    routing: Routing
    assignment: Assignment | None
    assignee: str | None
    state: State
    missing_skills: tuple[str, ...]
    due: datetime
    due_phrase: str
    format: str | None


def mail_facts(situation: Situation, client: Client, subject: str, text: str) -> MailFacts:
    mail, sender = situation.mail, situation.sender
    return MailFacts(
        subject=subject,
        text=text,
        has_attachments=any(not a.inline for a in mail.attachments),
        sender_role=sender.role.value if sender else "client",
        client_id=client.id,
        plan=client.plan.value,
        sent=mail.date or situation.now,
        timezone=situation.timezone,
    )


def decide_opening(situation: Situation, client: Client, subject: str, text: str) -> Opening:
    routing = route(mail_facts(situation, client, subject, text), situation.rules)
    due, phrase = _due(situation, subject, text, routing)
    text_format = read_format(text, situation.rules.formats, subject=subject)
    base = Opening(routing, None, None, State.NEW, (), due, phrase, text_format)
    if routing.route == "out_of_scope":
        return replace(base, state=State.ON_HOLD, missing_skills=routing.out_of_scope)
    if routing.route == "member" or (
        client.plan is ServiceModel.DIRECT and routing.route == "director" and routing.default_route
    ):
        return _direct(base, client, situation.directory)
    if routing.route == "assign" and routing.member:
        return replace(base, assignee=routing.member, state=State.ASSIGNED)
    assignment = choose_member(
        routing.skills,
        client.language,
        client,
        situation.directory,
        situation.workload,
        situation.now.astimezone(situation.tz).date(),
    )
    if routing.route == "auto_assign" and assignment.member:
        return replace(
            base, assignment=assignment, assignee=assignment.member, state=State.ASSIGNED
        )
    return replace(base, assignment=assignment)


def _direct(base: Opening, client: Client, directory: Directory) -> Opening:
    choice = direct_member(client, base.routing.skills, directory)
    if not choice.in_scope:
        missing = choice.missing or ("(no dedicated member)",)
        return replace(base, state=State.ON_HOLD, missing_skills=missing)
    return replace(base, assignee=choice.member, state=State.ASSIGNED)


def _due(situation: Situation, subject: str, text: str, routing: Routing) -> tuple[datetime, str]:
    """The client's own deadline, else the rule's, else the default business days."""
    sent = situation.mail.date or situation.now
    end_of_day = _end_of_day(situation)
    asked = read_deadline(
        text, sent, situation.tz, situation.calendar, subject=subject, end_of_day=end_of_day
    )
    if asked is not None:
        return asked.due, asked.phrase
    days = routing.due_business_days or situation.rules.defaults.deadline_business_days
    return default_due(sent, situation.tz, situation.calendar, days, end_of_day), ""


def _end_of_day(situation: Situation) -> Any:
    return _closing_time(situation.rules.defaults.working_hours)


@lru_cache(maxsize=16)
def _closing_time(working_hours: str) -> time | None:
    # Read once per rules.yaml value, not once per mail.
    hours = parse_hours(working_hours)
    return hours[1] if hours else None


def open_request(
    situation: Situation,
    client: Client,
    contact: Address,
    actor: str,
    subject: str,
    text: str,
    *,
    forwarded_by: str | None = None,
) -> Outcome:
    """The new request, its first event, and the notices of DESIGN §1 for both models."""
    opening = decide_opening(situation, client, subject, text)
    directory = situation.directory
    director = directory.director_for(client)
    decision = _decision(opening)
    model = ServiceModel.DIRECT if client.plan is ServiceModel.DIRECT else ServiceModel.DIRECTOR
    new = NewRequest(
        client_id=client.id,
        model=model,
        subject=subject.strip() or "(no subject)",
        text=text,
        language=client.language,
        director=director.id if director else None,
        assignee=opening.assignee,
        state=opening.state,
        decision=decision,
        due=opening.due,
        skills=opening.routing.skills,
        priority=opening.routing.priority,
    )
    created = EventDraft(
        kind="created",
        actor=actor,
        to_state=new.state,
        detail={
            "rule": decision.rule,
            "route": decision.route,
            "due_phrase": opening.due_phrase,
            "format": opening.format,
            "tags": list(opening.routing.tags),
        },
    )
    context = request_context(new, situation.mail, client, contact, directory, opening.format)
    notices = _first_notices(opening, client, contact, context, directory, actor)
    if forwarded_by is not None:
        # The director who forwarded it needs no mail telling them about it.
        notices = [n for n in notices if n.kind != "new_request"]
    events = [created]
    if new.assignee:
        events.append(
            EventDraft(
                kind="assigned",
                actor=actor,
                to_state=new.state,
                detail={"member": new.assignee, "by": "rules"},
            )
        )
    files = [
        {"sha256": a.sha256, "filename": a.filename, "content_type": a.content_type, "size": a.size}
        for a in situation.mail.attachments
        if not a.inline
    ]
    data = {
        "contact": {"email": contact.email, "name": contact.name},
        "format": opening.format,
        "files": files,
        "forwarded_by": forwarded_by,
    }
    return Outcome(
        new_request=new,
        events=tuple(events),
        notices=tuple(notices),
        note=f"{decision.rule} → {decision.route}",
        changes={"data": {key: value for key, value in data.items() if value is not None}},
    )


def _decision(opening: Opening) -> Decision:
    routing, assignment = opening.routing, opening.assignment
    suggested = opening.assignee or (assignment.member if assignment else None)
    route_name = "out_of_scope" if opening.missing_skills else routing.route
    reasons = explain_lines(routing, assignment)
    if opening.missing_skills:
        reasons.append("missing skills: " + ", ".join(opening.missing_skills))
    return Decision(
        rule=routing.rule,
        route=route_name,
        reasons=tuple(reasons),
        suggested_member=suggested,
        runner_up=assignment.runner_up if assignment else None,
        skills=routing.skills,
        priority=routing.priority,
        due=opening.due,
    )


def _first_notices(
    opening: Opening,
    client: Client,
    contact: Address,
    context: dict[str, Any],
    directory: Directory,
    actor: str,
) -> list[Notice]:
    if opening.missing_skills:
        return _out_of_scope(opening, client, contact, context, directory)
    notices = [person_notice("confirmation", contact, client.language, actor, context)]
    if opening.assignee:
        notices.append(staff_notice(directory, "assignment", opening.assignee, context))
    if opening.state is State.NEW or client.plan is ServiceModel.DIRECTOR and not opening.assignee:
        director = directory.director_for(client)
        if director is not None:
            notices.append(
                staff_notice(
                    directory,
                    "new_request",
                    director.id,
                    {**context, "suggestion": _suggestion(opening, directory)},
                )
            )
    return notices


def _out_of_scope(
    opening: Opening,
    client: Client,
    contact: Address,
    context: dict[str, Any],
    directory: Directory,
) -> list[Notice]:
    """The client hears which part cannot be done; the coordinator (or director) too."""
    missing = opening.missing_skills
    found = dict(opening.routing.skill_matches)
    scope = {
        "skills": list(missing),
        "reasons": [line for line in _decision(opening).reasons if "skill" in line],
        # The word of the request that called for each skill (None: a rule's action).
        "evidence": [{"skill": skill, "word": found.get(skill)} for skill in missing],
    }
    notices = [
        person_notice(
            "out_of_scope", contact, client.language, contact.email, {**context, "scope": scope}
        )
    ]
    overseer = client.coordinator or (client.director if client.director else None)
    if overseer is None:
        director = directory.director_for(client)
        overseer = director.id if director else None
    if overseer is not None:
        notices.append(
            staff_notice(directory, "out_of_scope", overseer, {**context, "scope": scope})
        )
    return notices


def _suggestion(opening: Opening, directory: Directory) -> dict[str, Any]:
    assignment = opening.assignment

    def person(member_id: str | None) -> dict[str, str] | None:
        member = directory.members.get(member_id) if member_id else None
        return {"id": member.id, "name": member.name} if member else None

    # The director reads why this member and who else could do it; the full trace of
    # every rule tried stays with the request (`mailflow explain`, `requests show`).
    routing = opening.routing
    skills = ", ".join(routing.skills)
    english = f"rule {routing.rule}; skills: {skills or 'none recognised'}"
    said = [composed("routed", english, rule=routing.rule, skills=skills).why()]
    if assignment:
        said += [reason.why() for reason in assignment.why]
    if assignment and assignment.member is None:
        said += [
            {**reason.why(), "why": f"{member}: {reason.text}", "member": member}
            for member, reason in assignment.left_out
        ]
    return {
        "member": person(assignment.member if assignment else None),
        "runner_up": person(assignment.runner_up if assignment else None),
        # ``reasons``: the English (en templates, and mail written before ``why``).
        "reasons": [line["why"] for line in said],
        "why": said,
    }


def request_context(
    new: NewRequest,
    mail: ParsedMail,
    client: Client,
    contact: Address,
    directory: Directory,
    text_format: str | None,
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
            "format": text_format,
            "attachments": [
                {"filename": a.filename, "size": a.size} for a in mail.attachments if not a.inline
            ],
        },
        "client": client.context(contact),
        "member": {"id": member.id, "name": member.name} if member else None,
    }


def person_notice(
    kind: str, to: Address, language: str, recipient_id: str, context: dict[str, Any]
) -> Notice:
    return Notice(
        kind=kind,
        to=(to,),
        language=language,
        recipient_id=recipient_id,
        context={**context, "recipient": {"id": recipient_id, "name": to.name}},
    )


def staff_notice(
    directory: Directory, kind: str, person_id: str, context: dict[str, Any]
) -> Notice:
    address = directory.address_of(person_id)
    person = directory.person(person_id)
    language = person.language if person else "ja"
    return person_notice(kind, address, language, person_id, context)
