"""``people.yaml`` → a validated ``Directory`` of directors, members, coordinators, clients.

The Directory is a snapshot the pure pipeline reads: ``identify`` turns a sender address
into a ``Sender`` with a role, and the other helpers answer who serves whom.

Ids share one namespace (``#assign sato`` must mean one person), and each address belongs
to one entry only, so identifying a sender is never ambiguous.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property
from pathlib import Path

from mailflow.model import Address, Role, Sender, ServiceModel
from mailflow.settings import LANGUAGES
from mailflow.yamlfile import (
    LineDict,
    LineList,
    YamlChecker,
    describe,
    is_address,
    join_key,
    load_yaml,
    parse_hours,
)

PEOPLE_FILE = "people.yaml"
PLANS = tuple(model.value for model in ServiceModel)
DEFAULT_CAPACITY = 5

_TOP_KEYS = ("directors", "members", "coordinators", "clients")
_STAFF_KEYS = ("id", "name", "email", "language")
_MEMBER_KEYS = (*_STAFF_KEYS, "skills", "capacity", "languages", "away", "hours")
_CLIENT_KEYS = (
    "id",
    "company",
    "plan",
    "director",
    "member",
    "coordinator",
    "monthly_hours",
    "contacts",
    "language",
    "digest",
)
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_LANGUAGE_CODE = re.compile(r"^[a-z]{2,3}$")
_RANGE_FIX = 'write "YYYY-MM-DD/YYYY-MM-DD", e.g. "2026-12-28/2027-01-04"'


@dataclass(frozen=True)
class Director:
    id: str
    name: str
    email: str
    language: str


@dataclass(frozen=True)
class Coordinator:
    """Someone who only receives alerts (out-of-skill, over-hours) for direct clients."""

    id: str
    name: str
    email: str
    language: str


@dataclass(frozen=True)
class Member:
    id: str
    name: str
    email: str
    language: str
    skills: tuple[str, ...]
    capacity: int = DEFAULT_CAPACITY
    languages: tuple[str, ...] = ("ja",)
    away: tuple[tuple[date, date], ...] = ()
    hours: str | None = None

    def is_away(self, day: date) -> bool:
        """True when ``day`` falls in one of the member's time-off ranges (inclusive)."""
        return any(first <= day <= last for first, last in self.away)


@dataclass(frozen=True)
class Client:
    """A client company; ``contacts`` are addresses or whole ``@domain`` entries."""

    id: str
    company: str
    plan: ServiceModel
    director: str | None
    member: str | None
    coordinator: str | None
    monthly_hours: float | None
    contacts: tuple[str, ...]
    language: str
    digest: bool = True

    def context(self, contact: Address) -> dict[str, str]:
        """The ``client`` block of templates/CONTEXT.md, for mail about ``contact``."""
        return {
            "id": self.id,
            "company": self.company,
            "contact_name": contact.name,
            "contact_email": contact.email,
        }


Staff = Director | Member | Coordinator
_ROLES: dict[type, Role] = {
    Director: Role.DIRECTOR,
    Member: Role.MEMBER,
    Coordinator: Role.COORDINATOR,
}


@dataclass(frozen=True)
class Directory:
    directors: dict[str, Director] = field(default_factory=dict)
    members: dict[str, Member] = field(default_factory=dict)
    clients: dict[str, Client] = field(default_factory=dict)
    coordinators: dict[str, Coordinator] = field(default_factory=dict)

    def people(self) -> Iterator[Staff]:
        """Every staff person: directors, then members, then coordinators."""
        yield from self.directors.values()
        yield from self.members.values()
        yield from self.coordinators.values()

    def person(self, person_id: str) -> Staff | None:
        return self._staff_by_id.get(person_id)

    @cached_property
    def _staff_by_id(self) -> dict[str, Staff]:
        # The first entry of an id wins, as in the order of ``people``.
        by_id: dict[str, Staff] = {}
        for person in self.people():
            by_id.setdefault(person.id, person)
        return by_id

    def is_staff(self, email: str) -> bool:
        """Directors, members and coordinators: the service's own people."""
        return email.strip().lower() in self._staff_by_email

    @cached_property
    def _staff_by_email(self) -> dict[str, Staff]:
        return {person.email: person for person in self.people()}

    @cached_property
    def _clients_by_contact(self) -> dict[str, Client]:
        return {contact: client for client in self.clients.values() for contact in client.contacts}

    def identify(self, email: str) -> Sender | None:
        """Who ``email`` is: an exact address beats a client's ``@domain`` contact."""
        address = email.strip().lower()
        person = self._staff_by_email.get(address)
        if person is not None:
            return Sender(
                _ROLES[type(person)], person.id, person.email, person.name, person.language
            )
        client = self._clients_by_contact.get(address)
        if client is None:
            client = self._clients_by_contact.get("@" + address.rpartition("@")[2])
        if client is None:
            return None
        return Sender(
            Role.CLIENT, address, address, client.company, client.language, client_id=client.id
        )

    def address_of(self, person_id: str) -> Address:
        """The mailbox of a staff id, or of a client contact (whose id is its address)."""
        person = self.person(person_id)
        if person is not None:
            return Address(person.email, person.name)
        if "@" in person_id:
            return Address(person_id.lower())
        raise KeyError(person_id)

    def director_for(self, client: Client | str) -> Director | None:
        """The client's own director, else the first director in the file."""
        if isinstance(client, str):
            client = self.clients[client]
        if client.director is not None and client.director in self.directors:
            return self.directors[client.director]
        return next(iter(self.directors.values()), None)


# -- reading people.yaml -------------------------------------------------------------------


@dataclass
class _ClientEntry:
    client: Client
    entry: LineDict
    path: str


class _PeopleReader:
    """Validates entries one by one; cross-references are checked once all are read."""

    def __init__(
        self, check: YamlChecker, default_language: str, known_skills: Collection[str] | None
    ) -> None:
        self.check = check
        self.default_language = default_language
        self.known_skills = known_skills
        self.ids: dict[str, int] = {}
        self.owners: dict[str, tuple[str, int]] = {}

    def entries(self, root: LineDict, key: str) -> Iterator[tuple[str, LineDict]]:
        items = self.check.sequence(root.get(key), key, root.key_line(key)) or LineList()
        for index, item in enumerate(items):
            path = f"{key}[{index}]"
            entry = self.check.mapping(item, path, items.item_line(index))
            if entry is not None:
                yield path, entry

    def identity(self, entry: LineDict, path: str) -> str | None:
        value = self.check.text(entry, path, "id")
        line = entry.key_line("id")
        if value is None:
            return None
        if not _ID.match(value):
            self.check.report(
                line,
                join_key(path, "id"),
                f"'{value}' is not a usable id",
                "use letters, digits, '_', '-' or '.', without spaces",
            )
        elif value in self.ids:
            self.check.report(
                line,
                join_key(path, "id"),
                f"duplicate id '{value}' (first used on line {self.ids[value]})",
                "give each entry its own id",
            )
        else:
            self.ids[value] = line
        return value

    def claim_address(self, address: str, key: str, line: int) -> None:
        """Record who owns an address; an address owned twice is a problem."""
        owner = self.owners.get(address)
        if owner is None:
            self.owners[address] = (key, line)
            return
        self.check.report(
            line,
            key,
            f"address '{address}' is already used by {owner[0]} (line {owner[1]})",
            "an address can belong to one person only; remove one of them",
        )

    def email(self, entry: LineDict, path: str) -> str | None:
        value = self.check.text(entry, path, "email")
        if value is None:
            return None
        key, line = join_key(path, "email"), entry.key_line("email")
        if not is_address(value):
            self.check.report(
                line,
                key,
                f"'{value}' is not an email address",
                'write a bare address such as "name@example.com"',
            )
            return None
        self.claim_address(value.lower(), key, line)
        return value.lower()

    def language(self, entry: LineDict, path: str) -> str:
        value = self.check.choice(entry, path, "language", LANGUAGES, "language")
        return value or self.default_language

    def staff(
        self, entry: LineDict, path: str, known: tuple[str, ...]
    ) -> tuple[str, str, str, str] | None:
        """The fields every staff entry has: id, name, email, language."""
        self.check.keys(entry, path, known, required=("id", "name", "email"))
        person_id = self.identity(entry, path)
        name = self.check.text(entry, path, "name")
        email = self.email(entry, path)
        language = self.language(entry, path)
        if person_id is None or name is None or email is None:
            return None
        return person_id, name, email, language


# -- members -------------------------------------------------------------------------------


def _parse_day(value: object) -> date | None:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        return None


def _away_range(check: YamlChecker, item: object, key: str, line: int) -> tuple[date, date] | None:
    # YAML reads an unquoted single day as a date; "a/b" stays text.
    text = item.isoformat() if isinstance(item, date) else str(item)
    first_text, _, last_text = text.partition("/")
    first, last = _parse_day(first_text), _parse_day(last_text or first_text)
    if first is None or last is None or not isinstance(item, str | date):
        check.report(line, key, f"'{text}' is not a date range", _RANGE_FIX)
        return None
    if last < first:
        check.report(
            line,
            key,
            f"the range ends before it starts ({first} > {last})",
            "put the first day before the last day",
        )
        return None
    return first, last


def _read_away(check: YamlChecker, entry: LineDict, path: str) -> tuple[tuple[date, date], ...]:
    key = join_key(path, "away")
    items = check.sequence(entry.get("away"), key, entry.key_line("away")) or LineList()
    ranges = (
        _away_range(check, item, f"{key}[{index}]", items.item_line(index))
        for index, item in enumerate(items)
    )
    return tuple(found for found in ranges if found is not None)


def _read_capacity(check: YamlChecker, entry: LineDict, path: str) -> int:
    value = entry.get("capacity", DEFAULT_CAPACITY)
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    check.report(
        entry.key_line("capacity"),
        join_key(path, "capacity"),
        f"capacity must be a positive whole number, got {describe(value)}",
        "write how many open requests this member can hold at once, e.g. 5",
    )
    return DEFAULT_CAPACITY


def _read_skills(reader: _PeopleReader, entry: LineDict, path: str) -> tuple[str, ...]:
    check, key = reader.check, join_key(path, "skills")
    if entry.get("skills") in (None, []):
        check.report(
            entry.key_line("skills"),
            key,
            "a member needs at least one skill",
            "list the skills, e.g. skills: [research, data_entry]",
        )
        return ()
    skills = check.texts(entry, path, "skills")
    known = reader.known_skills
    for index, (skill, line) in enumerate(skills):
        if known is not None and skill not in known:
            check.report(
                line,
                f"{key}[{index}]",
                f"unknown skill '{skill}'",
                "use one of the skills in rules.yaml: " + ", ".join(known),
            )
    return tuple(skill for skill, _ in skills)


def _read_languages(
    check: YamlChecker, entry: LineDict, path: str, language: str
) -> tuple[str, ...]:
    if "languages" not in entry:
        return (language,)
    found = check.texts(entry, path, "languages")
    for index, (code, line) in enumerate(found):
        if not _LANGUAGE_CODE.match(code):
            check.report(
                line,
                f"{join_key(path, 'languages')}[{index}]",
                f"'{code}' is not a language code",
                "use codes such as ja, en, zh",
            )
    return tuple(code for code, _ in found)


def _read_hours(check: YamlChecker, entry: LineDict, path: str) -> str | None:
    hours = check.text(entry, path, "hours")
    if hours is not None and parse_hours(hours) is None:
        check.report(
            entry.key_line("hours"),
            join_key(path, "hours"),
            f"'{hours}' is not a span of working hours",
            'write it as "09:00-18:00"',
        )
        return None
    return hours


def _read_member(reader: _PeopleReader, entry: LineDict, path: str) -> Member | None:
    check = reader.check
    common = reader.staff(entry, path, _MEMBER_KEYS)
    skills = _read_skills(reader, entry, path)
    capacity = _read_capacity(check, entry, path)
    away = _read_away(check, entry, path)
    hours = _read_hours(check, entry, path)
    if common is None:
        return None
    languages = _read_languages(check, entry, path, common[3])
    return Member(
        *common, skills=skills, capacity=capacity, languages=languages, away=away, hours=hours
    )


# -- clients -------------------------------------------------------------------------------


def _read_contacts(reader: _PeopleReader, entry: LineDict, path: str) -> tuple[str, ...]:
    if entry.get("contacts") in (None, []):
        reader.check.report(
            entry.key_line("contacts"),
            join_key(path, "contacts"),
            "a client needs at least one contact address",
            "list the addresses that send its requests, e.g. [yamada@acme.example]",
        )
        return ()
    contacts: list[str] = []
    for index, (text, line) in enumerate(reader.check.texts(entry, path, "contacts")):
        key = f"{join_key(path, 'contacts')}[{index}]"
        contact = text.lower()
        # "@acme.example" stands for every address of the client's own domain.
        whole_domain = contact.startswith("@") and is_address("x" + contact)
        if not (is_address(contact) or whole_domain):
            reader.check.report(
                line,
                key,
                f"'{text}' is not an email address or @domain",
                'write "name@example.com", or "@example.com" for a whole domain',
            )
            continue
        reader.claim_address(contact, key, line)
        contacts.append(contact)
    return tuple(contacts)


def _read_hours_per_month(check: YamlChecker, entry: LineDict, path: str) -> float | None:
    value = entry.get("monthly_hours")
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    check.report(
        entry.key_line("monthly_hours"),
        join_key(path, "monthly_hours"),
        f"monthly_hours must be a positive number, got {describe(value)}",
        "write the contracted hours per month, e.g. 20",
    )
    return None


def _read_client(reader: _PeopleReader, entry: LineDict, path: str) -> Client | None:
    check = reader.check
    check.keys(entry, path, _CLIENT_KEYS, required=("id", "company", "plan"))
    client_id = reader.identity(entry, path)
    company = check.text(entry, path, "company")
    plan = check.choice(entry, path, "plan", PLANS, "plan")
    client = Client(
        id=client_id or "",
        company=company or "",
        plan=ServiceModel(plan or "director"),
        director=check.text(entry, path, "director") or None,
        member=check.text(entry, path, "member") or None,
        coordinator=check.text(entry, path, "coordinator") or None,
        monthly_hours=_read_hours_per_month(check, entry, path),
        contacts=_read_contacts(reader, entry, path),
        language=reader.language(entry, path),
        digest=check.flag(entry, path, "digest", True),
    )
    return client if client_id and company and plan else None


def _check_reference(
    check: YamlChecker,
    item: _ClientEntry,
    key: str,
    value: str | None,
    valid: Collection[str],
    noun: str,
) -> None:
    if value is None or value in valid:
        return
    fix = ("use one of: " + ", ".join(valid)) if valid else f"add the {noun} to people.yaml first"
    check.report(
        item.entry.key_line(key), join_key(item.path, key), f"unknown {noun} '{value}'", fix
    )


def _check_links(check: YamlChecker, directory: Directory, items: list[_ClientEntry]) -> None:
    """Every id a client names exists, and every client has someone to serve it."""
    staff = [person.id for person in directory.people()]
    for item in items:
        client = item.client
        _check_reference(
            check, item, "director", client.director, list(directory.directors), "director"
        )
        _check_reference(check, item, "member", client.member, list(directory.members), "member")
        _check_reference(check, item, "coordinator", client.coordinator, staff, "coordinator")
        if client.plan is ServiceModel.DIRECT and client.member is None:
            check.report(
                item.entry.line,
                join_key(item.path, "member"),
                "a direct client needs a dedicated member",
                "add `member:` with one of: " + (", ".join(directory.members) or "…"),
            )
        if client.plan is ServiceModel.DIRECTOR and not directory.directors:
            check.report(
                item.entry.line,
                join_key(item.path, "director"),
                "no director to serve this client",
                "add a director under directors:",
            )


# -- entry points --------------------------------------------------------------------------


def _read_staff(reader: _PeopleReader, root: LineDict, directory: Directory) -> None:
    for path, entry in reader.entries(root, "directors"):
        found = reader.staff(entry, path, _STAFF_KEYS)
        if found is not None:
            directory.directors[found[0]] = Director(*found)
    for path, entry in reader.entries(root, "members"):
        member = _read_member(reader, entry, path)
        if member is not None:
            directory.members[member.id] = member
    for path, entry in reader.entries(root, "coordinators"):
        found = reader.staff(entry, path, _STAFF_KEYS)
        if found is not None:
            directory.coordinators[found[0]] = Coordinator(*found)


def directory_from_data(
    data: object,
    check: YamlChecker,
    *,
    default_language: str = "ja",
    known_skills: Collection[str] | None = None,
) -> Directory:
    """Validate parsed people.yaml data; problems are left in ``check``."""
    directory = Directory()
    if data is None:
        return directory
    root = check.mapping(data, "", 1)
    if root is None:
        return directory
    check.keys(root, "", _TOP_KEYS)
    reader = _PeopleReader(check, default_language, known_skills)
    _read_staff(reader, root, directory)
    items: list[_ClientEntry] = []
    for path, entry in reader.entries(root, "clients"):
        client = _read_client(reader, entry, path)
        if client is not None:
            directory.clients[client.id] = client
            items.append(_ClientEntry(client, entry, path))
    _check_links(check, directory, items)
    return directory


def load_directory(
    path: Path,
    *,
    display_name: str = PEOPLE_FILE,
    default_language: str = "ja",
    known_skills: Collection[str] | None = None,
) -> Directory:
    """Read and validate people.yaml; an empty file is an empty (valid) directory.

    ``known_skills`` (the skills of rules.yaml) lets member skills be checked too.
    """
    check = YamlChecker(display_name)
    data = load_yaml(path, display_name, check.problems)
    directory = directory_from_data(
        data, check, default_language=default_language, known_skills=known_skills
    )
    check.raise_if_any()
    return directory
