"""Notice → subject, text and HTML, written from Jinja templates.

Templates live in ``templates/<lang>/<kind>.{subject,txt,html}.j2``: an instance's own
``templates/`` first, then the repository default. One :class:`Renderer` holds one Jinja
``Environment`` for the life of the process (SIGHUP builds a new one), so every template is
compiled once.

Client text only ever reaches a template as a variable value: it is never compiled, so
``{{ 7*7 }}`` in a client's mail comes out as written, and HTML parts autoescape it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from email.utils import parseaddr
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import nodes
from markupsafe import Markup, escape

import mailflow
from mailflow.errors import MailflowError
from mailflow.model import Notice

__all__ = ["MissingTemplateError", "Rendered", "Renderer", "default_template_dir"]

PARTS = ("subject", "txt", "html")
REQUIRED_PARTS = ("subject", "txt")
FALLBACK_LANGUAGES = ("ja", "en")

_WEEKDAYS_JA = "月火水木金土日"
_ISO_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
_SKILL_LABELS = {
    "ja": {
        "research": "リサーチ・調査",
        "data_entry": "データ入力",
        "translation": "翻訳",
        "writing": "ライティング",
        "accounting": "経理",
        "design": "デザイン",
        "scheduling": "日程調整",
        "phone": "電話対応",
        "office_visit": "訪問・外出",
    },
    "en": {
        "research": "research",
        "data_entry": "data entry",
        "translation": "translation",
        "writing": "writing",
        "accounting": "accounting",
        "design": "design",
        "scheduling": "scheduling",
        "phone": "phone calls",
        "office_visit": "office visits",
    },
}
_PRIORITY_LABELS = {
    "ja": {"high": "高", "normal": "通常", "low": "低"},
    "en": {"high": "high", "normal": "normal", "low": "low"},
}


class MissingTemplateError(MailflowError, KeyError):
    """No template exists for a notice kind (in its language or the fallback)."""

    def __init__(self, name: str, searched: Sequence[str]) -> None:
        super().__init__(name)
        self.name = name
        self.searched = tuple(searched)

    def __str__(self) -> str:
        return f"missing template {self.name!r} (searched: {', '.join(self.searched)})"


@dataclass(frozen=True)
class Rendered:
    """One notice written out: a one-line subject, the text part, the optional HTML part."""

    subject: str
    text: str
    html: str | None


def default_template_dir() -> Path:
    """The repository's templates: packaged in ``_data`` when installed, else the checkout."""
    package = Path(mailflow.__file__).parent
    packaged = package / "_data" / "templates"
    return packaged if packaged.is_dir() else package.parent / "templates"


# A kind's compiled subject, text and (optional) HTML templates.
_Parts = tuple[jinja2.Template, jinja2.Template, jinja2.Template | None]


class Renderer:
    """Writes notices from one Jinja environment built over ``template_dirs``.

    Earlier directories override later ones, name by name. ``default_language`` is used
    only when a notice's language has no template directory at all.
    """

    def __init__(
        self,
        template_dirs: Sequence[Path | str],
        *,
        default_language: str = "ja",
        bytecode_cache: jinja2.BytecodeCache | None = None,
    ):
        self.template_dirs = tuple(Path(d) for d in template_dirs)
        self.default_language = default_language
        self.env = _build_environment(self.template_dirs, bytecode_cache)
        self.names = frozenset(self.env.list_templates(extensions=["j2"]))
        self.languages = frozenset(name.split("/")[0] for name in self.names if "/" in name)
        # The compiled subject, text and HTML (or None) of each language and kind, so a
        # render skips naming them and the environment's loader and cache look-up. Kept per
        # Renderer: the new one a reload (SIGHUP) builds starts empty.
        self._parts: dict[tuple[str, str], _Parts] = {}

    @classmethod
    def default(
        cls,
        extra_dirs: Iterable[Path | str] = (),
        *,
        default_language: str = "ja",
        bytecode_cache: jinja2.BytecodeCache | None = None,
    ) -> Renderer:
        """A renderer over ``extra_dirs`` (instance overrides) and then the repository
        default; compiled templates are kept in ``bytecode_cache`` if given (the
        instance's: ``instance.template_cache``)."""
        dirs = [*extra_dirs, default_template_dir()]
        return cls(dirs, default_language=default_language, bytecode_cache=bytecode_cache)

    def kinds(self, language: str) -> frozenset[str]:
        """The notice kinds ``language`` has a subject template for."""
        suffix = ".subject.j2"
        prefix = f"{language}/"
        return frozenset(
            name[len(prefix) : -len(suffix)]
            for name in self.names
            if name.startswith(prefix) and name.endswith(suffix)
        )

    def render(
        self, notice: Notice, *, ref: str | None, desk_name: str, desk_address: str
    ) -> Rendered:
        """Write ``notice`` in its language; raises :class:`MissingTemplateError`."""
        language = self._language(notice.language)
        context = {
            **notice.context,
            "ref": ref,
            "kind": notice.kind,
            "lang": language,
            "desk": {"name": desk_name, "address": desk_address},
        }
        subject_part, text_part, html_part = self._compiled(language, notice.kind)
        subject = one_line(subject_part.render(context))
        if ref and f"[{ref}]" not in subject:
            # An override that forgot the ref would break threading for every reply.
            subject = f"[{ref}] {subject}"
        text = _tidy_text(text_part.render(context))
        html = html_part.render(context) if html_part is not None else None
        return Rendered(subject=subject, text=text, html=html)

    def check(self) -> list[str]:
        """Problems with the templates: compile errors, kinds missing a required part, and
        names used from an imported template that it does not define."""
        problems = [p for name in sorted(self.names) if (p := self._compile_problem(name))]
        if not problems:
            problems = [p for name in sorted(self.names) for p in self._import_problems(name)]
        for language in sorted(self.languages):
            for kind in sorted(self._all_kinds(language)):
                for part in REQUIRED_PARTS:
                    name = self._name(language, kind, part)
                    if name not in self.names:
                        problems.append(f"{name}: missing (every kind needs subject and txt)")
        return problems

    def _compile_problem(self, name: str) -> str | None:
        try:
            self.env.get_template(name)
        except jinja2.TemplateSyntaxError as exc:
            return f"{name}:{exc.lineno}: {exc.message}"
        except jinja2.TemplateNotFound as exc:
            return f"{name}: includes a missing template {exc.name!r}"
        return None

    def _import_problems(self, name: str) -> list[str]:
        """``labels.phrases`` where the imported ``labels`` has none: an instance's own
        copy of a shared file (ja/_labels.j2), made before the default one gained a name,
        would otherwise fail only when a mail needs that name."""
        source, _, _ = self.env.loader.get_source(self.env, name)  # type: ignore[union-attr]
        tree = self.env.parse(source)
        used: dict[str, set[str]] = {}
        for node in tree.find_all(nodes.Getattr):
            if isinstance(node.node, nodes.Name):
                used.setdefault(node.node.name, set()).add(node.attr)
        imports = [(i.template, used.get(i.target, set())) for i in tree.find_all(nodes.Import)]
        imports += [
            (i.template, {n if isinstance(n, str) else n[0] for n in i.names})
            for i in tree.find_all(nodes.FromImport)
        ]
        problems = []
        for template, wanted in imports:
            if not isinstance(template, nodes.Const):
                continue
            partial = template.value
            try:
                module = self.env.get_template(partial).module
            except Exception:  # noqa: BLE001 - a partial that needs a context is not checked
                continue
            problems += [
                f"{name}: uses {attribute} of {partial}, which does not define it"
                for attribute in sorted(wanted)
                if not hasattr(module, attribute)
            ]
        return problems

    def _all_kinds(self, language: str) -> set[str]:
        prefix = f"{language}/"
        kinds = set()
        for name in self.names:
            base = name.removeprefix(prefix)
            if name.startswith(prefix) and not base.startswith("_") and "/" not in base:
                kinds.add(base.split(".")[0])
        return kinds

    def _language(self, wanted: str) -> str:
        if wanted in self.languages:
            return wanted
        for language in (self.default_language, *FALLBACK_LANGUAGES):
            if language in self.languages:
                return language
        return wanted

    def _compiled(self, language: str, kind: str) -> _Parts:
        parts = self._parts.get((language, kind))
        if parts is None:
            html = self._name(language, kind, "html")
            parts = self._parts[language, kind] = (
                self._template(self._name(language, kind, "subject")),
                self._template(self._name(language, kind, "txt")),
                self._template(html) if html in self.names else None,
            )
        return parts

    def _template(self, name: str) -> jinja2.Template:
        if name not in self.names:
            raise MissingTemplateError(name, [str(d) for d in self.template_dirs])
        return self.env.get_template(name)

    @staticmethod
    def _name(language: str, kind: str, part: str) -> str:
        return f"{language}/{kind}.{part}.j2"


# Names a plain dict answers as attributes (its methods): ``x.items`` must stay the method.
_DICT_ATTRIBUTES = frozenset(dir(dict))


class _Environment(jinja2.Environment):
    """Jinja's environment, with the lookups every render repeats made cheaper.

    Results are exactly Jinja's own; only the work to reach them differs.
    """

    def getattr(self, obj: Any, attribute: str) -> Any:
        # Contexts are plain dicts, and Jinja tries ``getattr`` first: for ``request.due``
        # that raises and catches an AttributeError before the key is read. A plain dict has
        # no attributes but its class's, so reading the key directly gives the same value.
        if type(obj) is dict and attribute not in _DICT_ATTRIBUTES:
            try:
                return obj[attribute]
            except KeyError:
                return self.undefined(obj=obj, name=attribute)
        return super().getattr(obj, attribute)

    def make_globals(self, d: MutableMapping[str, Any] | None) -> MutableMapping[str, Any]:
        # Jinja chains each template's globals to the environment's so later changes to
        # ``env.globals`` show through; ours are fixed once built, and a plain dict is much
        # cheaper to copy into each render's context than a ChainMap.
        return {**self.globals, **(d or {})}


def _build_environment(
    dirs: Sequence[Path], bytecode_cache: jinja2.BytecodeCache | None
) -> jinja2.Environment:
    env = _Environment(
        loader=jinja2.FileSystemLoader([str(d) for d in dirs]),
        undefined=jinja2.StrictUndefined,
        autoescape=_autoescape,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        # Templates are loaded once; a reload (SIGHUP) builds a new Renderer.
        auto_reload=False,
        cache_size=-1,
        bytecode_cache=bytecode_cache,
    )
    env.filters.update(
        excerpt=excerpt,
        quote=quote,
        nl2br=nl2br,
        filesize=filesize,
        format_date=format_date,
        skill_label=skill_label,
        skill_labels=skill_labels,
        priority_label=priority_label,
        addr_spec=addr_spec,
        one_line=one_line,
        say=say,
    )
    return env


def _autoescape(name: str | None) -> bool:
    return name is not None and name.endswith(".html.j2")


def _tidy_text(text: str) -> str:
    # Trailing blanks go, except in "-- ", the signature separator mail readers know.
    lines = text.replace("\r\n", "\n").split("\n")
    tidy = [line if line == "-- " else line.rstrip() for line in lines]
    return "\n".join(tidy).strip("\n") + "\n"


# Filters. Each takes plain values and returns text; none of them evaluates its input.


def one_line(value: object) -> str:
    """All whitespace (CR, LF, tabs, U+2028…) collapsed to single spaces."""
    return " ".join(str(value).split())


def excerpt(value: object, lines: int = 20, lang: str = "ja") -> str:
    """The first ``lines`` lines of a text, with a marker when some were left out."""
    all_lines = str(value).replace("\r\n", "\n").strip("\n").split("\n")
    kept = all_lines[:lines]
    left_out = len(all_lines) - len(kept)
    if left_out:
        kept.append(
            f"…（以下 {left_out} 行省略）" if lang == "ja" else f"… ({left_out} more lines)"
        )
    return "\n".join(kept)


def quote(value: object) -> str:
    """Each line prefixed with ``> ``, as a mail quote."""
    return "\n".join(f"> {line}".rstrip() for line in str(value).split("\n"))


def nl2br(value: object) -> Markup:
    """Escaped text with line breaks kept as ``<br>``: safe to put in HTML."""
    text = str(value).replace("\r\n", "\n")
    # Escaping leaves "\n" alone, so the text is escaped whole rather than line by line.
    return Markup(str(escape(text)).replace("\n", "<br>\n"))


def filesize(value: object) -> str:
    """A byte count for people: ``512 B``, ``12 KB``, ``3.4 MB``."""
    size = float(str(value))
    for unit in ("B", "KB", "MB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit != "MB" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


def format_date(value: object, lang: str = "ja") -> str:
    """An ISO date or datetime for people: ``2026年12月3日（木）18:00``, ``Thu 3 Dec 2026 18:00``.

    The time is shown only when there is one (not midnight, not a bare date); text that is
    not ISO comes back unchanged.
    """
    if type(value) is str and type(lang) is str:
        # A request's deadline is written in every part of every letter about it.
        return _format_date_text(value, lang)
    return _format_date(value, lang)


@functools.lru_cache(maxsize=1024)
def _format_date_text(value: str, lang: str) -> str:
    return _format_date(value, lang)


def _format_date(value: object, lang: str) -> str:
    parsed = _parse_iso(value)
    if parsed is None:
        return str(value)
    shown_time = isinstance(parsed, datetime) and (parsed.hour, parsed.minute) != (0, 0)
    if lang == "ja":
        day = f"{parsed.year}年{parsed.month}月{parsed.day}日（{_WEEKDAYS_JA[parsed.weekday()]}）"
    else:
        day = f"{parsed:%a} {parsed.day} {parsed:%b %Y}"
    if not shown_time:
        return day
    return f"{day}{parsed:%H:%M}" if lang == "ja" else f"{day} {parsed:%H:%M}"


def _parse_iso(value: object) -> date | datetime | None:
    if isinstance(value, date):
        return value
    text = str(value).strip()
    try:
        if _ISO_DATE_RE.fullmatch(text):
            return date.fromisoformat(text)
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def skill_label(value: object, lang: str = "ja") -> str:
    """A skill id as people say it (``data_entry`` → ``データ入力``)."""
    return _SKILL_LABELS.get(lang, {}).get(str(value), str(value))


def skill_labels(value: Iterable[object], lang: str = "ja") -> str:
    """Skill ids listed as people write them (``リサーチ・調査、データ入力``).

    The same text as ``map("skill_label", lang) | join("、")`` (``", "`` in other languages),
    without ``map`` looking the filter up again for every skill: new-request mail lists
    the skills in both of its parts."""
    separator = "、" if lang == "ja" else ", "
    return separator.join([skill_label(skill, lang) for skill in value])


def priority_label(value: object, lang: str = "ja") -> str:
    return _PRIORITY_LABELS.get(lang, {}).get(str(value), str(value))


# Facts said with the filters' own words (skill and priority names, dates), in any language.
_SAID_BY_FILTER: dict[str, Any] = {
    "skills": lambda value, lang: skill_labels(value.split(", "), lang),
    "priority": priority_label,
    "due": format_date,
    "until": format_date,
    "last": format_date,
}


def say(
    item: Mapping[str, Any],
    phrases: Mapping[str, str],
    words: Mapping[str, Mapping[str, str]],
    lang: str,
    english: object,
) -> str:
    """A phrase (``item``'s ``code`` and ``facts``: mailflow/phrases.py) in a language's
    words: ``phrases`` maps each code to its ``%(fact)s`` sentence, ``words`` maps a fact's
    name to the words for its values (an empty value too; values joined by " or " are
    said one by one, joined by the table's " or "); skills, priorities and dates are said
    by the filters of the same names. A code ``phrases`` lacks is said by ``english``.

    A filter, not a macro: its text is escaped by an HTML template like any value (a
    macro of a non-HTML file is not), and a new-request mail says four of these."""
    sentence = phrases.get(item.get("code") or "")
    if sentence is None:
        return str(english)
    facts = {name: _fact_in(name, str(value), words, lang) for name, value in _facts(item)}
    return sentence % facts


def _facts(item: Mapping[str, Any]) -> Iterable[tuple[str, Any]]:
    facts = item.get("facts")
    return facts.items() if isinstance(facts, Mapping) else ()


def _fact_in(name: str, value: str, words: Mapping[str, Mapping[str, str]], lang: str) -> str:
    table = words.get(name, {})
    if value in table:
        return table[value]
    said = _SAID_BY_FILTER.get(name)
    if said is not None:
        return str(said(value, lang))
    if " or " in value and table:
        joiner = table.get(" or ", " or ")
        return joiner.join(table.get(part, part) for part in value.split(" or "))
    return value


def addr_spec(value: object) -> str:
    """The bare address of ``Name <user@example>``."""
    return parseaddr(str(value))[1] or str(value)
