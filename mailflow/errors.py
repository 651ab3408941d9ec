"""One exception tree for mailflow.

    MailflowError
    ├── ConfigError            a settings, people or rules file is wrong (CLI exit 2)
    │                          carries every Problem found, each with file, line, key and fix
    ├── StoreError             the database or the raw-mail store cannot take work (SMTP 451)
    ├── ProcessingError        one message could not be processed (it goes to quarantine)
    └── DeliveryError          an outgoing mail could not be sent
        ├── TransientDeliveryError   try again later (relay down, 4xx)
        └── PermanentDeliveryError   never retry (5xx, bad recipient)

Library code raises these; only ``cli.py`` turns them into exit codes and text.
"""

from __future__ import annotations

from dataclasses import dataclass


class MailflowError(Exception):
    """Base of every error mailflow raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a configuration file, said so a person can fix it."""

    file: str
    line: int | None
    key: str
    message: str
    fix: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.key}: {self.message} — fix: {self.fix}"


class ConfigError(MailflowError):
    """Configuration is invalid; ``problems`` lists every finding."""

    def __init__(self, problems: list[Problem] | tuple[Problem, ...]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class StoreError(MailflowError):
    """The store (database or raw-mail files) cannot accept or record work now."""


class ProcessingError(MailflowError):
    """A message could not be processed; the reason goes to quarantine."""


class DeliveryError(MailflowError):
    """An outgoing mail could not be handed to the relay."""


class TransientDeliveryError(DeliveryError):
    """Retry later: the relay is unreachable or answered 4xx."""


class PermanentDeliveryError(DeliveryError):
    """Do not retry: the relay answered 5xx or the message is undeliverable."""
