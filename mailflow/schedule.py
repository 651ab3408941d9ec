"""Scheduled work as plain values: what one tick of the clock has to do.

DESIGN §2: reminders, overdue escalation, estimate nudges, the month marker and daily
digests enter the pipeline at step 7 as synthetic events, so they take the same
plan → commit → send path as mail. ``plan_tick`` is that plan. It is pure: the caller
hands in the clock, the open requests, the directory, the rules and what it has already
run, and gets back a list of :class:`Scheduled` items to commit.

Idempotency is by key. Every item has a ``key`` that names the work and the moment it
belongs to (``reminder:MF-0012:2026-11-28T18:00:00+09:00``, ``digest:tanaka:2026-11-27``);
the caller commits the item and its key in one transaction and passes the keys it holds
back as ``done``. A tick repeated, or run after a crash or a restart, plans nothing that
was already committed, and a tick that was missed is caught up by the next one.

What is planned, and when (all times in the desk's zone):

- ``reminder`` to the assignee, once per deadline, from ``reminder_hours_before`` hours
  before it until it passes, at a working moment only: a business day of the calendar,
  within the member's own ``hours`` when set, else ``defaults.working_hours`` (a member's
  hours replace the desk's: someone who works evenings is reminded in the evening). Only
  while the member has the work (``assigned``, ``in_progress``): an estimate waits on the
  client, a delivery on the director or the client, a held request on the director. A
  changed deadline is a new key, so it is reminded again.
- ``overdue`` to the request's lead (a direct client's coordinator, else the director),
  once per business day, within working hours, while the deadline has passed and the
  work is still to be done (``digest.OVERDUE_STATES``: not in review, delivered or on
  hold). An ``overdue`` event is recorded on the request.
- an estimate nudge (kind ``estimate``, ``estimate.nudge = true``) to the client when a
  request has waited in ``estimated`` for more than ``ESTIMATE_NUDGE_BUSINESS_DAYS``
  business days, once per estimate, within working hours.
- a ``month:YYYY-MM`` marker on the first tick of a month. Contract hours are summed per
  calendar month from the time entries, so nothing is reset in the data; the marker only
  makes the turn of the month visible in the log of run keys.
- a ``digest`` per reader at ``digest_time`` on business days (see ``mailflow.digest``):
  every director, every member with open work who is not away, every client company with
  ``digest: true`` and something open, to its first real contact. A reader with nothing
  to say gets an item without a notice, so the day is settled and no digest arrives
  later that day. Only today's digests are planned: a day missed is not sent late.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from mailflow.calendar_jp import BusinessCalendar
from mailflow.digest import (
    client_contact,
    digest_for,
    digest_notice,
    is_overdue,
    lead_of,
    local_time,
)
from mailflow.directory import Directory
from mailflow.model import Address, EventDraft, Notice, State
from mailflow.rules import RuleSet
from mailflow.situation import RequestView
from mailflow.yamlfile import parse_hours

__all__ = [
    "ACTOR",
    "ESTIMATE_NUDGE_BUSINESS_DAYS",
    "REMINDED_STATES",
    "Scheduled",
    "plan_tick",
    "request_context",
]

# The actor of the events the scheduler records.
ACTOR = "mailflow"
ESTIMATE_NUDGE_BUSINESS_DAYS = 2
REMINDED_STATES = frozenset({State.ASSIGNED, State.IN_PROGRESS})
_DESK_HOURS = (time(9), time(18))


@dataclass(frozen=True)
class Scheduled:
    """One piece of scheduled work: commit ``notice`` and ``event`` (for request ``ref``)
    together with ``key``; never run a key twice. Both may be None: a marker."""

    key: str
    ref: str | None
    notice: Notice | None
    event: EventDraft | None


@dataclass(frozen=True)
class _Tick:
    """Everything one tick looks at; ``now`` is in the desk's zone."""

    now: datetime
    requests: Sequence[RequestView]
    directory: Directory
    rules: RuleSet
    tz: ZoneInfo
    calendar: BusinessCalendar
    digest_time: time
    held: Sequence[Mapping[str, Any]]
    hours_used: Mapping[str, float]

    @property
    def today(self) -> str:
        return self.now.date().isoformat()

    def working(self, hours: str | None = None) -> bool:
        """A business day, within ``hours`` (a member's own) or the desk's working hours."""
        span = parse_hours(hours or self.rules.defaults.working_hours) or _DESK_HOURS
        start, end = span
        return self.calendar.is_business_day(self.now.date()) and start <= self.now.time() < end

    def due(self, view: RequestView) -> datetime:
        assert view.due is not None
        return local_time(view.due, self.tz)

    def live(self) -> Iterator[RequestView]:
        """The committed requests (a ref) with a deadline."""
        return (view for view in self.requests if view.ref is not None and view.due is not None)


def plan_tick(
    now: datetime,
    requests: Sequence[RequestView],
    directory: Directory,
    rules: RuleSet,
    tz: ZoneInfo,
    calendar: BusinessCalendar,
    *,
    digest_time: time,
    done: Collection[str],
    held: Sequence[Mapping[str, Any]] = (),
    hours_used: Mapping[str, float] = {},
    state_since: Mapping[str, datetime] = {},
) -> list[Scheduled]:
    """What is due at ``now`` and not yet in ``done``, in a stable order.

    ``requests`` are the open requests; ``held`` the held and quarantined inbox rows;
    ``hours_used`` the hours logged this month per client id; ``state_since`` when each
    request (by ref) entered its current state (used for the estimate nudge; without it
    ``data["estimated_at"]`` is read, and a request with neither is not nudged).
    """
    tick = _Tick(
        local_time(now, tz),
        requests,
        directory,
        rules,
        tz,
        calendar,
        digest_time,
        held,
        hours_used,
    )
    planned = [
        *_month_marker(tick),
        *_reminders(tick),
        *_overdue(tick),
        *_estimate_nudges(tick, state_since),
        *_digests(tick),
    ]
    seen = set(done)
    result = []
    for item in planned:
        if item.key not in seen:
            seen.add(item.key)
            result.append(item)
    return result


# -- the request's context (the shape of transitions.Step.context) -------------------------


def request_context(view: RequestView, directory: Directory, tz: ZoneInfo) -> dict[str, Any]:
    """The ``request``, ``client``, ``member`` and ``director`` blocks of templates/CONTEXT.md."""
    client = directory.clients[view.client]
    member = directory.members.get(view.assignee) if view.assignee else None
    director = directory.directors.get(view.director) if view.director else None
    contact = client_contact(view, client) or Address("")
    return {
        "request": {
            "subject": view.subject,
            "text": view.text,
            "due": local_time(view.due, tz).isoformat() if view.due else None,
            "skills": list(view.skills),
            "priority": view.priority,
            "model": view.model.value,
            "format": view.data.get("format"),
            "state": view.state.value,
            "revision_count": view.revision_count,
            "hours_estimate": view.hours_estimate,
            "hours_spent": view.hours_spent,
            "notes": "\n".join(view.data.get("notes", [])) or None,
            "attachments": [
                {"filename": f["filename"], "size": f.get("size", 0)}
                for f in view.data.get("files", [])
            ],
        },
        "client": client.context(contact),
        "member": {"id": member.id, "name": member.name} if member else None,
        "director": {"id": director.id, "name": director.name} if director else None,
    }


def _staff_notice(
    tick: _Tick, kind: str, person_id: str, view: RequestView, **extra: Any
) -> Notice | None:
    person = tick.directory.person(person_id)
    if person is None:
        return None
    context = {
        **request_context(view, tick.directory, tick.tz),
        **extra,
        "recipient": {"id": person.id, "name": person.name},
    }
    return Notice(
        kind=kind,
        to=(Address(person.email, person.name),),
        language=person.language,
        recipient_id=person.id,
        context=context,
    )


def _hours(span: timedelta) -> float:
    return round(span.total_seconds() / 3600, 1)


# -- the planners --------------------------------------------------------------------------


def _month_marker(tick: _Tick) -> Iterator[Scheduled]:
    yield Scheduled(f"month:{tick.now:%Y-%m}", None, None, None)


def _reminders(tick: _Tick) -> Iterator[Scheduled]:
    lead_time = timedelta(hours=tick.rules.defaults.reminder_hours_before)
    for view in tick.live():
        member = tick.directory.members.get(view.assignee or "")
        if view.state not in REMINDED_STATES or member is None:
            continue
        due = tick.due(view)
        if not (due - lead_time <= tick.now < due) or not tick.working(member.hours):
            continue
        facts = {"due": due.isoformat(), "hours_left": _hours(due - tick.now)}
        notice = _staff_notice(tick, "reminder", member.id, view, reminder=facts)
        event = EventDraft("reminder", ACTOR, {**facts, "to": member.id})
        yield Scheduled(f"reminder:{view.ref}:{due.isoformat()}", view.ref, notice, event)


def _overdue(tick: _Tick) -> Iterator[Scheduled]:
    if not tick.working():
        return
    for view in tick.live():
        lead = lead_of(view, tick.directory)
        if not is_overdue(view, tick.now) or lead is None:
            continue
        due = tick.due(view)
        facts = {"due": due.isoformat(), "hours_late": _hours(tick.now - due)}
        notice = _staff_notice(tick, "overdue", lead, view, overdue=facts)
        if notice is None:
            continue
        event = EventDraft("overdue", ACTOR, {**facts, "to": lead})
        yield Scheduled(f"overdue:{view.ref}:{tick.today}", view.ref, notice, event)


def _estimated_at(view: RequestView, state_since: Mapping[str, datetime]) -> datetime | None:
    since = state_since.get(view.ref or "")
    if since is not None:
        return since
    stored = view.data.get("estimated_at")
    try:
        return datetime.fromisoformat(stored) if isinstance(stored, str) else None
    except ValueError:
        return None


def _estimate_nudges(tick: _Tick, state_since: Mapping[str, datetime]) -> Iterator[Scheduled]:
    if not tick.working():
        return
    for view in tick.requests:
        since = _estimated_at(view, state_since)
        if view.ref is None or view.state is not State.ESTIMATED or since is None:
            continue
        since = local_time(since, tick.tz)
        waited_until = tick.calendar.add_business_days(since.date(), ESTIMATE_NUDGE_BUSINESS_DAYS)
        if tick.now <= datetime.combine(waited_until, since.timetz()):
            continue
        notice = _estimate_nudge(tick, view)
        if notice is None:
            continue
        hours = f"{view.hours_estimate or 0:g}"
        event = EventDraft("estimate_nudge", ACTOR, {"to": notice.recipient_id, "hours": hours})
        yield Scheduled(f"estimate_nudge:{view.ref}:{hours}", view.ref, notice, event)


def _estimate_nudge(tick: _Tick, view: RequestView) -> Notice | None:
    """The estimate again, marked as a nudge, to the contact who asked (conversation.py's
    ``estimate`` facts, with ``nudge``)."""
    client = tick.directory.clients.get(view.client)
    contact = client_contact(view, client) if client is not None else None
    if client is None or contact is None:
        return None
    used = round(tick.hours_used.get(client.id, 0.0), 2)
    monthly = client.monthly_hours
    estimate = {
        "hours": view.hours_estimate or 0.0,
        "used": used,
        "left": round(monthly - used, 2) if monthly is not None else None,
        "monthly": monthly,
        "month": f"{tick.now:%Y-%m}",
        "note": None,
        "nudge": True,
    }
    context = {
        **request_context(view, tick.directory, tick.tz),
        "estimate": estimate,
        "recipient": {"id": contact.email, "name": contact.name},
    }
    return Notice(
        kind="estimate",
        to=(contact,),
        language=client.language,
        recipient_id=contact.email,
        context=context,
    )


# -- digests -------------------------------------------------------------------------------


def _digests(tick: _Tick) -> Iterator[Scheduled]:
    if not tick.calendar.is_business_day(tick.now.date()) or tick.now.time() < tick.digest_time:
        return
    directory = tick.directory
    readers = [
        *(("director", d) for d in directory.directors),
        *(("member", m.id) for m in directory.members.values() if not m.is_away(tick.now.date())),
        *(("client", c.id) for c in directory.clients.values() if c.digest),
    ]
    for role, person_id in readers:
        yield _digest(tick, role, person_id)


def _digest(tick: _Tick, role: str, person_id: str) -> Scheduled:
    key = f"digest:{person_id}:{tick.today}"
    digest = digest_for(
        role,
        person_id,
        tick.now,
        tick.requests,
        tick.directory,
        tick.tz,
        held=tick.held,
        hours_used=tick.hours_used,
        calendar=tick.calendar,
    )
    notice = digest_notice(role, person_id, digest, tick.directory) if digest else None
    return Scheduled(key, None, notice, None)
