"""The request state machine of DESIGN §5, as data, and the steps that walk it.

Pure. ``TRANSITIONS`` names, for each thing that can happen to a request, who may cause it,
from which states, in which service model, the state it leads to, the event recorded and
the notices sent. A ``Step`` applies transitions one after another to a request (commands
in one mail, or a client's reply), collecting changes, events, notices and the lines of
the receipt; an illegal transition changes nothing and is refused with the reason and
what is possible now.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from mailflow.digest import client_contact
from mailflow.directory import Client, Directory
from mailflow.model import (
    OPEN_STATES,
    Address,
    EventDraft,
    FileRef,
    Notice,
    Role,
    Sender,
    ServiceModel,
    State,
)
from mailflow.phrases import phrase
from mailflow.schedule import request_context
from mailflow.situation import RequestView, Situation

S = State
STAFF_LEADS = frozenset({Role.DIRECTOR, Role.COORDINATOR})
WORKING = frozenset({S.ASSIGNED, S.ESTIMATED, S.IN_PROGRESS})
BOTH_MODELS = frozenset(ServiceModel)


@dataclass(frozen=True)
class Transition:
    name: str
    actors: frozenset[Role]
    sources: frozenset[State]
    target: State | None  # None: the state does not change
    event: str
    notices: tuple[str, ...] = ()
    models: frozenset[ServiceModel] = BOTH_MODELS


def _t(
    name: str,
    actors: Iterable[Role],
    sources: Iterable[State],
    target: State | None,
    event: str,
    notices: tuple[str, ...] = (),
    models: Iterable[ServiceModel] = BOTH_MODELS,
) -> Transition:
    return Transition(
        name, frozenset(actors), frozenset(sources), target, event, notices, frozenset(models)
    )


DIRECTOR_ONLY = (ServiceModel.DIRECTOR,)
DIRECT_ONLY = (ServiceModel.DIRECT,)
ANY_OPEN = OPEN_STATES
LEADS = (Role.DIRECTOR, Role.COORDINATOR)

TRANSITIONS: Mapping[str, Transition] = {
    t.name: t
    for t in (
        # Commands (DESIGN §4).
        _t(
            "assign",
            LEADS,
            {S.NEW, S.ASSIGNED, S.ESTIMATED, S.IN_PROGRESS, S.ON_HOLD},
            S.ASSIGNED,
            "assigned",
            ("assignment",),
        ),
        _t("due", (*LEADS, Role.MEMBER), ANY_OPEN, None, "due_set"),
        _t("approve", LEADS, {S.IN_REVIEW}, S.DELIVERED, "approved", ("delivery",), DIRECTOR_ONLY),
        _t(
            "revise",
            LEADS,
            {S.IN_REVIEW},
            S.IN_PROGRESS,
            "revision_requested",
            ("revision",),
            DIRECTOR_ONLY,
        ),
        _t("ask", (*LEADS, Role.MEMBER), ANY_OPEN, None, "asked", ("question",)),
        _t(
            "estimate",
            (Role.MEMBER,),
            WORKING,
            S.ESTIMATED,
            "estimated",
            ("estimate",),
            DIRECT_ONLY,
        ),
        _t(
            "done",
            (Role.MEMBER,),
            WORKING,
            S.IN_REVIEW,
            "delivered_for_review",
            ("review",),
            DIRECTOR_ONLY,
        ),
        _t(
            "deliver", (Role.MEMBER,), WORKING, S.DELIVERED, "delivered", ("delivery",), DIRECT_ONLY
        ),
        _t("hold", LEADS, ANY_OPEN - {S.ON_HOLD}, S.ON_HOLD, "held", ("status_update",)),
        _t("resume", LEADS, {S.ON_HOLD}, None, "resumed", ("status_update",)),
        _t("close", LEADS, ANY_OPEN, S.CLOSED, "closed", ("status_update",)),
        _t("reject", LEADS, ANY_OPEN, S.REJECTED, "rejected", ("status_update",)),
        _t("priority", LEADS, ANY_OPEN, None, "priority_set"),
        _t("skill", LEADS, ANY_OPEN, None, "skill_added"),
        _t("note", LEADS, ANY_OPEN, None, "note_added"),
        # What a client's reply can cause (DESIGN §5), and relayed conversation.
        _t("accept", (Role.CLIENT,), {S.DELIVERED}, S.CLOSED, "accepted", ("feedback",)),
        _t("client_revision", (Role.CLIENT,), {S.DELIVERED}, None, "revision_asked", ("revision",)),
        _t(
            "approve_estimate",
            (Role.CLIENT,),
            {S.ESTIMATED},
            S.IN_PROGRESS,
            "estimate_approved",
            ("answer",),
            DIRECT_ONLY,
        ),
        _t("answer", (Role.CLIENT, *LEADS), ANY_OPEN, None, "answered", ("answer",)),
        _t(
            "question",
            (Role.MEMBER,),
            ANY_OPEN,
            None,
            "member_question",
            ("question",),
            DIRECTOR_ONLY,
        ),
        _t("client_message", (Role.CLIENT,), ANY_OPEN, None, "client_message", ("client_message",)),
    )
}

COMMANDS = (
    "assign",
    "due",
    "approve",
    "revise",
    "ask",
    "estimate",
    "done",
    "hold",
    "resume",
    "close",
    "reject",
    "priority",
    "skill",
    "note",
)


class Refusal(Exception):
    """A transition that may not happen now: ``phrase`` says why (``str()`` in English)."""

    def __init__(self, code: str, **facts: object) -> None:
        self.phrase = phrase(code, **facts)
        super().__init__(self.phrase.text)


def possible_commands(role: Role, view: RequestView, is_assignee: bool) -> list[str]:
    """The commands this person could give now, for a receipt."""
    names = []
    for name in COMMANDS:
        transition = TRANSITIONS[
            "deliver" if name == "done" and view.model is ServiceModel.DIRECT else name
        ]
        if _refusal(transition, role, view, is_assignee) is None:
            names.append(f"#{name}")
    return names


def _refusal(
    transition: Transition, role: Role, view: RequestView, is_assignee: bool
) -> Refusal | None:
    if role not in transition.actors:
        allowed = " or ".join(sorted(r.value for r in transition.actors))
        return Refusal("not_your_role", allowed=allowed)
    if role is Role.MEMBER and not is_assignee and transition.name != "due":
        return Refusal("not_assignee")
    if view.model not in transition.models:
        return Refusal("not_in_model", model=view.model.value)
    if view.state not in transition.sources:
        return Refusal("not_in_state", state=view.state.value)
    return None


@dataclass
class Step:
    """One mail's effect on one request, built transition by transition."""

    situation: Situation
    view: RequestView
    actor: Sender
    changes: dict[str, Any] = field(default_factory=dict)
    events: list[EventDraft] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)
    applied: list[dict[str, object]] = field(default_factory=list)
    refused: list[dict[str, object]] = field(default_factory=list)
    hours: list[tuple[str, float]] = field(default_factory=list)

    @property
    def directory(self) -> Directory:
        return self.situation.directory

    @property
    def client(self) -> Client:
        return self.directory.clients[self.view.client]

    @property
    def is_assignee(self) -> bool:
        return self.actor.person_id == self.view.assignee

    @property
    def role(self) -> Role:
        """Coordinators act as directors for their own clients."""
        if self.actor.role is Role.COORDINATOR and self.client.coordinator != self.actor.person_id:
            return Role.CLIENT  # not theirs: no lead rights
        return self.actor.role

    # -- state ------------------------------------------------------------------------

    def check(self, name: str) -> Transition:
        transition = TRANSITIONS[name]
        refusal = _refusal(transition, self.role, self.view, self.is_assignee)
        if refusal is not None:
            raise refusal
        return transition

    def move(self, name: str, target: State | None = None, **detail: Any) -> Transition:
        """Record a transition that ``check`` allowed: state change and event."""
        transition = TRANSITIONS[name]
        before = self.view.state
        after = target or transition.target or before
        if after != before:
            self.set(state=after)
        self.events.append(
            EventDraft(
                kind=transition.event,
                actor=self.actor.person_id,
                from_state=before,
                to_state=after if after != before else None,
                detail=detail,
            )
        )
        return transition

    def set(self, **fields: Any) -> None:
        self.changes.update(fields)
        self.view = replace(self.view, **fields)

    def set_data(self, **entries: Any) -> None:
        data = {**self.view.data, **entries}
        self.set(data={key: value for key, value in data.items() if value is not None})

    # -- notices --------------------------------------------------------------------------

    def context(self) -> dict[str, Any]:
        return request_context(self.view, self.directory, self.situation.tz)

    def contact(self) -> Address:
        return client_contact(self.view, self.client) or Address("")

    def notify_client(self, kind: str, files: tuple[FileRef, ...] = (), **extra: Any) -> None:
        contact = self.contact()
        if not contact.email:
            return
        context = {
            **self.context(),
            **extra,
            "recipient": {"id": contact.email, "name": contact.name},
        }
        self.notices.append(
            Notice(
                kind=kind,
                to=(contact,),
                language=self.client.language,
                recipient_id=contact.email,
                context=context,
                files=files,
            )
        )

    def notify_staff(
        self, kind: str, person_id: str | None, files: tuple[FileRef, ...] = (), **extra: Any
    ) -> None:
        if person_id is None or self.directory.person(person_id) is None:
            return
        person = self.directory.person(person_id)
        assert person is not None
        address = Address(person.email, person.name)
        context = {**self.context(), **extra, "recipient": {"id": person.id, "name": person.name}}
        self.notices.append(
            Notice(
                kind=kind,
                to=(address,),
                language=person.language,
                recipient_id=person.id,
                context=context,
                files=files,
            )
        )

    def lead(self) -> str | None:
        """Who answers for the request: the coordinator of a direct client, else its
        director (or the client's director when the request has none)."""
        if self.view.model is ServiceModel.DIRECT and self.client.coordinator:
            return self.client.coordinator
        if self.view.director:
            return self.view.director
        director = self.directory.director_for(self.client)
        return director.id if director else None

    def receipt(self) -> None:
        """One receipt to the person whose commands were read: applied, refused, possible."""
        if not (self.applied or self.refused):
            return
        self.notify_staff(
            "receipt",
            self.actor.person_id,
            receipt={
                "applied": self.applied,
                "refused": self.refused,
                "state": self.view.state.value,
                "possible": possible_commands(self.role, self.view, self.is_assignee),
            },
        )


def month_bounds(moment: datetime) -> tuple[datetime, datetime]:
    """The calendar month around ``moment`` (aware), as [start, end)."""
    start = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (start + timedelta(days=32)).replace(day=1)
    return start, end
