"""Reading mailflow's configuration files so that every error can name its line.

PyYAML forgets where things were once it has built Python values, so the loader here
builds mappings as ``LineDict`` and sequences as ``LineList``, which remember the 1-based
line of themselves, of each key and of each item. ``YamlChecker`` collects the problems
found while validating such data, so a file reports all its mistakes at once.

The small value checks shared by ``mailflow.toml``, ``people.yaml`` and ``rules.yaml``
(an email address, a ``09:00-18:00`` span) live here too.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Hashable, Iterator, Sequence
from datetime import time
from pathlib import Path
from typing import Any

import yaml

from mailflow.errors import ConfigError, Problem

_MERGE_TAG = "tag:yaml.org,2002:merge"
UNKNOWN_KEY_FIX = "remove it or check the spelling; known keys: "
INIT_FIX = "run `mailflow init`"


class LineDict(dict[Any, Any]):
    """A YAML mapping that remembers its line and the line of each key (1-based)."""

    def __init__(self, line: int = 0) -> None:
        super().__init__()
        self.line = line
        self.key_lines: dict[Any, int] = {}

    def key_line(self, key: Any) -> int:
        """The line of ``key``, or of the mapping itself when the key is absent."""
        return self.key_lines.get(key, self.line)


class LineList(list[Any]):
    """A YAML sequence that remembers its line and the line of each item (1-based)."""

    def __init__(self, line: int = 0) -> None:
        super().__init__()
        self.line = line
        self.item_lines: list[int] = []

    def item_line(self, index: int) -> int:
        if 0 <= index < len(self.item_lines):
            return self.item_lines[index]
        return self.line


class LineLoader(yaml.SafeLoader):
    """A safe loader whose mappings and sequences know their lines."""


# libyaml's parser when PyYAML was built with it: reading rules.yaml then takes a few
# milliseconds instead of most of a start-up. Its marks (lines, columns) are the same;
# its error messages are vaguer, so a file it refuses is read again by LineLoader.
_CSafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class FastLineLoader(_CSafeLoader):  # type: ignore[valid-type,misc]
    """LineLoader on libyaml."""


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _construct_mapping(loader: LineLoader, node: yaml.Node) -> LineDict:
    assert isinstance(node, yaml.MappingNode)
    # Merge keys (<<: *base) are expanded first; later keys override merged ones.
    loader.flatten_mapping(node)
    mapping = LineDict(_line(node))
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, Hashable):
            raise yaml.constructor.ConstructorError(
                None, None, "a key must be plain text, not a list or mapping", key_node.start_mark
            )
        mapping[key] = loader.construct_object(value_node, deep=True)
        mapping.key_lines[key] = _line(key_node)
    return mapping


def _construct_sequence(loader: LineLoader, node: yaml.Node) -> LineList:
    assert isinstance(node, yaml.SequenceNode)
    sequence = LineList(_line(node))
    for item in node.value:
        sequence.append(loader.construct_object(item, deep=True))
        sequence.item_lines.append(_line(item))
    return sequence


for _loader in (LineLoader, FastLineLoader):
    _loader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)
    _loader.add_constructor("tag:yaml.org,2002:seq", _construct_sequence)


def join_key(prefix: str, key: object) -> str:
    """``clients[1]`` + ``member`` → ``clients[1].member``: the path a Problem shows."""
    return f"{prefix}.{key}" if prefix else str(key)


def _duplicate_keys(node: yaml.Node, path: str, file: str, seen: set[int]) -> Iterator[Problem]:
    # Aliases make the node graph a DAG (or worse); visit each node once.
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield from _duplicate_keys(item, f"{path}[{index}]", file, seen)
    elif isinstance(node, yaml.MappingNode):
        first: dict[tuple[str, str], int] = {}
        for key_node, value_node in node.value:
            # A key repeated after a merge overrides it on purpose, so merges are skipped.
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _MERGE_TAG:
                continue
            name = str(key_node.value)
            child = join_key(path, name)
            found = first.get((key_node.tag, name))
            if found is None:
                first[(key_node.tag, name)] = _line(key_node)
            else:
                yield Problem(
                    file,
                    _line(key_node),
                    child,
                    f"duplicate key '{name}' (first on line {found})",
                    f"keep one '{name}' and remove the other",
                )
            yield from _duplicate_keys(value_node, child, file, seen)


def _syntax_problem(error: yaml.YAMLError, file: str) -> Problem:
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    message = getattr(error, "problem", None) or str(error)
    line = int(mark.line) + 1 if mark is not None else None
    if "'\\t'" in message:
        fix = "indent with spaces, not tabs"
    elif mark is not None:
        fix = f"correct the YAML near column {mark.column + 1}"
    else:
        fix = "correct the YAML"
    return Problem(file, line, "(syntax)", str(message), fix)


def read_config_text(path: Path, display_name: str) -> str:
    """The text of a configuration file, or a ConfigError that says how to get one."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            [Problem(display_name, None, "(file)", f"not found at {path}", INIT_FIX)]
        ) from None
    except OSError as error:
        raise ConfigError(
            [
                Problem(
                    display_name,
                    None,
                    "(file)",
                    f"cannot be read: {error.strerror}",
                    f"check the permissions of {path}",
                )
            ]
        ) from None
    try:
        # utf-8-sig: editors on Windows like to add a byte-order mark.
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise ConfigError(
            [
                Problem(
                    display_name,
                    line,
                    "(encoding)",
                    "the file is not UTF-8 text",
                    "save it as UTF-8 (not Shift_JIS)",
                )
            ]
        ) from None


def parse_yaml(text: str, display_name: str, problems: list[Problem] | None = None) -> Any:
    """YAML text → LineDict / LineList / scalars.

    Syntax errors raise ConfigError at once. Duplicate keys are appended to ``problems``
    when given (so the caller can report them with its own findings), else raised.
    """
    try:
        data, found = _load(FastLineLoader, text, display_name)
    except yaml.YAMLError:
        try:
            data, found = _load(LineLoader, text, display_name)
        except yaml.YAMLError as error:
            raise ConfigError([_syntax_problem(error, display_name)]) from None
    if problems is None and found:
        raise ConfigError(found)
    if problems is not None:
        problems.extend(found)
    return data


def _load(kind: type[yaml.SafeLoader], text: str, display_name: str) -> tuple[Any, list[Problem]]:
    loader = kind(text)
    try:
        node = loader.get_single_node()
        found = list(_duplicate_keys(node, "", display_name, set())) if node else []
        return (loader.construct_document(node) if node is not None else None), found
    finally:
        loader.dispose()


def load_yaml(path: Path, display_name: str, problems: list[Problem] | None = None) -> Any:
    """Read and parse a YAML file; see ``parse_yaml``."""
    return parse_yaml(read_config_text(path, display_name), display_name, problems)


# -- shared value checks ----------------------------------------------------------------

# A domain needs a dot: "sato@members" is far more often a typo than a real mailbox.
_ADDRESS = re.compile(
    r"^[^@\s<>(),;:\"\[\]]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$"
)
_HOURS = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")


def is_address(text: str) -> bool:
    """A bare mailbox ``local@domain`` (no display name, no spaces)."""
    return bool(_ADDRESS.match(text))


def parse_hours(text: str) -> tuple[time, time] | None:
    """``"09:00-18:00"`` → (09:00, 18:00); None when malformed or not increasing."""
    match = _HOURS.match(text.strip())
    if not match:
        return None
    start_h, start_m, end_h, end_m = (int(part) for part in match.groups())
    if (end_h, end_m) <= (start_h, start_m) or (end_h == 24 and end_m):
        return None
    end = time(23, 59, 59) if end_h == 24 else time(end_h, end_m)
    return time(start_h, start_m), end


def describe(value: object) -> str:
    """How a wrong value reads in an error: ``123 (a number)``."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"{str(value).lower()} (a yes/no value)"
    if isinstance(value, int | float):
        return f"{value} (a number)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"'{value}' (text)"
    return f"{value!r} ({type(value).__name__})"


class YamlChecker:
    """Collects the problems of one YAML file while its data is validated."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Problem] = []

    def report(self, line: int | None, key: str, message: str, fix: str) -> None:
        self.problems.append(Problem(self.file, line or None, key, message, fix))

    def raise_if_any(self) -> None:
        # Reported in file order, which is how a person fixes them.
        if self.problems:
            raise ConfigError(sorted(self.problems, key=lambda problem: problem.line or 0))

    def mapping(self, value: Any, key: str, line: int | None) -> LineDict | None:
        """``value`` if it is a mapping; None (and a problem) otherwise."""
        if isinstance(value, LineDict):
            return value
        self.report(
            line,
            key or "(top)",
            f"expected a mapping (key: value), got {describe(value)}",
            "write it as `key: value` lines or `{key: value, …}`",
        )
        return None

    def sequence(self, value: Any, key: str, line: int | None) -> LineList | None:
        """``value`` if it is a list; an empty list for an empty value; else None and a problem."""
        if value is None:
            return LineList(line or 0)
        if isinstance(value, LineList):
            return value
        self.report(
            line,
            key,
            f"expected a list, got {describe(value)}",
            "write it as `- item` lines or `[a, b]`",
        )
        return None

    def keys(
        self, mapping: LineDict, prefix: str, known: Sequence[str], required: Collection[str] = ()
    ) -> None:
        """Report unknown keys (with the known ones listed) and missing required keys."""
        for key in mapping:
            if key not in known:
                self.report(
                    mapping.key_line(key),
                    join_key(prefix, key),
                    "unknown key",
                    UNKNOWN_KEY_FIX + ", ".join(known),
                )
        for key in required:
            if mapping.get(key) is None:
                self.report(
                    mapping.line,
                    join_key(prefix, key),
                    "required key is missing",
                    f"add `{key}:` to this entry",
                )

    def text(self, mapping: LineDict, prefix: str, key: str) -> str | None:
        """A string value (None when absent or wrong, with a problem when wrong)."""
        value = mapping.get(key)
        if value is None or isinstance(value, str):
            return value.strip() if isinstance(value, str) else None
        self.report(
            mapping.key_line(key),
            join_key(prefix, key),
            f"expected text, got {describe(value)}",
            "put the value in quotes",
        )
        return None

    def texts(self, mapping: LineDict, prefix: str, key: str) -> tuple[tuple[str, int], ...]:
        """A list of strings as (text, line) pairs; a single string counts as a list of one."""
        value = mapping.get(key)
        if isinstance(value, str):
            return ((value.strip(), mapping.key_line(key)),)
        items = self.sequence(value, join_key(prefix, key), mapping.key_line(key))
        if items is None:
            return ()
        result = []
        for index, item in enumerate(items):
            if isinstance(item, str) and item.strip():
                result.append((item.strip(), items.item_line(index)))
            else:
                self.report(
                    items.item_line(index),
                    f"{join_key(prefix, key)}[{index}]",
                    f"expected text, got {describe(item)}",
                    "write a non-empty text item",
                )
        return tuple(result)

    def choice(
        self, mapping: LineDict, prefix: str, key: str, options: Sequence[str], noun: str
    ) -> str | None:
        """One of ``options`` (None when absent or wrong)."""
        value = self.text(mapping, prefix, key)
        if value is None or value in options:
            return value
        self.report(
            mapping.key_line(key),
            join_key(prefix, key),
            f"unknown {noun} '{value}'",
            "use one of: " + ", ".join(options),
        )
        return None

    def flag(self, mapping: LineDict, prefix: str, key: str, default: bool) -> bool:
        value = mapping.get(key, default)
        if isinstance(value, bool):
            return value
        self.report(
            mapping.key_line(key),
            join_key(prefix, key),
            f"expected true or false, got {describe(value)}",
            "write true or false",
        )
        return default
