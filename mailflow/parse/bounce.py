"""Delivery failure reports → :class:`~mailflow.model.BounceReport`.

Standard reports (RFC 3464 ``multipart/report; report-type=delivery-status``) are read
from their status fields. Many MTAs still send plain-text bounces (qmail, older Postfix
and Exim, Exchange 2003, Japanese carriers): for those the failed recipients and the
returned Message-ID are read from the text, best effort. Nothing here raises.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email.message import Message

from mailflow.model import BounceReport
from mailflow.parse.headers import message_ids, unfold

_FIELD = re.compile(r"^([A-Za-z][A-Za-z0-9-]*)[ \t]*:[ \t]*(.*)$")
_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_ADDRESS = r"[^\s<>@:;,()\"]+@[^\s<>@:;,()\"]+\.[A-Za-z0-9-]+"
# qmail and Postfix: "<addr>:"; sendmail: "<addr>" alone on its line after a heading.
_BRACKETED = re.compile(rf"^\s*<({_ADDRESS})>\s*(:|\.\.\.|$)")
# Exim lists bare addresses, indented, below "The following address(es) failed:".
# OpenSMTPD writes "addr: 550 …" below "the following list of recipients:".
_EXIM_HEAD = re.compile(
    r"following address(es)? failed|could not be delivered to|following (list of )?recipients",
    re.I,
)
_INDENTED = re.compile(rf"^\s*({_ADDRESS})\s*(:.*)?$")
_INLINE_ID = re.compile(r"^[\s>]*message-id\s*:\s*(<[^<>\s]+>)", re.IGNORECASE | re.MULTILINE)
_TEXT_SIGNS = re.compile(
    r"this\s+is\s+the\s+qmail-send\s+program|this\s+is\s+the\s+(postfix|mail\s+system)\s+"
    r"program|mail\s+delivery\s+software|could\s+not\s+be\s+delivered|delivery\s+to\s+the\s+"
    r"following\s+recipients?\s+failed|permanent\s+fatal\s+errors|undeliverable|"
    r"unable\s+to\s+deliver|user\s+unknown|error\s+has\s+occurred\s+while\s+attempting|"
    r"transcript\s+of\s+session",
    re.IGNORECASE,
)
_PERMANENT_TEXT = re.compile(r"permanent (fatal )?error|given up|user unknown|does not exist", re.I)
_TEMPORARY_TEXT = re.compile(r"temporar|will (continue to )?(be )?retr|still trying|delayed", re.I)
_MAX_TEXT = 64_000


@dataclass
class ReportParts:
    """The machine-readable pieces of a report, gathered by the MIME walk."""

    status_fields: list[list[tuple[str, str]]] = field(default_factory=list)
    returned_ids: list[str] = field(default_factory=list)


def status_blocks(part: Message, payload: bytes) -> list[list[tuple[str, str]]]:
    """The field blocks of a message/delivery-status part, however it was encoded."""
    children = part.get_payload()
    if isinstance(children, list) and children:
        return [
            [(key.lower(), unfold(str(value))) for key, value in child.raw_items()]
            for child in children
            if isinstance(child, Message)
        ]
    return fields_from_text(payload.decode("utf-8", "replace"))


def fields_from_text(text: str) -> list[list[tuple[str, str]]]:
    """``Name: value`` blocks separated by blank lines, continuation lines joined."""
    blocks: list[list[tuple[str, str]]] = [[]]
    for line in text.replace("\r\n", "\n").split("\n"):
        if not line.strip():
            if blocks[-1]:
                blocks.append([])
            continue
        if line[0] in " \t" and blocks[-1]:
            name, value = blocks[-1][-1]
            blocks[-1][-1] = (name, f"{value} {line.strip()}")
            continue
        match = _FIELD.match(line)
        if match:
            blocks[-1].append((match.group(1).lower(), match.group(2).strip()))
    return [block for block in blocks if block]


def returned_id(headers_text: str) -> str:
    """The Message-ID in a text/rfc822-headers part (or any pasted header block)."""
    match = _INLINE_ID.search(headers_text[:_MAX_TEXT])
    return match.group(1) if match else ""


def from_report(parts: ReportParts, text: str) -> BounceReport | None:
    """A report from RFC 3464 status fields; None when they name no recipient."""
    recipients = [block for block in parts.status_fields if _recipient(block)]
    if not recipients:
        return None
    failed = [b for b in recipients if _get(b, "action").lower().startswith("fail")]
    chosen = failed or recipients
    first = chosen[0]
    status = _status(_get(first, "status"))
    action = _get(first, "action").lower()
    diagnostic = " ".join(_after_type(_get(first, "diagnostic-code")).split())
    permanent = status.startswith("5") if status else action.startswith("fail")
    return BounceReport(
        recipients=tuple(dict.fromkeys(_recipient(block) for block in chosen)),
        original_message_id=_original_id(parts, text),
        status=status,
        diagnostic=diagnostic,
        permanent=permanent,
    )


def from_text(text: str, parts: ReportParts) -> BounceReport | None:
    """Best effort for plain-text bounces: recipients and status read from the words."""
    text = text[:_MAX_TEXT]
    if "final-recipient:" in text.lower():
        # A report whose MIME structure broke: its status fields are in the text.
        pasted = ReportParts(fields_from_text(text), parts.returned_ids)
        report = from_report(pasted, text)
        if report is not None:
            return report
    if not _TEXT_SIGNS.search(text):
        return None
    recipients, diagnostic = _text_recipients(text.replace("\r\n", "\n").split("\n"))
    if not recipients:
        return None
    status = _status(diagnostic) or _status(text)
    if status:
        permanent = status.startswith("5")
    else:
        permanent = bool(_PERMANENT_TEXT.search(text)) or not _TEMPORARY_TEXT.search(text)
    return BounceReport(
        recipients=tuple(dict.fromkeys(recipients)),
        original_message_id=_original_id(parts, text),
        status=status,
        diagnostic=diagnostic,
        permanent=permanent,
    )


def _text_recipients(lines: list[str]) -> tuple[list[str], str]:
    """Failed addresses and the diagnostic line that follows the first of them."""
    found: list[str] = []
    diagnostic = ""
    exim = False
    for i, line in enumerate(lines):
        if line.startswith(("Return-Path:", "Received:", "--- Below this line")):
            break  # the returned copy starts: its addresses are not the failed ones
        exim = exim or bool(_EXIM_HEAD.search(line))
        match = _BRACKETED.match(line) or (_INDENTED.match(line) if exim else None)
        if not match:
            continue
        found.append(match.group(1).lower())
        if not diagnostic:
            diagnostic = _diagnostic_after(line, lines[i + 1 : i + 4])
    return found, diagnostic


def _diagnostic_after(line: str, following: list[str]) -> str:
    head, sep, rest = line.partition(">" if line.lstrip().startswith("<") else ":")
    rest = rest.lstrip(":. ") if sep else ""
    words = [rest] if rest else []
    for nxt in following:
        if not nxt.strip() or _BRACKETED.match(nxt):
            break
        words.append(nxt.strip())
    return " ".join(" ".join(words).split())[:500]


def _original_id(parts: ReportParts, text: str) -> str:
    for found in parts.returned_ids:
        if found:
            return found
    return returned_id(text)


def _recipient(block: list[tuple[str, str]]) -> str:
    value = _get(block, "final-recipient") or _get(block, "original-recipient")
    address = _after_type(value).strip().strip("<>").strip()
    return address.lower() if "@" in address else ""


def _after_type(value: str) -> str:
    """``rfc822; a@b`` → ``a@b``; ``smtp; 550 …`` → ``550 …``."""
    kind, sep, rest = value.partition(";")
    return rest.strip() if sep and len(kind) < 20 and " " not in kind.strip() else value.strip()


def _get(block: list[tuple[str, str]], name: str) -> str:
    return next((value for key, value in block if key == name), "")


def _status(value: str) -> str:
    match = _STATUS.search(value)
    return ".".join(match.groups()) if match else ""


def ids_in(value: str | None) -> str:
    """The first Message-ID in a header value ("" when none)."""
    return next(iter(message_ids(value)), "")


_DAEMON_LOCALS = frozenset({"mailer-daemon", "postmaster", "mail-daemon", "mailerdaemon"})
_DAEMON_NAMES = re.compile(
    r"mail delivery (system|subsystem)|mail administrator|mailer-daemon", re.I
)
_OPENING = re.compile(
    r"^\s*(hi\. this is the qmail-send program|this is the postfix program)", re.I
)


def sent_by_daemon(sender: str, raw_from: str) -> bool:
    """A From of MAILER-DAEMON, postmaster or "Mail Delivery System" (address or not)."""
    local = sender.split("@", 1)[0].lower()
    return local in _DAEMON_LOCALS or bool(_DAEMON_NAMES.search(raw_from))


def opens_like_bounce(text: str) -> bool:
    """qmail and Postfix bounces say who they are in their first line."""
    return bool(_OPENING.match(text[:300]))
