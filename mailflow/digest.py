"""What each person's daily digest says: plain data for the ``digest`` templates.

Pure: the caller hands in the open requests, the held mail and the hours logged this
month; nothing here reads the store or the clock. Three readers get a digest:

- a **director** (always, even on a quiet day): new requests to triage, deliveries to
  review, requests overdue, due today, due by the next business day, the mail held or
  quarantined, and every member's load. A director sees the requests they lead (the
  same person ``transitions.Step.lead`` names: a direct client's coordinator, else the
  request's director, else the client's director).
- a **member**: their open requests by deadline (None when they have none).
- a **client** company: its open requests by state, deliveries awaiting its answer,
  estimates awaiting approval, and the contract hours of the month (None when nothing
  is open).

``digest_notice`` turns a digest into the ``Notice`` to send; ``preview`` finds whose
digest an address would get (``mailflow digest --preview EMAIL``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from mailflow.calendar_jp import BusinessCalendar
from mailflow.directory import Client, Directory
from mailflow.model import OPEN_STATES, Address, Notice, Role, ServiceModel, State
from mailflow.situation import RequestView

__all__ = [
    "DIRECTOR_SECTIONS",
    "HELD_SHOWN",
    "OVERDUE_STATES",
    "ROLES",
    "client_contact",
    "digest_for",
    "digest_notice",
    "is_overdue",
    "lead_of",
    "local_time",
    "preview",
    "request_line",
]

ROLES = ("director", "member", "client")
# How many held or quarantined mails a director's digest lists (the count is always given).
HELD_SHOWN = 5
DIRECTOR_SECTIONS = ("new", "review", "overdue", "due_today", "due_tomorrow")
# A deadline is missed only while someone still has to act on the work: a delivery in
# review or with the client has been made, and a request on hold was paused on purpose.
OVERDUE_STATES = OPEN_STATES - {State.IN_REVIEW, State.DELIVERED, State.ON_HOLD}
# Work still to be done (due today / tomorrow, member load): delivered work waits on the
# client and held work waits on the director.
PENDING_STATES = OPEN_STATES - {State.DELIVERED, State.ON_HOLD}
# A member's own list: everything open except what the client already has.
MEMBER_STATES = OPEN_STATES - {State.DELIVERED}


def local_time(moment: datetime, tz: tzinfo) -> datetime:
    """``moment`` in the desk's zone; a naive value is read as desk time."""
    return moment.replace(tzinfo=tz) if moment.tzinfo is None else moment.astimezone(tz)


def is_overdue(view: RequestView, now: datetime) -> bool:
    """Past its deadline while someone still has to act on it (``now`` is aware)."""
    if view.due is None or view.state not in OVERDUE_STATES:
        return False
    return local_time(view.due, _zone(now)) < now


def lead_of(view: RequestView, directory: Directory) -> str | None:
    """Who answers for a request: a direct client's coordinator, else its director."""
    client = directory.clients.get(view.client)
    if view.model is ServiceModel.DIRECT and client is not None and client.coordinator:
        return client.coordinator
    if view.director:
        return view.director
    director = directory.director_for(client) if client is not None else None
    return director.id if director else None


def client_contact(view: RequestView | None, client: Client) -> Address | None:
    """The contact who wrote the request, else the client's first real address."""
    stored = (view.data.get("contact") or {}) if view is not None else {}
    if stored.get("email"):
        return Address(stored["email"], stored.get("name", ""))
    # "@domain" contacts stand for a whole domain: nobody to write to.
    first = next((c for c in client.contacts if "@" in c and not c.startswith("@")), None)
    return Address(first) if first else None


@dataclass(frozen=True)
class _Day:
    """The moment a digest is written, and the days it speaks of (desk time)."""

    now: datetime
    today: date
    next_day: date

    @classmethod
    def of(cls, now: datetime, tz: ZoneInfo, calendar: BusinessCalendar | None) -> _Day:
        local = local_time(now, tz)
        today = local.date()
        # "Tomorrow" is the next business day when a calendar is given, so Friday's
        # digest warns about Monday's deadlines.
        if calendar is None:
            next_day = today + timedelta(days=1)
        else:
            next_day = calendar.next_business_day(today)
        return cls(local, today, next_day)


def request_line(
    view: RequestView, directory: Directory, now: datetime, *, for_client: bool = False
) -> dict[str, Any]:
    """One request as a digest lists it.

    A client sees the member's name only in the direct model, where the member is their
    dedicated contact; in the director model the team behind the director stays internal.
    """
    client = directory.clients.get(view.client)
    member = directory.members.get(view.assignee) if view.assignee else None
    if for_client and view.model is not ServiceModel.DIRECT:
        member = None
    due = local_time(view.due, _zone(now)) if view.due else None
    late = is_overdue(view, now)
    return {
        "ref": view.ref,
        "subject": view.subject,
        "state": view.state.value,
        "due": due.isoformat() if due else None,
        "priority": view.priority,
        "model": view.model.value,
        "client": {"id": view.client, "company": client.company if client else view.client},
        "member": {"id": member.id, "name": member.name} if member else None,
        "hours_estimate": view.hours_estimate,
        "overdue": late,
        "hours_late": _hours(now - due) if late and due else None,
    }


def _zone(now: datetime) -> tzinfo:
    return now.tzinfo or UTC


def _hours(span: timedelta) -> float:
    return round(span.total_seconds() / 3600, 1)


def _by_deadline(views: Sequence[RequestView]) -> list[RequestView]:
    far = datetime.max.replace(tzinfo=UTC)
    return sorted(views, key=lambda v: (v.due is None, v.due or far, v.ref or ""))


def digest_for(
    role: str,
    person_id: str,
    now: datetime,
    requests: Sequence[RequestView],
    directory: Directory,
    tz: ZoneInfo,
    *,
    held: Sequence[Mapping[str, Any]] = (),
    hours_used: Mapping[str, float] = {},
    calendar: BusinessCalendar | None = None,
) -> dict[str, Any] | None:
    """The ``digest`` context block for one reader, or None when there is nothing to say.

    ``role`` is ``director``, ``member`` or ``client`` (then ``person_id`` is the client
    company's id). ``held`` are the store's held and quarantined inbox rows (``id``,
    ``state``, ``reason``, ``sender``, ``subject``, ``received_at``); ``hours_used`` maps a
    client id to the hours logged this calendar month. An unknown person gets None.
    """
    day = _Day.of(now, tz, calendar)
    open_requests = [view for view in requests if view.state in OPEN_STATES and view.ref]
    if role == Role.DIRECTOR:
        if person_id not in directory.directors:
            return None
        return _director(person_id, day, open_requests, directory, held)
    if role == Role.MEMBER:
        if person_id not in directory.members:
            return None
        return _member(person_id, day, open_requests, directory)
    if role == Role.CLIENT:
        client = directory.clients.get(person_id)
        if client is None:
            return None
        return _client(client, day, open_requests, directory, hours_used)
    raise ValueError(f"unknown digest role {role!r}: use one of {', '.join(ROLES)}")


def _frame(role: str, day: _Day) -> dict[str, Any]:
    return {
        "role": role,
        "date": day.today.isoformat(),
        "next_day": day.next_day.isoformat(),
        "at": day.now.isoformat(),
    }


def _section(
    key: str, views: Sequence[RequestView], lines: Mapping[int, dict[str, Any]]
) -> dict[str, Any]:
    return {"key": key, "items": [lines[id(view)] for view in views]}


# -- director ------------------------------------------------------------------------------


def _director(
    person_id: str,
    day: _Day,
    requests: Sequence[RequestView],
    directory: Directory,
    held: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    mine = _by_deadline([v for v in requests if lead_of(v, directory) == person_id])
    groups = _director_groups(mine, day)
    lines = {id(view): request_line(view, directory, day.now) for view in mine}
    sections = [_section(key, groups[key], lines) for key in DIRECTOR_SECTIONS]
    counts = {key: len(groups[key]) for key in DIRECTOR_SECTIONS} | {"held": len(held)}
    return _frame("director", day) | {
        "counts": counts,
        "sections": sections,
        "held": {"count": len(held), "items": [_held_line(row) for row in held[:HELD_SHOWN]]},
        "load": _member_load(requests, directory, day.today),
    }


def _director_groups(views: Sequence[RequestView], day: _Day) -> dict[str, list[RequestView]]:
    groups: dict[str, list[RequestView]] = {key: [] for key in DIRECTOR_SECTIONS}
    for view in views:
        if view.state is State.NEW:
            groups["new"].append(view)
        if view.state is State.IN_REVIEW:
            groups["review"].append(view)
        if is_overdue(view, day.now):
            groups["overdue"].append(view)
        elif view.due is not None and view.state in PENDING_STATES:
            due_day = local_time(view.due, _zone(day.now)).date()
            if due_day == day.today:
                groups["due_today"].append(view)
            elif day.today < due_day <= day.next_day:
                groups["due_tomorrow"].append(view)
    return groups


def _held_line(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": row.get("id"),
        "state": row.get("state") or "held",
        "sender": row.get("sender") or "",
        "subject": row.get("subject") or "",
        "reason": row.get("reason") or "",
        # The reason as a phrase (said in the reader's language; none for a quarantine).
        "code": row.get("reason_code") or "",
        "facts": row.get("reason_facts") or {},
        "received_at": row.get("received_at"),
    }


def _member_load(
    requests: Sequence[RequestView], directory: Directory, today: date
) -> list[dict[str, Any]]:
    load = []
    for member in directory.members.values():
        work = [v for v in requests if v.assignee == member.id and v.state in PENDING_STATES]
        load.append(
            {
                "id": member.id,
                "name": member.name,
                "open": len(work),
                "hours_estimate": round(sum(v.hours_estimate or 0.0 for v in work), 2),
                "capacity": member.capacity,
                "away": member.is_away(today),
            }
        )
    return load


# -- member --------------------------------------------------------------------------------


def _member(
    person_id: str, day: _Day, requests: Sequence[RequestView], directory: Directory
) -> dict[str, Any] | None:
    mine = _by_deadline(
        [v for v in requests if v.assignee == person_id and v.state in MEMBER_STATES]
    )
    if not mine:
        return None
    lines = [request_line(view, directory, day.now) for view in mine]
    due_today = [
        v
        for v in mine
        if v.due is not None
        and not is_overdue(v, day.now)
        and v.state in PENDING_STATES
        and local_time(v.due, _zone(day.now)).date() == day.today
    ]
    counts = {
        "open": len(mine),
        "overdue": sum(line["overdue"] for line in lines),
        "due_today": len(due_today),
    }
    return _frame("member", day) | {
        "counts": counts,
        "sections": [{"key": "open", "items": lines}],
    }


# -- client --------------------------------------------------------------------------------

CLIENT_SECTIONS = ("awaiting_answer", "estimates", "in_progress")


def _client_section(view: RequestView) -> str:
    if view.state is State.DELIVERED:
        return "awaiting_answer"
    if view.state is State.ESTIMATED:
        return "estimates"
    return "in_progress"


def _client(
    client: Client,
    day: _Day,
    requests: Sequence[RequestView],
    directory: Directory,
    hours_used: Mapping[str, float],
) -> dict[str, Any] | None:
    theirs = _by_deadline([v for v in requests if v.client == client.id])
    if not theirs:
        return None
    grouped: dict[str, list[dict[str, Any]]] = {key: [] for key in CLIENT_SECTIONS}
    for view in theirs:
        line = request_line(view, directory, day.now, for_client=True)
        grouped[_client_section(view)].append(line)
    return _frame("client", day) | {
        "counts": {key: len(items) for key, items in grouped.items()},
        "sections": [{"key": key, "items": items} for key, items in grouped.items() if items],
        "hours": _client_hours(client, day, hours_used),
    }


def _client_hours(
    client: Client, day: _Day, hours_used: Mapping[str, float]
) -> dict[str, Any] | None:
    if client.monthly_hours is None:
        return None
    used = round(hours_used.get(client.id, 0.0), 2)
    monthly = client.monthly_hours
    return {
        "month": day.today.strftime("%Y-%m"),
        "used": used,
        "monthly": monthly,
        "left": round(max(monthly - used, 0.0), 2),
        "over": used > monthly,
        "percent": round(used / monthly * 100),
    }


# -- the mail ------------------------------------------------------------------------------


def digest_notice(
    role: str,
    person_id: str,
    digest: Mapping[str, Any],
    directory: Directory,
    *,
    address: str | None = None,
) -> Notice | None:
    """The ``digest`` notice carrying ``digest`` to its reader.

    A client's digest goes to ``address`` when given (a preview), else to the client's
    first real contact; None when a client has no address to write to.
    """
    if role == Role.CLIENT:
        return _client_notice(directory.clients[person_id], digest, address)
    person = directory.directors.get(person_id) or directory.members.get(person_id)
    if person is None:
        return None
    return Notice(
        kind="digest",
        to=(Address(person.email, person.name),),
        language=person.language,
        recipient_id=person.id,
        context={"digest": digest, "recipient": {"id": person.id, "name": person.name}},
    )


def _client_notice(client: Client, digest: Mapping[str, Any], address: str | None) -> Notice | None:
    contact = Address(address.strip().lower()) if address else client_contact(None, client)
    if contact is None:
        return None
    context = {
        "digest": digest,
        "recipient": {"id": contact.email, "name": contact.name},
        "client": {
            "id": client.id,
            "company": client.company,
            "contact_name": contact.name or None,
            "contact_email": contact.email,
        },
    }
    return Notice(
        kind="digest",
        to=(contact,),
        language=client.language,
        recipient_id=contact.email,
        context=context,
    )


def preview(email: str, directory: Directory) -> tuple[str, str] | None:
    """Whose digest ``email`` gets: ``(role, id)``; a client contact gets its company's.

    Coordinators get no digest of their own (they receive alerts), so they give None.
    """
    sender = directory.identify(email)
    if sender is None:
        return None
    if sender.role is Role.CLIENT and sender.client_id is not None:
        return "client", sender.client_id
    if sender.role in (Role.DIRECTOR, Role.MEMBER):
        return sender.role.value, sender.person_id
    return None
