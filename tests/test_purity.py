"""The pure middle never touches I/O: its modules may not import these."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "mailflow"
PURE = [
    "model.py",
    "classify.py",
    "threading.py",
    "workflow.py",
    "render.py",
    "compose.py",
    "directory.py",
    "rules.py",
    "parse",
    "asked.py",
    "calendar_jp.py",
    "assign.py",
    "skills.py",
    "schedule.py",
    "digest.py",
    "commands.py",
    "conversation.py",
    "transitions.py",
    "opening.py",
    "situation.py",
    "precheck.py",
    "auth.py",
    "ratelimit.py",
    "phrases.py",
]
FORBIDDEN = {
    "peewee",
    "playhouse",
    "imapclient",
    "aiosmtpd",
    "smtplib",
    "socket",
    "psycopg2",
    "mailflow.store",
    "mailflow.outbox",
    "mailflow.sources",
    "mailflow.service",
}


def _modules(entry: str) -> list[Path]:
    path = PACKAGE / entry
    return sorted(path.rglob("*.py")) if path.is_dir() else [path]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize(
    "path",
    [p for entry in PURE for p in _modules(entry)],
    ids=lambda p: str(p.relative_to(PACKAGE)),
)
def test_pure_module_does_no_io(path: Path) -> None:
    bad = {
        name
        for name in _imports(path)
        if any(name == f or name.startswith(f + ".") for f in FORBIDDEN)
    }
    assert not bad, f"{path.name} imports {sorted(bad)}"
