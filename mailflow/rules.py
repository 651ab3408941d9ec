"""``rules.yaml`` → a validated ``RuleSet``: skills, reply words, defaults and routes.

Rules are data. Each condition name under ``when:`` and each action under ``then:`` is
listed in ``CONDITIONS`` / ``ACTIONS`` with the kind of value it takes; the routing engine
implements one small matcher per name, and loading fails (with the YAML line) on any name
or value it would not understand. Regular expressions are compiled at load for the same
reason: a typo must stop ``mailflow check``, not the processing of a mail.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mailflow.model import Role, ServiceModel
from mailflow.settings import LANGUAGES
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
ROUTES = ("director", "member", "out_of_scope")
PRIORITIES = ("high", "normal", "low")
HOLIDAY_CALENDARS = ("jp", "none")

# Condition name → kind of value. "conditions" is a list of condition mappings (any, all);
# "condition" is one mapping (not). Several keys in one mapping must all hold.
CONDITIONS: Mapping[str, str] = {
    "any": "conditions",
    "all": "conditions",
    "not": "condition",
    "skill": "skills",
    "plan": "plan",
    "sender_role": "role",
    "language": "language",
    "client": "texts",
    "subject_matches": "regex",
    "body_matches": "regex",
    "matches": "regex",
    "subject_contains": "texts",
    "body_contains": "texts",
    "has_attachments": "flag",
}
# Action name → kind of value.
ACTIONS: Mapping[str, str] = {
    "route": "route",
    "priority": "priority",
    "tags": "texts",
    "assign": "text",
}
_CHOICES: Mapping[str, tuple[str, ...]] = {
    "plan": tuple(model.value for model in ServiceModel),
    "role": tuple(role.value for role in Role),
    "language": LANGUAGES,
    "route": ROUTES,
    "priority": PRIORITIES,
}
_TOP_KEYS = ("skills", "out_of_scope", "replies", "formats", "defaults", "routes")
_ROUTE_KEYS = ("name", "description", "when", "then", "continue")
_DEFAULT_KEYS = (
    "deadline_business_days",
    "reminder_hours_before",
    "auto_reply_limit_per_day",
    "working_hours",
    "holidays",
    "closures",
)
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_MONTH_DAY = re.compile(r"^(\d{1,2})-(\d{1,2})$")

MonthDay = tuple[int, int]


@dataclass(frozen=True)
class SkillDef:
    """A skill and the words that reveal it in a client's text."""

    name: str
    keywords_ja: tuple[str, ...] = ()
    keywords_en: tuple[str, ...] = ()

    @property
    def keywords(self) -> tuple[str, ...]:
        return self.keywords_ja + self.keywords_en


@dataclass(frozen=True)
class Defaults:
    deadline_business_days: int = 3
    reminder_hours_before: int = 24
    auto_reply_limit_per_day: int = 20
    working_hours: str = "09:00-18:00"
    holidays: str = "jp"
    # Closed every year, e.g. the New Year break: ((12, 29), (1, 3)); ranges may wrap.
    closures: tuple[tuple[MonthDay, MonthDay], ...] = (((12, 29), (1, 3)),)


@dataclass(frozen=True)
class RouteDef:
    """One routing rule; ``when``/``then`` keep the YAML mappings (with their lines)."""

    name: str
    when: Mapping[str, Any]
    then: Mapping[str, Any]
    continue_: bool = False
    line: int = 0
    description: str = ""


@dataclass(frozen=True)
class RuleSet:
    skills: Mapping[str, SkillDef] = field(default_factory=dict)
    out_of_scope: tuple[str, ...] = ()
    replies: Mapping[str, Mapping[str, tuple[str, ...]]] = field(default_factory=dict)
    defaults: Defaults = field(default_factory=Defaults)
    routes: tuple[RouteDef, ...] = ()
    formats: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


# -- words by language ---------------------------------------------------------------------


def _by_language(check: YamlChecker, value: Any, key: str, line: int) -> dict[str, tuple[str, ...]]:
    """``{ja: [...], en: [...]}`` → tuples per language (both always present)."""
    words: dict[str, tuple[str, ...]] = {language: () for language in LANGUAGES}
    if value is None:
        return words
    mapping = check.mapping(value, key, line)
    if mapping is None:
        return words
    check.keys(mapping, key, LANGUAGES)
    for language in LANGUAGES:
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
        words = _by_language(check, value, f"skills.{name}", line)
        skills[name] = SkillDef(name, words["ja"], words["en"])
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
        auto_reply_limit_per_day=_count(check, mapping, "auto_reply_limit_per_day", 20, 1),
        working_hours=hours,
        holidays=holidays or Defaults.holidays,
        closures=_read_closures(check, mapping),
    )


# -- routes --------------------------------------------------------------------------------


@dataclass
class _RouteChecker:
    """Checks the values under when/then against the CONDITIONS/ACTIONS registries."""

    check: YamlChecker
    skills: Mapping[str, SkillDef]

    def value(self, kind: str, mapping: LineDict, prefix: str, key: str) -> None:
        checks: dict[str, Callable[[LineDict, str, str], None]] = {
            "conditions": self.conditions,
            "condition": self.condition,
            "skills": self.skill,
            "texts": self.texts,
            "text": self.text,
            "regex": self.regex,
            "flag": self.flag,
        }
        if kind in _CHOICES:
            self.check.choice(mapping, prefix, key, _CHOICES[kind], kind)
        else:
            checks[kind](mapping, prefix, key)

    def when(self, mapping: LineDict, prefix: str) -> None:
        self.check.keys(mapping, prefix, list(CONDITIONS))
        for key in mapping:
            if key in CONDITIONS:
                self.value(CONDITIONS[key], mapping, prefix, key)

    def then(self, mapping: LineDict, prefix: str) -> None:
        self.check.keys(mapping, prefix, list(ACTIONS))
        for key in mapping:
            if key in ACTIONS:
                self.value(ACTIONS[key], mapping, prefix, key)

    def condition(self, mapping: LineDict, prefix: str, key: str) -> None:
        inner = self.check.mapping(mapping.get(key), join_key(prefix, key), mapping.key_line(key))
        if inner is not None:
            self.when(inner, join_key(prefix, key))

    def conditions(self, mapping: LineDict, prefix: str, key: str) -> None:
        path = join_key(prefix, key)
        items = self.check.sequence(mapping.get(key), path, mapping.key_line(key)) or LineList()
        for index, item in enumerate(items):
            inner = self.check.mapping(item, f"{path}[{index}]", items.item_line(index))
            if inner is not None:
                self.when(inner, f"{path}[{index}]")

    def skill(self, mapping: LineDict, prefix: str, key: str) -> None:
        for index, (name, line) in enumerate(self.check.texts(mapping, prefix, key)):
            _check_skill(self.check, name, f"{join_key(prefix, key)}[{index}]", line, self.skills)

    def texts(self, mapping: LineDict, prefix: str, key: str) -> None:
        self.check.texts(mapping, prefix, key)

    def text(self, mapping: LineDict, prefix: str, key: str) -> None:
        self.check.text(mapping, prefix, key)

    def flag(self, mapping: LineDict, prefix: str, key: str) -> None:
        self.check.flag(mapping, prefix, key, False)

    def regex(self, mapping: LineDict, prefix: str, key: str) -> None:
        for pattern, line in self.check.texts(mapping, prefix, key):
            try:
                re.compile(pattern)
            except re.error as error:
                self.check.report(
                    line,
                    join_key(prefix, key),
                    f"bad regular expression '{pattern}': {error}",
                    "correct the pattern; in YAML, write it in single quotes "
                    "so backslashes stay as they are",
                )


def _read_route(routes: _RouteChecker, entry: LineDict, path: str) -> RouteDef | None:
    check = routes.check
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
    if when is not None:
        routes.when(when, join_key(path, "when"))
    if then is not None:
        routes.then(then, join_key(path, "then"))
    continue_ = check.flag(entry, path, "continue", False)
    if not name or when is None or then is None:
        return None
    return RouteDef(
        name, when, then, continue_, entry.line, check.text(entry, path, "description") or ""
    )


def _read_routes(
    check: YamlChecker, root: LineDict, skills: Mapping[str, SkillDef]
) -> tuple[RouteDef, ...]:
    items = check.sequence(root.get("routes"), "routes", root.key_line("routes")) or LineList()
    route_checker = _RouteChecker(check, skills)
    routes: list[RouteDef] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        path = f"routes[{index}]"
        entry = check.mapping(item, path, items.item_line(index))
        route = _read_route(route_checker, entry, path) if entry is not None else None
        if route is None:
            continue
        if route.name in seen:
            check.report(
                route.line,
                f"{path}.name",
                f"duplicate route name '{route.name}' (first on line {seen[route.name]})",
                "give each route its own name",
            )
        seen.setdefault(route.name, route.line)
        routes.append(route)
    return tuple(routes)


# -- entry points --------------------------------------------------------------------------


def rules_from_data(data: Any, check: YamlChecker) -> RuleSet:
    """Validate parsed rules.yaml data; problems are left in ``check``."""
    if data is None:
        return RuleSet(replies=_read_replies(check, LineDict()))
    root = check.mapping(data, "", 1)
    if root is None:
        return RuleSet()
    check.keys(root, "", _TOP_KEYS)
    skills = _read_skills(check, root)
    return RuleSet(
        skills=skills,
        out_of_scope=_read_out_of_scope(check, root, skills),
        replies=_read_replies(check, root),
        defaults=_read_defaults(check, root),
        routes=_read_routes(check, root, skills),
        formats=_read_formats(check, root),
    )


def load_rules(path: Path, display_name: str = RULES_FILE) -> RuleSet:
    """Read and validate rules.yaml; one ConfigError lists every problem."""
    check = YamlChecker(display_name)
    data = load_yaml(path, display_name, check.problems)
    rules = rules_from_data(data, check)
    check.raise_if_any()
    return rules
