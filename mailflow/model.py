"""Values that cross module boundaries.

Everything here is a frozen dataclass or an enum: the pure middle of the pipeline
(parse → classify → identify → decide → plan → render) passes these around and never
a database row or a socket.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from functools import cached_property
from typing import Any

from mailflow.phrases import Phrase


class Role(StrEnum):
    CLIENT = "client"
    DIRECTOR = "director"
    MEMBER = "member"
    COORDINATOR = "coordinator"


class ServiceModel(StrEnum):
    """How a client is served: through a director, or directly by a dedicated member."""

    DIRECTOR = "director"
    DIRECT = "direct"


class State(StrEnum):
    NEW = "new"
    ASSIGNED = "assigned"
    ESTIMATED = "estimated"
    IN_PROGRESS = "in_progress"
    IN_REVIEW = "in_review"
    DELIVERED = "delivered"
    CLOSED = "closed"
    ON_HOLD = "on_hold"
    REJECTED = "rejected"
    CANCELLED = "cancelled"


OPEN_STATES = frozenset(State) - {State.CLOSED, State.REJECTED, State.CANCELLED}


class Classification(StrEnum):
    HUMAN = "human"
    AUTO_REPLY = "auto_reply"
    BOUNCE = "bounce"
    LOOP = "loop"
    LIST = "list"


@dataclass(frozen=True)
class Address:
    """A mailbox: ``email`` is lower-cased on the domain side by the parser."""

    email: str
    name: str = ""

    def __str__(self) -> str:
        return f"{self.name} <{self.email}>" if self.name else self.email


@dataclass(frozen=True)
class Attachment:
    """One attached file, held in memory between parse and commit.

    ``filename`` is the name as the sender wrote it (for display); ``safe_name`` is the
    same name made harmless for any file system. Files are stored by ``sha256``.
    """

    filename: str
    safe_name: str
    content_type: str
    payload: bytes = field(repr=False)
    inline: bool = False
    content_id: str = ""

    @property
    def size(self) -> int:
        return len(self.payload)

    @cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.payload).hexdigest()


@dataclass(frozen=True)
class ForwardedMail:
    """The original of a forwarded mail: who wrote it, when, about what."""

    sender: Address | None
    date: datetime | None
    subject: str
    text: str


@dataclass(frozen=True)
class BounceReport:
    """What a delivery failure report says: who could not be reached, and for which mail.

    ``original_message_id`` is the Message-ID of the returned message (ours, when we sent
    it), brackets kept; ``status`` is the RFC 3463 code ("5.1.1"), "" when none was given.
    """

    recipients: tuple[str, ...]
    original_message_id: str
    status: str
    diagnostic: str
    permanent: bool


@dataclass(frozen=True)
class ParsedMail:
    """What the pipeline needs to know about one message, decoded to text.

    ``headers`` keeps every header as decoded ``(name, value)`` pairs in message order,
    with names lower-cased, so classification and authentication can read the raw facts.
    """

    message_id: str
    subject: str
    sender: Address | None
    to: tuple[Address, ...] = ()
    cc: tuple[Address, ...] = ()
    reply_to: tuple[Address, ...] = ()
    date: datetime | None = None
    in_reply_to: str = ""
    references: tuple[str, ...] = ()
    text: str = ""
    quoted: str = ""
    html: str = ""
    attachments: tuple[Attachment, ...] = ()
    forwarded: ForwardedMail | None = None
    headers: tuple[tuple[str, str], ...] = ()
    defects: tuple[str, ...] = ()
    size: int = 0
    content_type: str = ""
    bounce: BounceReport | None = None

    def header(self, name: str) -> str | None:
        """The first (topmost) value of a header, or None."""
        wanted = name.lower()
        return next((value for key, value in self.headers if key == wanted), None)

    def header_all(self, name: str) -> list[str]:
        wanted = name.lower()
        return [value for key, value in self.headers if key == wanted]


@dataclass(frozen=True)
class Sender:
    """Who sent a mail, as the directory knows them."""

    role: Role
    person_id: str
    email: str
    name: str
    language: str
    client_id: str | None = None  # set for client contacts


@dataclass(frozen=True)
class Decision:
    """Where a mail goes, and why: stored with the request and shown by ``explain``."""

    rule: str
    route: str
    reasons: tuple[str, ...] = ()
    suggested_member: str | None = None
    runner_up: str | None = None
    skills: tuple[str, ...] = ()
    priority: str = "normal"
    due: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "route": self.route,
            "reasons": list(self.reasons),
            "suggested_member": self.suggested_member,
            "runner_up": self.runner_up,
            "skills": list(self.skills),
            "priority": self.priority,
            "due": self.due.isoformat() if self.due else None,
        }


@dataclass(frozen=True)
class FileRef:
    """A stored file (by sha256) to attach to an outgoing mail, e.g. a delivery."""

    sha256: str
    filename: str
    content_type: str
    size: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "sha256": self.sha256,
            "filename": self.filename,
            "content_type": self.content_type,
            "size": self.size,
        }


@dataclass(frozen=True)
class Notice:
    """An email to be written from a template: the kind, to whom, and the facts.

    ``context`` holds plain data only (client text included); the template decides how
    it reads. ``recipient_id`` is the person the reply address is signed for.
    """

    kind: str
    to: tuple[Address, ...]
    language: str
    recipient_id: str
    context: Mapping[str, Any] = field(default_factory=dict)
    cc: tuple[Address, ...] = ()
    attachments: tuple[Attachment, ...] = ()
    automatic: bool = True
    # Stored files to attach (read from the file store when the mail is composed).
    files: tuple[FileRef, ...] = ()


@dataclass(frozen=True)
class NewRequest:
    """A request to be opened by the commit step (it allocates the ref)."""

    client_id: str
    model: ServiceModel
    subject: str
    text: str
    language: str
    director: str | None
    assignee: str | None
    state: State
    decision: Decision
    due: datetime | None = None
    skills: tuple[str, ...] = ()
    priority: str = "normal"


@dataclass(frozen=True)
class EventDraft:
    """One line of a request's history, written in the same transaction as its cause."""

    kind: str
    actor: str
    detail: Mapping[str, Any] = field(default_factory=dict)
    from_state: State | None = None
    to_state: State | None = None


@dataclass(frozen=True)
class Outcome:
    """What processing one mail decided: the pure plan that the commit step carries out.

    Exactly one of ``new_request`` / ``request_ref`` is set when the mail concerns a
    request. ``hold_reason`` keeps the mail for a person (e.g. an unknown sender) without
    opening anything.
    """

    new_request: NewRequest | None = None
    request_ref: str | None = None
    events: tuple[EventDraft, ...] = ()
    notices: tuple[Notice, ...] = ()
    hold_reason: Phrase | None = None
    note: str = ""
    # Field updates to the request (state, assignee, due, priority, skills, data, …).
    changes: Mapping[str, Any] = field(default_factory=dict)
    # Hours a member logged: (member id, hours).
    hours: tuple[tuple[str, float], ...] = ()
