"""``rules.yaml`` → a validated ``RuleSet``; ``route(facts, rules)`` → an explained ``Routing``.

Rules are data, matchers are small named functions. Every condition a route may name
under ``when:`` is a function registered with ``@condition("name")`` in ``CONDITIONS``, and
every action under ``then:`` one registered with ``@action("name")`` in ``ACTIONS``. Such a
function receives the YAML value (with its line) when rules.yaml loads, validates it, and
returns the compiled matcher or action; so an unknown name, a duplicate key, a bad regular
expression, a value of the wrong type or an unknown member stops ``mailflow check`` with
the YAML line, never the processing of a mail.

Routing is pure: ``route`` reads a ``MailFacts`` value and the rule set, tries the routes in
order (the first match wins unless it says ``continue: true``) and returns a ``Routing``
that records, for every route tried, whether it matched and each condition's reason.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, time
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from mailflow.errors import Problem
from mailflow.model import Role, ServiceModel
from mailflow.settings import LANGUAGES
from mailflow.skills import KeywordSet, detect_language, nfkc, normalize, request_words
from mailflow.yamlfile import (
    LineDict,
    LineList,
    YamlChecker,
    describe,
    join_key,
    load_yaml,
    parse_hours,
)

RULES_FILE = "rules.yaml"
REPLY_KINDS = ("acceptance", "revision", "unclear")
# Where a route may send a mail. "assign" (a named member) is set by the `assign` action.
ROUTES = ("director", "member", "auto_assign", "out_of_scope", "quarantine")
PRIORITIES = ("high", "normal", "low")
HOLIDAY_CALENDARS = ("jp", "none")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
PLANS = tuple(model.value for model in ServiceModel)
ROLES = tuple(role.value for role in Role)

_TOP_KEYS = ("skills", "out_of_scope", "replies", "formats", "defaults", "routes")

_ROUTE_KEYS = ("name", "description", "when", "then", "continue")
_DEFAULT_KEYS = (
    "deadline_business_days",
    "reminder_hours_before",
    "automatic_mail_limits",
    "sender_mail_limits",
    "working_hours",
    "holidays",
    "closures",
)
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_MONTH_DAY = re.compile(r"^(\d{1,2})-(\d{1,2})$")

MonthDay = tuple[int, int]


@dataclass(frozen=True)
class SkillDef:
    """A skill and the words that reveal it in a client's text.

    ``ignore`` lists phrases that contain a keyword without meaning the skill
    (``電話番号`` is data, not phone work); they are blanked out before matching.
    """

    name: str
    keywords_ja: tuple[str, ...] = ()
    keywords_en: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()

    @property
    def keywords(self) -> tuple[str, ...]:
        return self.keywords_ja + self.keywords_en


@dataclass(frozen=True)
class Defaults:
    deadline_business_days: int = 3
    reminder_hours_before: int = 24
    # Automatic mail to one outside address: at most COUNT per SECONDS, for each window.
    automatic_mail_limits: tuple[tuple[int, int], ...] = ((3, 600), (20, 86400))
    # Mail the desk writes because of one outside sender (to anyone, staff included):
    # beyond this it is held back (recorded) as a possible loop.
    sender_mail_limits: tuple[tuple[int, int], ...] = ((30, 600), (100, 86400))
    working_hours: str = "09:00-18:00"
    holidays: str = "jp"
    # Closed every year, e.g. the New Year break: ((12, 29), (1, 3)); ranges may wrap.
    closures: tuple[tuple[MonthDay, MonthDay], ...] = (((12, 29), (1, 3)),)


# -- what routing reads and returns ----------------------------------------------------------


@dataclass(frozen=True)
class MailFacts:
    """What routing may know about one new request: plain values, no mail object.

    ``sent`` is the mail's Date (aware; a naive value is read in ``timezone``), and
    ``timezone`` the desk's IANA zone, in which weekday and time conditions are read.
    ``priority`` and ``skills`` are what a person set by hand (``#priority``, ``#skill``)
    before the rules run; inferred skills are added to them.
    """

    subject: str
    text: str
    has_attachments: bool
    sender_role: str
    client_id: str | None
    plan: str
    sent: datetime
    timezone: str = "Asia/Tokyo"
    priority: str = "normal"
    skills: tuple[str, ...] = ()


class RuleTrace(NamedTuple):
    """One route tried: its name, whether it matched, and each condition's reason."""

    rule: str
    matched: bool
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class Routing:
    """The outcome of the rules for one mail, with everything needed to explain it.

    ``rule`` is the route that decided (the first match without ``continue``, else the
    last route that matched, else ``(none)``). ``route`` is one of ``ROUTES`` or
    ``assign`` (then ``member`` names the member). ``skill_matches`` pairs each inferred
    skill with the keyword that revealed it; ``skills`` also holds the skills set by hand
    and by actions. ``out_of_scope`` lists the needed skills that rules.yaml says no
    member offers. ``actions`` reads like ``urgent: priority → high``.
    """

    rule: str
    route: str
    trace: tuple[RuleTrace, ...] = ()
    member: str | None = None
    priority: str = "normal"
    due_business_days: int | None = None
    skills: tuple[str, ...] = ()
    skill_matches: tuple[tuple[str, str], ...] = ()
    out_of_scope: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    templates: tuple[str, ...] = ()
    language: str = "ja"
    actions: tuple[str, ...] = ()
    default_route: bool = False

    @property
    def template(self) -> str | None:
        """The last template a matching route asked for."""
        return self.templates[-1] if self.templates else None


Verdict = tuple[bool, str]
Matcher = Callable[["_Mail"], Verdict]


class Action(NamedTuple):
    """A compiled ``then:`` entry: what it does, said for a person, and the change itself."""

    description: str
    apply: Callable[[_Draft], None]


@dataclass(frozen=True)
class RouteDef:
    """One routing rule.

    ``when``/``then`` keep the YAML mappings (with their lines) for tools that show or
    cross-check them; ``matchers`` and ``actions`` are what loading compiled from them.
    """

    name: str
    when: Mapping[str, Any]
    then: Mapping[str, Any]
    continue_: bool = False
    line: int = 0
    description: str = ""
    matchers: tuple[Matcher, ...] = field(default=(), compare=False, repr=False)
    actions: tuple[Action, ...] = field(default=(), compare=False, repr=False)


class Reference(NamedTuple):
    """An id rules.yaml names that only people.yaml can confirm (see ``check_against``)."""

    kind: str  # "member" or "client"
    id: str
    line: int
    key: str


@dataclass(frozen=True)
class RuleSet:
    skills: Mapping[str, SkillDef] = field(default_factory=dict)
    out_of_scope: tuple[str, ...] = ()
    replies: Mapping[str, Mapping[str, tuple[str, ...]]] = field(default_factory=dict)
    defaults: Defaults = field(default_factory=Defaults)
    routes: tuple[RouteDef, ...] = ()
    formats: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    references: tuple[Reference, ...] = field(default=(), compare=False)

    @cached_property
    def skill_index(self) -> tuple[tuple[str, KeywordSet, KeywordSet], ...]:
        """Each skill's keywords and ignored phrases, compiled once per rule set."""
        return tuple(
            (name, KeywordSet(skill.keywords), KeywordSet(skill.ignore))
            for name, skill in self.skills.items()
        )


# -- words by language ---------------------------------------------------------------------


def _by_language(
    check: YamlChecker, value: Any, key: str, line: int, extra: tuple[str, ...] = ()
) -> dict[str, tuple[str, ...]]:
    """``{ja: [...], en: [...]}`` → tuples per language (both always present)."""
    words: dict[str, tuple[str, ...]] = {language: () for language in (*LANGUAGES, *extra)}
    if value is None:
        return words
    mapping = check.mapping(value, key, line)
    if mapping is None:
        return words
    check.keys(mapping, key, (*LANGUAGES, *extra))
    for language in words:
        words[language] = tuple(text for text, _ in check.texts(mapping, key, language))
    return words


def _named_entries(check: YamlChecker, root: LineDict, key: str) -> list[tuple[str, Any, int]]:
    """The entries of a ``name: value`` section whose names are usable identifiers."""
    section = root.get(key)
    if section is None:
        return []
    mapping = check.mapping(section, key, root.key_line(key))
    if mapping is None:
        return []
    entries = []
    for name, value in mapping.items():
        line = mapping.key_line(name)
        if isinstance(name, str) and _NAME.match(name):
            entries.append((name, value, line))
        else:
            check.report(
                line,
                join_key(key, name),
                f"'{name}' is not a usable name",
                "use letters, digits and '_' only, e.g. data_entry",
            )
    return entries


def _read_skills(check: YamlChecker, root: LineDict) -> dict[str, SkillDef]:
    skills = {}
    for name, value, line in _named_entries(check, root, "skills"):
        words = _by_language(check, value, f"skills.{name}", line, ("ignore",))
        skills[name] = SkillDef(name, words["ja"], words["en"], words["ignore"])
    return skills


def _read_out_of_scope(
    check: YamlChecker, root: LineDict, skills: Mapping[str, SkillDef]
) -> tuple[str, ...]:
    found = check.texts(root, "", "out_of_scope") if "out_of_scope" in root else ()
    for index, (name, line) in enumerate(found):
        _check_skill(check, name, f"out_of_scope[{index}]", line, skills)
    return tuple(name for name, _ in found)


def _check_skill(
    check: YamlChecker, name: str, key: str, line: int, skills: Mapping[str, SkillDef]
) -> None:
    if name not in skills:
        check.report(
            line,
            key,
            f"unknown skill '{name}'",
            "use one of the skills defined under skills: " + ", ".join(skills),
        )


def _read_replies(check: YamlChecker, root: LineDict) -> dict[str, Mapping[str, tuple[str, ...]]]:
    replies: dict[str, Mapping[str, tuple[str, ...]]] = {
        kind: {language: () for language in LANGUAGES} for kind in REPLY_KINDS
    }
    for name, value, line in _named_entries(check, root, "replies"):
        if name not in REPLY_KINDS:
            check.report(
                line,
                f"replies.{name}",
                "unknown kind of reply",
                "use one of: " + ", ".join(REPLY_KINDS),
            )
            continue
        replies[name] = _by_language(check, value, f"replies.{name}", line)
    return replies


def _read_formats(check: YamlChecker, root: LineDict) -> dict[str, tuple[str, ...]]:
    formats = {}
    for name, value, line in _named_entries(check, root, "formats"):
        holder = LineDict(line)
        holder[name] = value
        holder.key_lines[name] = line
        formats[name] = tuple(text for text, _ in check.texts(holder, "formats", name))
    return formats


# -- defaults ------------------------------------------------------------------------------


def _count(check: YamlChecker, mapping: LineDict, key: str, default: int, least: int) -> int:
    value = mapping.get(key, default)
    if isinstance(value, int) and not isinstance(value, bool) and value >= least:
        return value
    check.report(
        mapping.key_line(key),
        f"defaults.{key}",
        f"expected a whole number of at least {least}, got {describe(value)}",
        f"write a number such as {default}",
    )
    return default


_LIMIT = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*([mhd])\s*$")
_UNIT_SECONDS = {"m": 60, "h": 3600, "d": 86400}


def _read_limits(
    check: YamlChecker, mapping: LineDict, key: str, default: tuple[tuple[int, int], ...]
) -> tuple[tuple[int, int], ...]:
    """``["3/10m", "20/1d"]``: at most 3 mails per 10 minutes and 20 per day."""
    if key not in mapping:
        return default
    value = mapping[key]
    items = value if isinstance(value, list) else [value]
    limits = []
    for item in items:
        match = _LIMIT.match(str(item))
        if not match or int(match.group(1)) < 1 or int(match.group(2)) < 1:
            check.report(
                mapping.key_line(key),
                f"defaults.{key}",
                f"'{item}' is not a limit",
                'write COUNT/SPAN with a unit m, h or d, e.g. ["3/10m", "20/1d"]',
            )
            continue
        count, span, unit = int(match.group(1)), int(match.group(2)), match.group(3)
        limits.append((count, span * _UNIT_SECONDS[unit]))
    return tuple(limits) or default


def _month_day(text: str) -> MonthDay | None:
    match = _MONTH_DAY.match(text.strip())
    if not match:
        return None
    month, day = int(match.group(1)), int(match.group(2))
    days_in_month = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
    if not 1 <= month <= 12 or not 1 <= day <= days_in_month[month - 1]:
        return None
    return month, day


def _read_closures(check: YamlChecker, mapping: LineDict) -> tuple[tuple[MonthDay, MonthDay], ...]:
    if "closures" not in mapping:
        return Defaults.closures
    closures = []
    for index, (text, line) in enumerate(check.texts(mapping, "defaults", "closures")):
        first, _, last = text.replace("..", "/").partition("/")
        start, end = _month_day(first), _month_day(last or first)
        if start is None or end is None:
            check.report(
                line,
                f"defaults.closures[{index}]",
                f"'{text}' is not a closure",
                'write "MM-DD/MM-DD", e.g. "12-29/01-03" (it may cross the new year)',
            )
            continue
        closures.append((start, end))
    return tuple(closures)


def _read_defaults(check: YamlChecker, root: LineDict) -> Defaults:
    mapping = check.mapping(root.get("defaults", LineDict()), "defaults", root.key_line("defaults"))
    if mapping is None:
        return Defaults()
    check.keys(mapping, "defaults", _DEFAULT_KEYS)
    hours = check.text(mapping, "defaults", "working_hours") or Defaults.working_hours
    if parse_hours(hours) is None:
        check.report(
            mapping.key_line("working_hours"),
            "defaults.working_hours",
            f"'{hours}' is not a span of working hours",
            'write it as "09:00-18:00"',
        )
    holidays = check.choice(mapping, "defaults", "holidays", HOLIDAY_CALENDARS, "holiday calendar")
    return Defaults(
        deadline_business_days=_count(check, mapping, "deadline_business_days", 3, 1),
        reminder_hours_before=_count(check, mapping, "reminder_hours_before", 24, 0),
        automatic_mail_limits=_read_limits(
            check, mapping, "automatic_mail_limits", Defaults.automatic_mail_limits
        ),
        sender_mail_limits=_read_limits(
            check, mapping, "sender_mail_limits", Defaults.sender_mail_limits
        ),
        working_hours=hours,
        holidays=holidays or Defaults.holidays,
        closures=_read_closures(check, mapping),
    )


# -- the registries ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Node:
    """One ``key: value`` of a when/then mapping, with where it is for error messages."""

    mapping: LineDict
    prefix: str
    key: str

    @property
    def value(self) -> Any:
        return self.mapping.get(self.key)

    @property
    def line(self) -> int:
        return self.mapping.key_line(self.key)

    @property
    def path(self) -> str:
        return join_key(self.prefix, self.key)


ConditionCompiler = Callable[["_RouteReader", _Node], "Matcher | None"]
ActionCompiler = Callable[["_RouteReader", _Node], "Action | None"]

# Condition name → compiler; the order is the order `mailflow check` lists them in.
CONDITIONS: dict[str, ConditionCompiler] = {}
# Action name → compiler.
ACTIONS: dict[str, ActionCompiler] = {}


def condition(name: str) -> Callable[[ConditionCompiler], ConditionCompiler]:
    """Register a condition kind: ``@condition("subject_matches")``."""

    def register(compiler: ConditionCompiler) -> ConditionCompiler:
        if name in CONDITIONS:
            raise ValueError(f"condition '{name}' is registered twice")
        CONDITIONS[name] = compiler
        return compiler

    return register


def action(name: str) -> Callable[[ActionCompiler], ActionCompiler]:
    """Register an action kind: ``@action("priority")``."""

    def register(compiler: ActionCompiler) -> ActionCompiler:
        if name in ACTIONS:
            raise ValueError(f"action '{name}' is registered twice")
        ACTIONS[name] = compiler
        return compiler

    return register


# -- reading when/then -----------------------------------------------------------------------


def _yes(matched: bool) -> str:
    return "yes" if matched else "no"


def _listing(words: tuple[str, ...], joiner: str = ", ", most: int = 3) -> str:
    """``'至急', '急ぎ', … (+3)``: enough of a long list to recognise it."""
    shown = joiner.join(f"'{word}'" for word in words[:most])
    return shown + (f", … (+{len(words) - most})" if len(words) > most else "")


@dataclass
class _RouteReader:
    """Compiles when/then mappings through the registries, reporting into ``check``."""

    check: YamlChecker
    skills: Mapping[str, SkillDef]
    out_of_scope: tuple[str, ...]
    defaults: Defaults
    references: list[Reference] = field(default_factory=list)

    def failed_since(self, count: int) -> bool:
        return len(self.check.problems) > count

    def when(self, mapping: LineDict, prefix: str) -> list[Matcher]:
        """Every key of a ``when`` mapping compiled; unknown keys are reported."""
        self.check.keys(mapping, prefix, list(CONDITIONS))
        matchers = []
        for key in mapping:
            compiler = CONDITIONS.get(key) if isinstance(key, str) else None
            found = compiler(self, _Node(mapping, prefix, key)) if compiler else None
            if found is not None:
                matchers.append(found)
        return matchers

    def then(self, mapping: LineDict, prefix: str) -> list[Action]:
        self.check.keys(mapping, prefix, list(ACTIONS))
        actions = []
        for key in mapping:
            compiler = ACTIONS.get(key) if isinstance(key, str) else None
            found = compiler(self, _Node(mapping, prefix, key)) if compiler else None
            if found is not None:
                actions.append(found)
        if "route" in mapping and "assign" in mapping:
            self.check.report(
                mapping.key_line("assign"),
                join_key(prefix, "assign"),
                "`assign` and `route` both decide where the mail goes",
                "keep one: `assign: <member>` routes to that member",
            )
        return actions

    def texts(self, node: _Node) -> tuple[str, ...] | None:
        """One text or a list of texts; None (with a problem) when anything is wrong."""
        count = len(self.check.problems)
        found = self.check.texts(node.mapping, node.prefix, node.key)
        if self.failed_since(count):
            return None
        if not found:
            self.check.report(node.line, node.path, "expected at least one value", "list them")
            return None
        return tuple(text for text, _ in found)

    def choices(self, node: _Node, options: tuple[str, ...], noun: str) -> tuple[str, ...] | None:
        """One of ``options``, or a list of them."""
        count = len(self.check.problems)
        found = self.check.texts(node.mapping, node.prefix, node.key)
        single = isinstance(node.value, str)
        for index, (text, line) in enumerate(found):
            if text not in options:
                self.check.report(
                    line,
                    node.path if single else f"{node.path}[{index}]",
                    f"unknown {noun} '{text}'",
                    "use one of: " + ", ".join(options),
                )
        if not found and not self.failed_since(count):
            self.check.report(node.line, node.path, "expected at least one value", "list them")
        return None if self.failed_since(count) else tuple(text for text, _ in found)

    def choice(self, node: _Node, options: tuple[str, ...], noun: str) -> str | None:
        count = len(self.check.problems)
        value = self.check.choice(node.mapping, node.prefix, node.key, options, noun)
        return None if self.failed_since(count) else value

    def flag(self, node: _Node) -> bool | None:
        count = len(self.check.problems)
        value = self.check.flag(node.mapping, node.prefix, node.key, False)
        return None if self.failed_since(count) else value

    def skill_names(self, node: _Node) -> tuple[str, ...] | None:
        count = len(self.check.problems)
        found = self.check.texts(node.mapping, node.prefix, node.key)
        for index, (name, line) in enumerate(found):
            _check_skill(self.check, name, f"{node.path}[{index}]", line, self.skills)
        return None if self.failed_since(count) else tuple(name for name, _ in found)

    def patterns(self, node: _Node) -> tuple[re.Pattern[str], ...] | None:
        count = len(self.check.problems)
        compiled = []
        for pattern, line in self.check.texts(node.mapping, node.prefix, node.key):
            try:
                compiled.append(re.compile(pattern))
            except re.error as error:
                self.check.report(
                    line,
                    node.path,
                    f"bad regular expression '{pattern}': {error}",
                    "correct the pattern; in YAML, write it in single quotes "
                    "so backslashes stay as they are",
                )
        return None if self.failed_since(count) else tuple(compiled)

    def nested(self, value: Any, path: str, line: int) -> Matcher | None:
        """A condition mapping inside ``any``/``all``/``not``: all its keys must hold."""
        mapping = self.check.mapping(value, path, line)
        if mapping is None:
            return None
        count = len(self.check.problems)
        matchers = self.when(mapping, path)
        if self.failed_since(count):
            return None
        if len(matchers) == 1:
            return matchers[0]
        return _combine(tuple(matchers), all, " and ", "({}) → {}")

    def nested_list(self, node: _Node) -> tuple[Matcher, ...] | None:
        items = self.check.sequence(node.value, node.path, node.line)
        if items is None:
            return None
        if not items:
            self.check.report(node.line, node.path, "expected at least one condition", "list them")
            return None
        matchers = [
            self.nested(item, f"{node.path}[{index}]", items.item_line(index))
            for index, item in enumerate(items)
        ]
        found = tuple(matcher for matcher in matchers if matcher is not None)
        return found if len(found) == len(matchers) else None


def _combine(
    matchers: tuple[Matcher, ...], rule: Callable[[Any], bool], joiner: str, shape: str
) -> Matcher:
    def match(mail: _Mail) -> Verdict:
        verdicts = [matcher(mail) for matcher in matchers]
        matched = rule(ok for ok, _ in verdicts)
        return matched, shape.format(joiner.join(reason for _, reason in verdicts), _yes(matched))

    return match


# -- conditions ------------------------------------------------------------------------------


@condition("any")
def _any(reader: _RouteReader, node: _Node) -> Matcher | None:
    """At least one of a list of condition mappings holds."""
    matchers = reader.nested_list(node)
    return _combine(matchers, any, "; ", "any of ({}) → {}") if matchers else None


@condition("all")
def _all(reader: _RouteReader, node: _Node) -> Matcher | None:
    """Every one of a list of condition mappings holds."""
    matchers = reader.nested_list(node)
    return _combine(matchers, all, "; ", "all of ({}) → {}") if matchers else None


@condition("not")
def _not(reader: _RouteReader, node: _Node) -> Matcher | None:
    """A condition mapping does not hold."""
    inner = reader.nested(node.value, node.path, node.line)
    if inner is None:
        return None

    def match(mail: _Mail) -> Verdict:
        matched, reason = inner(mail)
        return not matched, f"not ({reason}) → {_yes(not matched)}"

    return match


@condition("client")
def _client(reader: _RouteReader, node: _Node) -> Matcher | None:
    """The request comes from one of these client ids."""
    clients = reader.texts(node)
    if clients is None:
        return None
    for text in clients:
        reader.references.append(Reference("client", text, node.line, node.path))
    label = " or ".join(clients)

    def match(mail: _Mail) -> Verdict:
        matched = mail.facts.client_id in clients
        return matched, f"client is {label} → {_yes(matched)} ({mail.facts.client_id})"

    return match


def _fact_choice(attribute: str, options: tuple[str, ...], noun: str) -> ConditionCompiler:
    """A condition comparing one fact of the mail with one or several allowed values."""

    def compile_choice(reader: _RouteReader, node: _Node) -> Matcher | None:
        allowed = reader.choices(node, options, noun)
        if allowed is None:
            return None
        label = " or ".join(allowed)

        def match(mail: _Mail) -> Verdict:
            actual = mail.fact(attribute)
            matched = actual in allowed
            return matched, f"{noun} is {label} → {_yes(matched)} ({actual})"

        return match

    return compile_choice


condition("plan")(_fact_choice("plan", PLANS, "plan"))
condition("sender_role")(_fact_choice("sender_role", ROLES, "role"))
condition("language")(_fact_choice("language", LANGUAGES, "language"))
condition("priority")(_fact_choice("priority", PRIORITIES, "priority"))
condition("weekday")(_fact_choice("weekday", WEEKDAYS, "weekday"))


def _text_search(where: str) -> ConditionCompiler:
    """``<where>_matches``: a regular expression (or any of a list) found in the text."""
    label = {"subject": "subject", "body": "body", "text": "subject or body"}[where]

    def compile_search(reader: _RouteReader, node: _Node) -> Matcher | None:
        patterns = reader.patterns(node)
        if patterns is None:
            return None
        shown = " or ".join(f"'{pattern.pattern}'" for pattern in patterns)

        def match(mail: _Mail) -> Verdict:
            text = mail.plain(where)
            found = next((hit for p in patterns if (hit := p.search(text)) is not None), None)
            detail = f" ('{found.group(0)}')" if found is not None else ""
            return found is not None, f"{label} matches {shown} → {_yes(found is not None)}{detail}"

        return match

    return compile_search


def _text_contains(where: str) -> ConditionCompiler:
    """``<where>_contains``: any of these words (matched like skill keywords)."""
    label = {"subject": "subject", "body": "body", "text": "subject or body"}[where]

    def compile_contains(reader: _RouteReader, node: _Node) -> Matcher | None:
        words = reader.texts(node)
        if words is None:
            return None
        keywords, shown = KeywordSet(words), _listing(words)

        def match(mail: _Mail) -> Verdict:
            found = keywords.find(mail.folded(where))
            detail = f" ('{found}')" if found is not None else ""
            return (
                found is not None,
                f"{label} contains {shown} → {_yes(found is not None)}{detail}",
            )

        return match

    return compile_contains


condition("subject_matches")(_text_search("subject"))
condition("body_matches")(_text_search("body"))
condition("matches")(_text_search("text"))
condition("subject_contains")(_text_contains("subject"))
condition("body_contains")(_text_contains("body"))
condition("contains")(_text_contains("text"))


@condition("has_attachments")
def _has_attachments(reader: _RouteReader, node: _Node) -> Matcher | None:
    wanted = reader.flag(node)
    if wanted is None:
        return None

    label = "has attachments" if wanted else "has no attachments"

    def match(mail: _Mail) -> Verdict:
        matched = mail.facts.has_attachments == wanted
        return matched, f"{label} → {_yes(matched)}"

    return match


@condition("skill")
def _skill(reader: _RouteReader, node: _Node) -> Matcher | None:
    """The request needs at least one of these skills (inferred, set by hand or by a route)."""
    wanted = reader.skill_names(node)
    if wanted is None:
        return None
    label = " or ".join(wanted)

    def match(mail: _Mail) -> Verdict:
        found = [skill for skill in wanted if skill in mail.draft.skills]
        detail = ", ".join(mail.skill_evidence(skill) for skill in found)
        if not found:
            detail = "needs " + (", ".join(mail.draft.skills) or "no known skill")
        return bool(found), f"skill {label} → {_yes(bool(found))} ({detail})"

    return match


@condition("out_of_scope")
def _needs_out_of_scope(reader: _RouteReader, node: _Node) -> Matcher | None:
    """The request needs a skill listed under ``out_of_scope:`` (true), or none (false)."""
    wanted = reader.flag(node)
    if wanted is None:
        return None
    unservable = reader.out_of_scope
    label = "needs an out-of-scope skill" if wanted else "needs no out-of-scope skill"

    def match(mail: _Mail) -> Verdict:
        found = [skill for skill in mail.draft.skills if skill in unservable]
        detail = ", ".join(mail.skill_evidence(skill) for skill in found) or "none"
        matched = bool(found) == wanted
        return matched, f"{label} → {_yes(matched)} ({detail})"

    return match


@condition("time")
def _time(reader: _RouteReader, node: _Node) -> Matcher | None:
    """The mail was sent between two times of day (desk time zone), e.g. "18:00-24:00"."""
    count = len(reader.check.problems)
    text = reader.check.text(node.mapping, node.prefix, node.key)
    span = parse_hours(text) if text else None
    if span is None:
        if not reader.failed_since(count):
            reader.check.report(
                node.line,
                node.path,
                f"{describe(node.value)} is not a span of time",
                'write it as "18:00-24:00" (in the desk\'s time zone)',
            )
        return None
    start, end = span

    def match(mail: _Mail) -> Verdict:
        local = mail.local.time()
        matched = start <= local < end or (end == time(23, 59, 59) and local >= end)
        return matched, f"sent between {text} → {_yes(matched)} ({local:%H:%M})"

    return match


@condition("working_hours")
def _working_hours(reader: _RouteReader, node: _Node) -> Matcher | None:
    """Sent Monday–Friday within ``defaults.working_hours``, outside the closures."""
    wanted = reader.flag(node)
    if wanted is None:
        return None
    span = parse_hours(reader.defaults.working_hours) or (time(9), time(18))
    closures = reader.defaults.closures
    label = "sent in working hours" if wanted else "sent outside working hours"

    def match(mail: _Mail) -> Verdict:
        local = mail.local
        working = (
            local.weekday() < 5
            and span[0] <= local.time() < span[1]
            and not _in_closure((local.month, local.day), closures)
        )
        matched = working == wanted
        return matched, f"{label} → {_yes(matched)} ({WEEKDAYS[local.weekday()]} {local:%H:%M})"

    return match


def _in_closure(day: MonthDay, closures: tuple[tuple[MonthDay, MonthDay], ...]) -> bool:
    for first, last in closures:
        if first <= last and first <= day <= last:
            return True
        if first > last and (day >= first or day <= last):
            return True
    return False


# -- actions ---------------------------------------------------------------------------------


@action("route")
def _route(reader: _RouteReader, node: _Node) -> Action | None:
    """Where the mail goes: director, member (dedicated), auto_assign, out_of_scope, quarantine."""
    target = reader.choice(node, ROUTES, "route")
    if target is None:
        return None

    def apply(draft: _Draft) -> None:
        draft.route, draft.member = target, None

    return Action(f"route → {target}", apply)


@action("assign")
def _assign(reader: _RouteReader, node: _Node) -> Action | None:
    """Route to one named member (checked against people.yaml)."""
    member = reader.check.text(node.mapping, node.prefix, node.key)
    if not member:
        if member == "":
            reader.check.report(node.line, node.path, "expected a member id", "write assign: sato")
        return None
    reader.references.append(Reference("member", member, node.line, node.path))

    def apply(draft: _Draft) -> None:
        draft.route, draft.member = "assign", member

    return Action(f"assign → {member}", apply)


@action("priority")
def _priority(reader: _RouteReader, node: _Node) -> Action | None:
    priority = reader.choice(node, PRIORITIES, "priority")
    if priority is None:
        return None

    def apply(draft: _Draft) -> None:
        draft.priority = priority

    return Action(f"priority → {priority}", apply)


@action("due")
def _due(reader: _RouteReader, node: _Node) -> Action | None:
    """The deadline, in business days after the mail's date."""
    days = node.value
    if not isinstance(days, int) or isinstance(days, bool) or days < 0:
        reader.check.report(
            node.line,
            node.path,
            f"expected a whole number of business days, got {describe(days)}",
            "write how many business days the request may take, e.g. due: 2",
        )
        return None

    def apply(draft: _Draft) -> None:
        draft.due = days

    return Action(f"due → {days} business days", apply)


@action("skills")
def _add_skills(reader: _RouteReader, node: _Node) -> Action | None:
    names = reader.skill_names(node)
    if names is None:
        return None

    def apply(draft: _Draft) -> None:
        draft.skills.extend(name for name in names if name not in draft.skills)

    return Action("skills + " + ", ".join(names), apply)


@action("tags")
def _tags(reader: _RouteReader, node: _Node) -> Action | None:
    tags = reader.texts(node)
    if tags is None:
        return None

    def apply(draft: _Draft) -> None:
        draft.tags.extend(tag for tag in tags if tag not in draft.tags)

    return Action("tags + " + ", ".join(tags), apply)


@action("template")
def _template(reader: _RouteReader, node: _Node) -> Action | None:
    """Send the named template (templates/<lang>/<name>.*.j2) to the client."""
    name = reader.check.text(node.mapping, node.prefix, node.key)
    if name is None or not _NAME.match(name):
        if name is not None:
            reader.check.report(
                node.line,
                node.path,
                f"'{name}' is not a template name",
                "use the file name without language and extension, e.g. after_hours",
            )
        return None

    def apply(draft: _Draft) -> None:
        if name not in draft.templates:
            draft.templates.append(name)

    return Action(f"template → {name}", apply)


# -- reading routes --------------------------------------------------------------------------


def _read_route(reader: _RouteReader, entry: LineDict, path: str) -> RouteDef | None:
    check = reader.check
    check.keys(entry, path, _ROUTE_KEYS, required=("name", "then"))
    name = check.text(entry, path, "name")
    when = check.mapping(
        entry.get("when", LineDict(entry.line)), join_key(path, "when"), entry.key_line("when")
    )
    then = (
        check.mapping(entry["then"], join_key(path, "then"), entry.key_line("then"))
        if "then" in entry
        else None
    )
    matchers = reader.when(when, join_key(path, "when")) if when is not None else []
    actions = reader.then(then, join_key(path, "then")) if then is not None else []
    continue_ = check.flag(entry, path, "continue", False)
    if not name or when is None or then is None:
        return None
    return RouteDef(
        name,
        when,
        then,
        continue_,
        entry.line,
        check.text(entry, path, "description") or "",
        tuple(matchers),
        tuple(actions),
    )


def _read_routes(check: YamlChecker, root: LineDict, reader: _RouteReader) -> tuple[RouteDef, ...]:
    items = check.sequence(root.get("routes"), "routes", root.key_line("routes")) or LineList()
    routes: list[RouteDef] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        path = f"routes[{index}]"
        entry = check.mapping(item, path, items.item_line(index))
        route_def = _read_route(reader, entry, path) if entry is not None else None
        if route_def is None:
            continue
        if route_def.name in seen:
            check.report(
                route_def.line,
                f"{path}.name",
                f"duplicate route name '{route_def.name}' (first on line {seen[route_def.name]})",
                "give each route its own name",
            )
        seen.setdefault(route_def.name, route_def.line)
        routes.append(route_def)
    return tuple(routes)


# -- routing ---------------------------------------------------------------------------------


@dataclass
class _Draft:
    """The decision being built while routes are tried."""

    priority: str
    skills: list[str]
    route: str | None = None
    member: str | None = None
    due: int | None = None
    tags: list[str] = field(default_factory=list)
    templates: list[str] = field(default_factory=list)
    applied: list[str] = field(default_factory=list)


class _Mail:
    """One mail as the matchers see it; derived forms are computed once, when needed."""

    def __init__(self, facts: MailFacts, draft: _Draft) -> None:
        self.facts = facts
        self.draft = draft
        # Each inferred skill → the keyword that revealed it.
        self.evidence: dict[str, str] = {}

    def fact(self, name: str) -> str:
        if name == "priority":
            return self.draft.priority
        if name == "language":
            return self.language
        if name == "weekday":
            return WEEKDAYS[self.local.weekday()]
        return str(getattr(self.facts, name))

    def skill_evidence(self, skill: str) -> str:
        keyword = self.evidence.get(skill)
        return f"{skill}: '{keyword}'" if keyword else skill

    @cached_property
    def language(self) -> str:
        return detect_language(self.facts.subject + "\n" + self.facts.text)

    @cached_property
    def local(self) -> datetime:
        zone = _zone(self.facts.timezone)
        sent = self.facts.sent
        return sent.replace(tzinfo=zone) if sent.tzinfo is None else sent.astimezone(zone)

    @cached_property
    def _folded(self) -> dict[str, str]:
        subject, body = normalize(self.facts.subject), normalize(self.facts.text)
        return {"subject": subject, "body": body, "text": subject + "\n" + body}

    def plain(self, where: str) -> str:
        """NFKC text (case kept, lines kept) for regular expressions."""
        if where == "subject":
            return nfkc(self.facts.subject)
        if where == "body":
            return nfkc(self.facts.text)
        # NFKC never joins across a line break: the halves normalise apart (and are kept).
        return nfkc(self.facts.subject) + "\n" + nfkc(self.facts.text)

    def folded(self, where: str) -> str:
        """Normalised text for keyword lists."""
        return self._folded[where]


@lru_cache(maxsize=16)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def infer_skills(subject: str, text: str, ruleset: RuleSet) -> tuple[tuple[str, str], ...]:
    """The skills a request's words reveal, each with the keyword that revealed it.

    Skills come in the order of rules.yaml. The body's signature and contact lines
    (``TEL: 03-…``) are left out; see ``skills.request_words``.
    """
    return _infer(normalize(subject) + "\n" + normalize(request_words(text)), ruleset)


def _infer(words: str, ruleset: RuleSet) -> tuple[tuple[str, str], ...]:
    found = []
    for name, keywords, ignore in ruleset.skill_index:
        keyword = keywords.find(ignore.mask(words) if ignore else words)
        if keyword is not None:
            found.append((name, keyword))
    return tuple(found)


def _request_skills(mail: _Mail, ruleset: RuleSet) -> tuple[tuple[str, str], ...]:
    # The body is normalised once for the matchers; only a signature forces a second pass.
    text = mail.facts.text
    cleaned = request_words(text)
    body = mail.folded("body") if cleaned == text else normalize(cleaned)
    return _infer(mail.folded("subject") + "\n" + body, ruleset)


def route(facts: MailFacts, ruleset: RuleSet) -> Routing:
    """Try the routes in order and say what they decided, and why."""
    draft = _Draft(facts.priority, list(dict.fromkeys(facts.skills)))
    mail = _Mail(facts, draft)
    inferred = _request_skills(mail, ruleset)
    mail.evidence = dict(inferred)
    draft.skills.extend(skill for skill, _ in inferred if skill not in draft.skills)
    trace, decided, last = [], None, None
    for rule in ruleset.routes:
        verdicts = [matcher(mail) for matcher in rule.matchers]
        matched = all(ok for ok, _ in verdicts)
        reasons = tuple(reason for _, reason in verdicts) or ("no conditions → always",)
        trace.append(RuleTrace(rule.name, matched, reasons))
        if not matched:
            continue
        for step in rule.actions:
            step.apply(draft)
            draft.applied.append(f"{rule.name}: {step.description}")
        last = rule.name
        if not rule.continue_:
            decided = rule.name
            break
    return _routing(facts, ruleset, mail, draft, decided or last or "(none)", trace, inferred)


def _routing(
    facts: MailFacts,
    ruleset: RuleSet,
    mail: _Mail,
    draft: _Draft,
    rule: str,
    trace: list[RuleTrace],
    inferred: tuple[tuple[str, str], ...],
) -> Routing:
    # With no route chosen, the client's plan decides: its director or its own member.
    fallback = "member" if facts.plan == ServiceModel.DIRECT.value else "director"
    return Routing(
        rule=rule,
        route=draft.route or fallback,
        trace=tuple(trace),
        member=draft.member,
        priority=draft.priority,
        due_business_days=draft.due,
        skills=tuple(draft.skills),
        skill_matches=inferred,
        out_of_scope=tuple(skill for skill in draft.skills if skill in ruleset.out_of_scope),
        tags=tuple(draft.tags),
        templates=tuple(draft.templates),
        language=mail.language,
        actions=tuple(draft.applied),
        default_route=draft.route is None,
    )


# -- entry points --------------------------------------------------------------------------


def rules_from_data(
    data: Any,
    check: YamlChecker,
    *,
    member_ids: Collection[str] | None = None,
    client_ids: Collection[str] | None = None,
) -> RuleSet:
    """Validate and compile parsed rules.yaml data; problems are left in ``check``."""
    if data is None:
        return RuleSet(replies=_read_replies(check, LineDict()))
    root = check.mapping(data, "", 1)
    if root is None:
        return RuleSet()
    check.keys(root, "", _TOP_KEYS)
    skills = _read_skills(check, root)
    out_of_scope = _read_out_of_scope(check, root, skills)
    defaults = _read_defaults(check, root)
    reader = _RouteReader(check, skills, out_of_scope, defaults)
    rules = RuleSet(
        skills=skills,
        out_of_scope=out_of_scope,
        replies=_read_replies(check, root),
        defaults=defaults,
        routes=_read_routes(check, root, reader),
        formats=_read_formats(check, root),
        references=tuple(reader.references),
    )
    check.problems.extend(
        _reference_problems(rules, check.file, member_ids=member_ids, client_ids=client_ids)
    )
    return rules


def _reference_problems(
    rules: RuleSet,
    file: str,
    *,
    member_ids: Collection[str] | None,
    client_ids: Collection[str] | None,
) -> list[Problem]:
    known = {"member": member_ids, "client": client_ids}
    problems = []
    for reference in rules.references:
        ids = known[reference.kind]
        if ids is None or reference.id in ids:
            continue
        problems.append(
            Problem(
                file,
                reference.line,
                reference.key,
                f"unknown {reference.kind} '{reference.id}'",
                f"use one of the {reference.kind}s in people.yaml: " + (", ".join(ids) or "…"),
            )
        )
    return problems


def check_against(rules: RuleSet, directory: Any, file: str = RULES_FILE) -> list[Problem]:
    """Problems of member and client ids that rules.yaml names but people.yaml lacks.

    ``directory`` is a ``mailflow.directory.Directory`` (anything with ``members`` and
    ``clients`` mappings); instance loading calls this once both files have loaded.
    """
    return _reference_problems(
        rules, file, member_ids=list(directory.members), client_ids=list(directory.clients)
    )


def load_rules(
    path: Path,
    display_name: str = RULES_FILE,
    *,
    member_ids: Collection[str] | None = None,
    client_ids: Collection[str] | None = None,
) -> RuleSet:
    """Read, validate and compile rules.yaml; one ConfigError lists every problem.

    With ``member_ids`` / ``client_ids`` (from people.yaml), the ids that routes name are
    checked too; without them, ``check_against`` does it later.
    """
    check = YamlChecker(display_name)
    data = load_yaml(path, display_name, check.problems)
    rules = rules_from_data(data, check, member_ids=member_ids, client_ids=client_ids)
    check.raise_if_any()
    return rules
