"""Everything planning may look at for one mail, gathered before the pure steps run."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from mailflow.assign import MemberLoad
from mailflow.calendar_jp import BusinessCalendar
from mailflow.directory import Directory
from mailflow.model import Classification, NewRequest, ParsedMail, Sender, ServiceModel, State
from mailflow.phrases import Phrase
from mailflow.rules import RuleSet


@dataclass(frozen=True)
class RequestView:
    """A request as the workflow sees it: the store's row as plain values."""

    ref: str | None
    state: State
    model: ServiceModel
    client: str
    director: str | None
    assignee: str | None
    subject: str
    text: str
    language: str
    due: datetime | None = None
    skills: tuple[str, ...] = ()
    priority: str = "normal"
    revision_count: int = 0
    hours_estimate: float | None = None
    hours_spent: float = 0.0
    data: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> RequestView:
        return cls(**{**row, "state": State(row["state"]), "model": ServiceModel(row["model"])})

    @classmethod
    def from_new(cls, new: NewRequest, data: Mapping[str, Any]) -> RequestView:
        """A request not yet committed (no ref): a director's forward applies tags to it."""
        return cls(
            ref=None,
            state=new.state,
            model=new.model,
            client=new.client_id,
            director=new.director,
            assignee=new.assignee,
            subject=new.subject,
            text=new.text,
            language=new.language,
            due=new.due,
            skills=new.skills,
            priority=new.priority,
            data=data,
        )


@dataclass(frozen=True)
class Situation:
    mail: ParsedMail
    classification: Classification
    classification_reason: str
    sender: Sender | None
    matched_ref: str | None
    directory: Directory
    rules: RuleSet
    now: datetime
    timezone: str = "Asia/Tokyo"
    desk_language: str = "ja"
    calendar: BusinessCalendar = field(default_factory=BusinessCalendar)
    workload: Mapping[str, MemberLoad] = field(default_factory=dict)
    # Set when the mail is larger than the desk takes: (its size, the limit).
    oversized: tuple[int, int] | None = None
    # For a bounce of our own mail: the outbox row it answers (the JSON view of it).
    bounced: dict[str, Any] | None = None
    bounced_request: dict[str, Any] | None = None
    # The matched request, and whether the sender proved who they are (DESIGN §3).
    request: RequestView | None = None
    authenticated: bool = False
    auth_reason: Phrase | None = None
    # Hours logged this month for the client of the mail's request (direct model).
    hours_used: float = 0.0

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)
