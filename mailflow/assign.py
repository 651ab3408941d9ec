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

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import NamedTuple

from mailflow.directory import Client, Directory, Member
from mailflow.phrases import Phrase, composed, phrase
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
    why: tuple[Phrase, ...]
    left_out: tuple[tuple[str, Phrase], ...] = ()

    @property
    def reasons(self) -> tuple[str, ...]:
        return tuple(said.text for said in self.why)

    @property
    def rejected(self) -> tuple[tuple[str, str], ...]:
        return tuple((member, said.text) for member, said in self.left_out)


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
) -> Phrase | None:
    """Why ``member`` cannot take the request, or None when they can."""
    if member.id in exclude:
        return phrase("excluded")
    missing = [skill for skill in skills if skill not in member.skills]
    if missing:
        return _lacks(missing)
    if language not in member.languages:
        return phrase("other_language", language=language)
    away = next((last for first, last in member.away if first <= today <= last), None)
    if away is not None:
        return phrase("away", until=away.isoformat())
    if load.open_requests >= member.capacity:
        return phrase("at_capacity", open=load.open_requests, capacity=member.capacity)
    return None


def _lacks(skills: Sequence[str]) -> Phrase:
    return phrase("lacks", skills=", ".join(skills))


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


def _english_needs(needs: Mapping[str, str]) -> str:
    return f"{needs['skills'] or 'no particular skill'}, in {needs['language']}"


def _describe(
    code: str, member_id: str, load: MemberLoad, needs: Mapping[str, str] | None = None
) -> Phrase:
    """A candidate's load: ``code`` is "suggested" (with what the request ``needs``) or
    "runner_up"."""
    requests = "request" if load.open_requests == 1 else "requests"
    last = load.last_assigned_at.date().isoformat() if load.last_assigned_at else ""
    when = f"last assigned {last}" if last else "never assigned"
    title = "suggested" if code == "suggested" else "runner-up"
    english = (
        f"{title} {member_id}: {load.open_requests} open {requests} ({load.load_hours:g} h), "
        f"{load.assigned_this_week} assigned this week, {when}"
    )
    if needs is not None:
        english += f" (needs {_english_needs(needs)})"
    return composed(
        code,
        english,
        member=member_id,
        open=load.open_requests,
        hours=f"{load.load_hours:g}",
        week=load.assigned_this_week,
        last=last,
        **(needs or {}),
    )


def _separation(best: str, runner_up: str, first: _Key, second: _Key) -> Phrase:
    """Which criterion put the chosen member before the runner-up."""
    pair = {"best": best, "runner_up": runner_up}
    if first[0] != second[0]:
        return phrase("less_loaded", **pair, first=f"{first[0]:g}", second=f"{second[0]:g}")
    if first[1] != second[1]:
        return phrase("fewer_this_week", **pair, first=first[1], second=second[1])
    if first[2:4] != second[2:4]:
        return phrase("round_robin", **pair)
    return phrase("first_by_id", **pair)


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
    rejected: list[tuple[str, Phrase]] = []
    ranked = []
    needed = frozenset(skills)
    lacking: dict[frozenset[str], Phrase] = {}  # most members lack the same few skills
    for member in directory.members.values():
        # The common case, a member lacking a skill, is settled by one set operation
        # (routing runs for every mail; see bench/route.py).
        missing = needed.difference(member.skills)
        if missing and member.id not in exclude:
            lacks = lacking.get(missing)
            if lacks is None:
                lacks = lacking[missing] = _lacks([s for s in skills if s in missing])
            rejected.append((member.id, lacks))
            continue
        load = workload.get(member.id, _IDLE)
        unable = _why_not(member, skills, wanted, load, today, exclude)
        if unable is None:
            ranked.append((_rank(member, load), member.id, load))
        else:
            rejected.append((member.id, unable))
    ranked.sort()
    needs = {"skills": ", ".join(skills), "language": wanted}
    if not ranked:
        if not directory.members:
            return Assignment(None, None, (phrase("no_members"),))
        english = f"no member qualifies (needs {_english_needs(needs)})"
        nobody = composed("no_member_qualifies", english, **needs)
        return Assignment(None, None, (nobody,), tuple(rejected))
    (best_key, best, best_load), *others = ranked
    why = [_describe("suggested", best, best_load, needs)]
    runner_up = None
    if others:
        second_key, runner_up, second_load = others[0]
        why.append(_describe("runner_up", runner_up, second_load))
        why.append(_separation(best, runner_up, best_key, second_key))
    return Assignment(best, runner_up, tuple(why), tuple(rejected))


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
