"""Sending what the outbox holds: the only smtplib module.

Two transports share one shape, ``send(row)``: ``SmtpRelay`` hands mail to the configured
relay; ``MaildirSink`` writes it into ``data/sent/`` when no relay is set. Transient
failures (relay down, 4xx) are retried with backoff until a deadline; permanent ones are
recorded. An unreachable relay is logged once, not once per message.

Addresses go into the envelope with IDNA domains, as compose.py writes them in the headers.
A mail that is still not ASCII (an address like "jøran@example.com" has no ASCII form) is
sent with SMTPUTF8 (RFC 6531); a relay without it can never take that mail.
"""

from __future__ import annotations

import logging
import os
import smtplib
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

from mailflow.compose import idna_address
from mailflow.errors import PermanentDeliveryError, StoreError, TransientDeliveryError
from mailflow.store import OutboxRow, Store, fsync_all, utcnow

log = logging.getLogger("mailflow.outbox")

# Retry schedule for transient failures; after GIVE_UP the row is marked failed.
BACKOFF = (
    timedelta(seconds=30),
    timedelta(minutes=2),
    timedelta(minutes=10),
    timedelta(minutes=30),
    timedelta(hours=1),
)
GIVE_UP = timedelta(days=2)


class Transport(Protocol):
    def send(self, row: OutboxRow) -> None: ...

    def settle(self) -> None:
        """Make everything sent so far durable (before those rows are marked sent)."""

    def close(self) -> None: ...


class MaildirSink:
    """Writes each mail once into a Maildir; the file name is fixed by the outbox row,
    so sending the same row again after a crash replaces the file instead of adding one."""

    settles_in_batches = True

    def __init__(self, root: Path) -> None:
        self.root = root
        self.written: list[Path] = []
        # Maildir names are unique per host: the host part is the same for every file.
        self._host = socket.gethostname().replace("/", "_")
        for sub in ("tmp", "new", "cur"):
            (root / sub).mkdir(parents=True, exist_ok=True)

    def send(self, row: OutboxRow) -> None:
        name = f"mailflow-{row.id:08d}.{self._host}"
        temporary, final = self.root / "tmp" / name, self.root / "new" / name
        try:
            _write_file(temporary, row.raw)
            os.replace(temporary, final)
        except OSError as exc:
            raise TransientDeliveryError(f"cannot write {self.root}: {exc}") from exc
        self.written.append(final)

    def settle(self) -> None:
        """One durable flush for a batch: until the rows are marked sent, a crash only
        means the same files are written again."""
        written, self.written = self.written, []
        if written:
            try:
                fsync_all(written, self.root / "new")
            except StoreError as exc:
                raise TransientDeliveryError(str(exc)) from exc

    def close(self) -> None:
        pass


def _write_file(path: Path, data: bytes) -> None:
    """``path`` created or emptied, holding ``data`` (a letter for every outbox row: the
    descriptor calls spare ``open``'s buffered file object)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(descriptor, view) :]
    finally:
        os.close(descriptor)


@dataclass
class SmtpRelay:
    """smtp://, smtps:// or smtp+starttls://, with optional user:password@."""

    url: str
    envelope_from: str = ""
    timeout: float = 30.0
    _connection: smtplib.SMTP | None = field(default=None, init=False, repr=False)

    def send(self, row: OutboxRow) -> None:
        # The desk is the envelope sender so that bounces come back to it, where
        # classify() recognises them instead of opening a request.
        envelope_from = idna_address(self.envelope_from)
        recipients = [idna_address(recipient) for recipient in row.recipients]
        needing = _needing_smtputf8(envelope_from, recipients, row.raw)
        try:
            connection = self._connect()
            options = self._smtputf8(connection, needing) if needing else []
            refused = connection.sendmail(envelope_from, recipients, row.raw, options)
        except smtplib.SMTPRecipientsRefused as exc:
            self.close()
            raise _classify_refusals(exc.recipients) from exc
        except smtplib.SMTPResponseException as exc:
            self.close()
            error = exc.smtp_error
            text = error.decode("utf-8", "replace") if isinstance(error, bytes) else str(error)
            message = f"{exc.smtp_code} {text}"
            if 400 <= exc.smtp_code < 500:
                raise TransientDeliveryError(message) from exc
            raise PermanentDeliveryError(message) from exc
        except (OSError, smtplib.SMTPException) as exc:
            self.close()
            raise TransientDeliveryError(f"relay {self._where()}: {exc}") from exc
        if refused:
            raise _classify_refusals(refused)

    def settle(self) -> None:
        pass  # the relay's 250 already made each mail its responsibility

    def _smtputf8(self, connection: smtplib.SMTP, needing: str) -> list[str]:
        """The MAIL option for a mail that is not ASCII; no relay without it can take it."""
        connection.ehlo_or_helo_if_needed()
        # Checked here, not left to smtplib: it drops the option unasked from a relay that
        # only speaks HELO, then fails with UnicodeEncodeError on the first non-ASCII address.
        if not connection.has_extn("smtputf8"):
            raise PermanentDeliveryError(
                f"relay {self._where()} does not support SMTPUTF8, needed for {needing}"
            )
        return ["SMTPUTF8"]

    def _connect(self) -> smtplib.SMTP:
        if self._connection is not None:
            try:
                self._connection.noop()
                return self._connection
            except smtplib.SMTPException:
                self.close()
        parts = urlsplit(self.url)
        host, port = parts.hostname or "127.0.0.1", parts.port
        if parts.scheme == "smtps":
            connection: smtplib.SMTP = smtplib.SMTP_SSL(
                host, port or 465, timeout=self.timeout, context=ssl.create_default_context()
            )
        else:
            connection = smtplib.SMTP(host, port or 25, timeout=self.timeout)
            if parts.scheme == "smtp+starttls":
                connection.starttls(context=ssl.create_default_context())
        if parts.username:
            connection.login(unquote(parts.username), unquote(parts.password or ""))
        self._connection = connection
        return connection

    def _where(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.hostname}:{parts.port}"

    def close(self) -> None:
        if self._connection is not None:
            try:
                self._connection.quit()
            except (OSError, smtplib.SMTPException):
                pass
            self._connection = None


def _needing_smtputf8(envelope_from: str, recipients: list[str], raw: bytes) -> str:
    """What makes a mail need SMTPUTF8 (an address, or its UTF-8 headers); "" if nothing."""
    for address in (*recipients, envelope_from):
        if not address.isascii():
            return address
    return "" if raw.isascii() else "the UTF-8 headers of the mail"


def _classify_refusals(
    refused: dict[str, tuple[int, bytes]],
) -> TransientDeliveryError | PermanentDeliveryError:
    text = "; ".join(
        f"{rcpt}: {code} {msg.decode('utf-8', 'replace')}" for rcpt, (code, msg) in refused.items()
    )
    if all(400 <= code < 500 for code, _ in refused.values()):
        return TransientDeliveryError(text)
    return PermanentDeliveryError(text)


def make_transport(smtp_url: str | None, sent_dir: Path, envelope_from: str) -> Transport:
    return SmtpRelay(smtp_url, envelope_from) if smtp_url else MaildirSink(sent_dir)


@dataclass(frozen=True)
class FlushReport:
    sent: int = 0
    retried: int = 0
    failed: int = 0

    def __add__(self, other: FlushReport) -> FlushReport:
        return FlushReport(
            self.sent + other.sent, self.retried + other.retried, self.failed + other.failed
        )


def _report(outcomes: list[str]) -> FlushReport:
    return FlushReport(outcomes.count("sent"), outcomes.count("retry"), outcomes.count("failed"))


class OutboxSender:
    """Claims due rows and sends them; remembers whether the relay is down."""

    def __init__(
        self, store: Store, transport: Transport, clock: Callable[[], datetime] = utcnow
    ) -> None:
        self.store = store
        self.transport = transport
        self.clock = clock
        self.relay_down = False
        # Told about every mail that will never arrive (the service alerts the director).
        self.on_failure: Callable[[OutboxRow, str], None] | None = None

    def flush(self) -> FlushReport:
        """Send everything due, batch by batch; stop early when the relay is down."""
        outcomes: list[str] = []
        try:
            while batch := self.store.due_outbox(self.clock()):
                delivered: list[OutboxRow] = []
                for index, row in enumerate(batch):
                    outcomes.append(self._send_one(row, delivered))
                    if outcomes[-1] == "retry":
                        # The relay is down: the rest would fail the same way.
                        self._mark_sent(delivered)
                        self._postpone(batch[index + 1 :], row)
                        return _report(outcomes)
                self._mark_sent(delivered)
        finally:
            self.transport.close()
        return _report(outcomes)

    def _mark_sent(self, delivered: list[OutboxRow]) -> None:
        """Durable first, then marked: a crash in between sends the same rows again,
        never different ones."""
        settle = getattr(self.transport, "settle", None)
        if settle is not None:
            settle()
        if delivered:
            self.store.mark_sent(*(row.id for row in delivered))
        for row in delivered:
            log.info("outbox %s sent: %s to %s", row.id, row.kind, ", ".join(row.recipients))

    def _send_one(self, row: OutboxRow, delivered: list[OutboxRow]) -> str:
        try:
            self.transport.send(row)
        except TransientDeliveryError as exc:
            return self._retry(row, str(exc))
        except PermanentDeliveryError as exc:
            return self._fail(row, str(exc))
        if self.relay_down:
            log.warning("relay reachable again")
            self.relay_down = False
        delivered.append(row)
        if not getattr(self.transport, "settles_in_batches", False):
            # A relayed mail is marked at once: a crash resends at most that one.
            self._mark_sent(delivered)
            delivered.clear()
        return "sent"

    def _fail(self, row: OutboxRow, error: str) -> str:
        log.error("outbox %s (%s) failed permanently: %s", row.id, row.kind, error)
        self.store.mark_failed(row.id, error)
        if self.on_failure is not None:
            self.on_failure(row, error)
        return "failed"

    def _postpone(self, untried: list[OutboxRow], failed: OutboxRow) -> None:
        """Give back rows claimed but not tried because the relay is down: they are due
        again with the failed one, not when their claim (``OUTBOX_LEASE``) runs out."""
        if not untried:
            return
        due = self.clock() + BACKOFF[min(failed.attempts, len(BACKOFF) - 1)]
        for row in untried:
            self.store.mark_retry(row.id, "not tried: the relay was unreachable", due)

    def _retry(self, row: OutboxRow, error: str) -> str:
        if not self.relay_down:
            log.warning("cannot send (will retry): %s", error)
        self.relay_down = True
        delay = BACKOFF[min(row.attempts, len(BACKOFF) - 1)]
        if self.clock() - row.created_at > GIVE_UP:
            return self._fail(row, f"gave up after {row.attempts} attempts: {error}")
        self.store.mark_retry(row.id, error, self.clock() + delay)
        return "retry"
