"""Who should do a request: member choice by skill, language, time off, capacity and load.

Pure: the caller hands in the directory snapshot, a workload snapshot built from the
store, and today's date (in the desk's time zone). Every choice explains itself: the
reasons name the chosen member and the runner-up with their numbers and say which
criterion separated them, and every member left out is listed with why.

Ranking of the members who qualify (every required skill, the language, not away today,
under capacity, not excluded):

1. least loaded: ``MemberLoad.load_hours`` — the estimated hours of their open requests,
   an open request without an estimate counting ``DEFAULT_REQUEST_HOURS``;
2. fewest assignments this week;
3. round robin: the one assigned longest ago (never assigned first), then by id, so the
   same snapshot always gives the same member.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import NamedTuple

from mailflow.directory import Client, Directory, Member
from mailflow.rules import Routing

# What an open request without an estimate is assumed to take, in hours.
DEFAULT_REQUEST_HOURS = 2.0


@dataclass(frozen=True)
class MemberLoad:
    """One member's work in hand, as the store counts it now.

    ``open_hours`` is the sum of the hour estimates of the open requests, counting an
    unestimated one as ``DEFAULT_REQUEST_HOURS`` (``MemberLoad.of`` does that). When it is
    0 while requests are open, each open request counts the default.
    """

    open_requests: int = 0
    open_hours: float = 0.0
    assigned_this_week: int = 0
    last_assigned_at: datetime | None = None

    @classmethod
    def of(
        cls,
        estimates: Iterable[float | None],
        *,
        assigned_this_week: int = 0,
        last_assigned_at: datetime | None = None,
    ) -> MemberLoad:
        """The load of open requests given their estimates (None: not estimated yet)."""
        hours = [DEFAULT_REQUEST_HOURS if estimate is None else estimate for estimate in estimates]
        return cls(len(hours), float(sum(hours)), assigned_this_week, last_assigned_at)

    @property
    def load_hours(self) -> float:
        if self.open_hours > 0:
            return self.open_hours
        return self.open_requests * DEFAULT_REQUEST_HOURS


@dataclass(frozen=True)
class Assignment:
    """The member chosen (or None), the runner-up, why, and who was left out and why."""

    member: str | None
    runner_up: str | None
    reasons: tuple[str, ...]
    rejected: tuple[tuple[str, str], ...] = ()


class DirectChoice(NamedTuple):
    """The dedicated member of a direct client, and the needed skills they lack.

    ``member`` is the client's dedicated member even when skills are missing (so the
    member and the coordinator can be told); a non-empty ``missing`` means out of scope.
    """

    member: str | None
    missing: tuple[str, ...]

    @property
    def in_scope(self) -> bool:
        return self.member is not None and not self.missing


_IDLE = MemberLoad()
# (load hours, assignments this week, ever assigned, last assignment, id): smaller is first.
_Key = tuple[float, int, int, float, str]


def _why_not(
    member: Member,
    skills: tuple[str, ...],
    language: str,
    load: MemberLoad,
    today: date,
    exclude: Collection[str],
) -> str | None:
    """Why ``member`` cannot take the request, or None when they can."""
    if member.id in exclude:
        return "excluded"
    missing = [skill for skill in skills if skill not in member.skills]
    if missing:
        return "lacks " + ", ".join(missing)
    if language not in member.languages:
        return f"does not work in {language}"
    away = next((last for first, last in member.away if first <= today <= last), None)
    if away is not None:
        return f"away until {away.isoformat()}"
    if load.open_requests >= member.capacity:
        return f"at capacity {load.open_requests}/{member.capacity}"
    return None


def _rank(member: Member, load: MemberLoad) -> _Key:
    last = load.last_assigned_at
    never = last is None
    return (
        load.load_hours,
        load.assigned_this_week,
        0 if never else 1,
        0.0 if last is None else last.timestamp(),
        member.id,
    )


def _describe(member_id: str, load: MemberLoad) -> str:
    requests = "request" if load.open_requests == 1 else "requests"
    last = load.last_assigned_at
    when = f"last assigned {last.date().isoformat()}" if last else "never assigned"
    return (
        f"{member_id}: {load.open_requests} open {requests} ({load.load_hours:g} h), "
        f"{load.assigned_this_week} assigned this week, {when}"
    )


def _separation(first: _Key, second: _Key) -> str:
    """Which criterion put the chosen member before the runner-up."""
    if first[0] != second[0]:
        return f"less loaded ({first[0]:g} h against {second[0]:g} h)"
    if first[1] != second[1]:
        return f"same load; fewer assignments this week ({first[1]} against {second[1]})"
    if first[2:4] != second[2:4]:
        return "same load and weekly count; next in the round robin (assigned longest ago)"
    return "same load, weekly count and last assignment; first by id"


def choose_member(
    required_skills: Iterable[str],
    language: str | None,
    client: Client | None,
    directory: Directory,
    workload: Mapping[str, MemberLoad],
    today: date,
    *,
    exclude: Collection[str] = (),
) -> Assignment:
    """The best-placed member for a request; see the module docstring for the order.

    ``language`` defaults to the client's language. Members missing from ``workload``
    have nothing open and were never assigned.
    """
    skills = tuple(dict.fromkeys(required_skills))
    wanted = language or (client.language if client else "ja")
    rejected: list[tuple[str, str]] = []
    ranked = []
    needed = frozenset(skills)
    for member in directory.members.values():
        # The common case, a member lacking a skill, is settled by one set operation
        # (routing runs for every mail; see bench/route.py).
        missing = needed.difference(member.skills)
        if missing and member.id not in exclude:
            rejected.append((member.id, "lacks " + ", ".join(s for s in skills if s in missing)))
            continue
        load = workload.get(member.id, _IDLE)
        why = _why_not(member, skills, wanted, load, today, exclude)
        if why is None:
            ranked.append((_rank(member, load), member.id, load))
        else:
            rejected.append((member.id, why))
    ranked.sort()
    needs = (", ".join(skills) or "no particular skill") + f", in {wanted}"
    if not ranked:
        reason = f"no member qualifies (needs {needs})" if directory.members else "no members"
        return Assignment(None, None, (reason,), tuple(rejected))
    (best_key, best, best_load), *others = ranked
    reasons = [f"suggested {_describe(best, best_load)} (needs {needs})"]
    runner_up = None
    if others:
        second_key, runner_up, second_load = others[0]
        reasons.append(f"runner-up {_describe(runner_up, second_load)}")
        reasons.append(f"{best} before {runner_up}: {_separation(best_key, second_key)}")
    return Assignment(best, runner_up, tuple(reasons), tuple(rejected))


def direct_member(
    client: Client, required_skills: Iterable[str], directory: Directory
) -> DirectChoice:
    """The dedicated member of a direct client, and the required skills they lack."""
    member = directory.members.get(client.member) if client.member else None
    if member is None:
        return DirectChoice(None, tuple(dict.fromkeys(required_skills)))
    missing = tuple(skill for skill in dict.fromkeys(required_skills) if skill not in member.skills)
    return DirectChoice(member.id, missing)


# -- explanation -----------------------------------------------------------------------------


def explain_lines(routing: Routing, assignment: Assignment | None = None) -> list[str]:
    """The readable reasons of a decision, in the order a person checks them."""
    lines = [
        f"route '{trace.rule}': {'matched' if trace.matched else 'no match'} — "
        + "; ".join(trace.reasons)
        for trace in routing.trace
    ]
    lines.append(f"language: {routing.language}")
    lines.append("skills: " + (_skill_listing(routing) or "none recognised"))
    if routing.out_of_scope:
        lines.append("out of scope: " + ", ".join(routing.out_of_scope))
    lines.extend(routing.actions)
    destination = routing.route + (f" {routing.member}" if routing.member else "")
    if routing.default_route:
        lines.append(f"no route chose where to go; the client's plan decides: {destination}")
    else:
        lines.append(f"decided by '{routing.rule}': {destination}")
    if assignment is not None:
        lines.extend(assignment.reasons)
        lines.extend(f"{member}: {why}" for member, why in assignment.rejected)
    return lines


def _skill_listing(routing: Routing) -> str:
    evidence = dict(routing.skill_matches)
    return ", ".join(
        f"{skill} ('{evidence[skill]}')" if skill in evidence else skill for skill in routing.skills
    )
