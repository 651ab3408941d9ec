"""Automatic checks on a delivery before the director reviews it (pure).

Files present; file types that match the format the client asked for; nothing that names
another client (a file meant for someone else is the worst mistake a desk can make); the
deadline met or missed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from mailflow.directory import Client, Directory
from mailflow.model import FileRef
from mailflow.situation import RequestView

# Format key (rules.yaml `formats`) → file extensions that satisfy it.
EXTENSIONS: dict[str, tuple[str, ...]] = {
    "excel": ("xlsx", "xls", "xlsm", "csv"),
    "word": ("docx", "doc"),
    "pdf": ("pdf",),
    "powerpoint": ("pptx", "ppt"),
    "csv": ("csv",),
}
# Formats delivered as a link rather than a file.
LINKS: dict[str, str] = {"google_sheets": "docs.google.com", "google_docs": "docs.google.com"}
_LEGAL_FORMS = re.compile(
    r"(株式会社|有限会社|合同会社|\(株\)|（株）|㈱|inc\.?|llc|ltd\.?|co\.,?|corp\.?)",
    re.IGNORECASE,
)


def pre_checks(
    view: RequestView,
    files: Sequence[FileRef],
    text: str,
    client: Client,
    directory: Directory,
    now: datetime,
) -> list[dict[str, Any]]:
    return [
        _files_present(files, text),
        _format(view.data.get("format"), files, text),
        _other_clients(files, text, client, directory),
        _deadline(view.due, now),
    ]


def _check(name: str, ok: bool, detail: str) -> dict[str, Any]:
    return {"name": name, "ok": ok, "detail": detail}


def _files_present(files: Sequence[FileRef], text: str) -> dict[str, Any]:
    if files:
        return _check("files", True, ", ".join(f.filename for f in files))
    return _check(
        "files",
        "http" in text,
        "no files attached" + (", a link is given" if "http" in text else ""),
    )


def _format(wanted: str | None, files: Sequence[FileRef], text: str) -> dict[str, Any]:
    if not wanted:
        return _check("format", True, "no format was asked for")
    if wanted in LINKS:
        ok = LINKS[wanted] in text
        return _check("format", ok, f"{wanted} asked for; " + ("link found" if ok else "no link"))
    extensions = EXTENSIONS.get(wanted, (wanted,))
    found = [f.filename for f in files if f.filename.lower().rsplit(".", 1)[-1] in extensions]
    if found:
        return _check("format", True, f"{wanted} asked for: {', '.join(found)}")
    return _check("format", False, f"{wanted} asked for, but no .{'/.'.join(extensions)} file")


def _other_clients(
    files: Sequence[FileRef], text: str, client: Client, directory: Directory
) -> dict[str, Any]:
    haystack = "\n".join([*(f.filename for f in files), text]).lower()
    hits = [
        other.company
        for other in directory.clients.values()
        if other.id != client.id and any(name in haystack for name in _names(other))
    ]
    if hits:
        return _check("other_clients", False, "names another client: " + ", ".join(hits))
    return _check("other_clients", True, "no other client is named")


def _names(client: Client) -> list[str]:
    """The company name with and without its legal form (株式会社アクメ → アクメ)."""
    full = client.company.lower().strip()
    short = _LEGAL_FORMS.sub("", full).strip(" ,.")
    return [name for name in {full, short} if len(name) >= 2]


def _deadline(due: datetime | None, now: datetime) -> dict[str, Any]:
    if due is None:
        return _check("deadline", True, "no deadline")
    if now <= due:
        return _check("deadline", True, f"on time (due {due.isoformat(timespec='minutes')})")
    late = now - due
    hours = late.total_seconds() / 3600
    return _check(
        "deadline", False, f"{hours:.1f} h late (due {due.isoformat(timespec='minutes')})"
    )
