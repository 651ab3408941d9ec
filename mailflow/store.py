"""The store: the only module that speaks peewee.

Tables (see ``MODELS``): inbox items, requests, events, message links, attachments,
outbox rows, people synced from people.yaml, and the migrations ledger. Raw messages and
attachment files live on disk under ``data/raw`` and ``data/files``, named by sha256.

Exactly-once processing rests on two facts: the inbox dedup key (Message-ID, sha256) is
unique, and the transaction that records a message's effects starts by flipping its inbox
row from ``accepted`` to ``done`` with a conditional UPDATE — a second processor, or a
replay after a crash, finds nothing to flip and rolls back.
"""

from __future__ import annotations

import ctypes
import fcntl
import functools
import gc
import json
import os
import re
import sys
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import unquote, urlsplit

import peewee as pw
from playhouse.migrate import SchemaMigrator, migrate
from playhouse.shortcuts import ReconnectMixin

from mailflow.errors import ProcessingError, StoreError
from mailflow.model import OPEN_STATES, EventDraft, NewRequest, State

db = pw.DatabaseProxy()


class BaseModel(pw.Model):
    class Meta:
        database = db
        legacy_table_names = False


class Migration(BaseModel):
    name = pw.CharField(primary_key=True)
    applied_at = pw.DateTimeField()


class Person(BaseModel):
    id = pw.CharField(primary_key=True)
    role = pw.CharField()
    name = pw.TextField()
    email = pw.TextField()
    language = pw.CharField()
    data = pw.TextField(default="{}")


class InboxItem(BaseModel):
    id = pw.AutoField()
    message_id = pw.TextField(default="")
    sha256 = pw.CharField(max_length=64)
    source = pw.CharField()
    source_ref = pw.TextField(default="")
    size = pw.IntegerField()
    received_at = pw.DateTimeField()
    # accepted → done | held (kept for a person) | quarantined (failed; replayable)
    state = pw.CharField(default="accepted", index=True)
    reason = pw.TextField(default="")
    # Why a mail is held, as its phrase's code and facts (JSON; the English is ``reason``).
    reason_phrase = pw.TextField(default="")
    classification = pw.CharField(default="")
    sender = pw.TextField(default="")
    subject = pw.TextField(default="")
    request_ref = pw.CharField(null=True)
    attempts = pw.IntegerField(default=0)
    processed_at = pw.DateTimeField(null=True)

    class Meta:
        indexes = ((("message_id", "sha256"), True),)


class Request(BaseModel):
    id = pw.AutoField()
    ref = pw.CharField(unique=True, null=True)
    client = pw.CharField(index=True)
    model = pw.CharField()
    state = pw.CharField(index=True)
    director = pw.CharField(null=True)
    assignee = pw.CharField(null=True)
    subject = pw.TextField()
    text = pw.TextField()
    language = pw.CharField()
    due = pw.DateTimeField(null=True)
    skills = pw.TextField(default="[]")
    priority = pw.CharField(default="normal")
    revision_count = pw.IntegerField(default=0)
    hours_estimate = pw.FloatField(null=True)
    hours_spent = pw.FloatField(default=0.0)
    decision = pw.TextField(default="{}")
    created_at = pw.DateTimeField()
    updated_at = pw.DateTimeField()
    # Workflow facts that are not columns: the pending delivery, the open question's
    # asker, the state before a hold, the director's notes, the delivery format.
    data = pw.TextField(default="{}")


class Event(BaseModel):
    id = pw.AutoField()
    request = pw.ForeignKeyField(Request, backref="events", on_delete="CASCADE")
    at = pw.DateTimeField()
    actor = pw.CharField()
    kind = pw.CharField()
    from_state = pw.CharField(null=True)
    to_state = pw.CharField(null=True)
    inbox_id = pw.IntegerField(null=True)
    detail = pw.TextField(default="{}")


class MessageLink(BaseModel):
    """A mail in or out that belongs to a request; threading looks Message-IDs up here."""

    id = pw.AutoField()
    request = pw.ForeignKeyField(Request, backref="messages", on_delete="CASCADE")
    direction = pw.CharField()  # "in" | "out"
    message_id = pw.TextField(index=True)
    inbox_id = pw.IntegerField(null=True)
    outbox_id = pw.IntegerField(null=True)
    at = pw.DateTimeField()


class FileRecord(BaseModel):
    id = pw.AutoField()
    request = pw.ForeignKeyField(Request, backref="files", null=True, on_delete="CASCADE")
    inbox_id = pw.IntegerField(null=True)
    filename = pw.TextField()
    safe_name = pw.TextField()
    content_type = pw.CharField()
    size = pw.IntegerField()
    sha256 = pw.CharField(max_length=64)
    inline = pw.BooleanField(default=False)


# (columns, unique) of the outbox's look-up indexes: the limits per recipient
# (Store.automatic_mail_counts, sent_kind_to), per cause (caused_counts), and what is due.
OUTBOX_INDEXES = (
    (("recipient", "automatic", "created_at", "kind"), False),
    (("cause", "created_at"), False),
    (("state", "next_attempt_at"), False),
)


class OutboxItem(BaseModel):
    id = pw.AutoField()
    kind = pw.CharField()
    request_ref = pw.CharField(null=True, index=True)
    recipients = pw.TextField()  # JSON list of addresses
    cc = pw.TextField(default="[]")
    subject = pw.TextField()
    body_text = pw.TextField()
    reply_to = pw.TextField(default="")
    message_id = pw.TextField(unique=True)
    attachments = pw.TextField(default="[]")
    # pending → sent | failed
    state = pw.CharField(default="pending")
    attempts = pw.IntegerField(default=0)
    next_attempt_at = pw.DateTimeField()
    last_error = pw.TextField(default="")
    created_at = pw.DateTimeField()
    sent_at = pw.DateTimeField(null=True)
    inbox_id = pw.IntegerField(null=True)
    # Notices written by the desk on its own (not relayed words of a person) count
    # against the per-recipient limits on automatic mail.
    automatic = pw.BooleanField(default=True)
    # The first recipient: the per-recipient limits look mail up by it.
    recipient = pw.CharField(default="")
    # The outside sender whose mail caused this one ("" for staff and scheduled work).
    cause = pw.CharField(default="")

    class Meta:
        # The limits and the sender look rows up by these for every mail: each index
        # holds all its look-up needs, so the rows themselves are not read.
        indexes = OUTBOX_INDEXES


class OutboxLetter(BaseModel):
    """The composed message of an outbox row (same id), kept apart from the row.

    A row changes as it is sent (claimed, then marked sent), and SQLite writes an updated
    row whole: with its ~10 KB letter inline, that was three overflow pages written to
    the log (and again by the checkpoint) per change. The letter never changes.
    """

    id = pw.IntegerField(primary_key=True)
    content = pw.BlobField()


class TimeEntry(BaseModel):
    """Hours a member logged (``#done 1.5h``), counted against a client's month."""

    id = pw.AutoField()
    request = pw.ForeignKeyField(Request, backref="time_entries", on_delete="CASCADE")
    client = pw.CharField(index=True)
    member = pw.CharField()
    hours = pw.FloatField()
    at = pw.DateTimeField(index=True)


class RefCounter(BaseModel):
    """The last request number handed out. Refs are reserved before a request is written
    (its mails are rendered with the ref outside the write transaction), so a number is
    never reused — a message that fails after reserving leaves a gap, never a clash."""

    name = pw.CharField(primary_key=True)
    value = pw.IntegerField(default=0)


class ScheduledRun(BaseModel):
    """Scheduled work already done (reminder, digest…), by idempotency key: a tick that
    runs twice, or after a restart, or on a second daemon, does nothing twice."""

    key = pw.CharField(primary_key=True, max_length=255)
    at = pw.DateTimeField(index=True)


class Suppression(BaseModel):
    """An automatic mail we chose not to send, and why (loops, rate limits)."""

    id = pw.AutoField()
    at = pw.DateTimeField(index=True)
    recipient = pw.TextField(index=True)
    kind = pw.CharField()
    reason = pw.TextField()
    request_ref = pw.CharField(null=True)
    inbox_id = pw.IntegerField(null=True)


# The fields a workflow change may set (the names go into SQL, so they are checked).
_REQUEST_COLUMNS = frozenset(
    {
        "state",
        "director",
        "assignee",
        "subject",
        "due",
        "skills",
        "priority",
        "revision_count",
        "hours_estimate",
        "hours_spent",
        "data",
    }
)

MODELS: tuple[type[pw.Model], ...] = (
    Migration,
    Person,
    InboxItem,
    Request,
    Event,
    MessageLink,
    FileRecord,
    OutboxItem,
    OutboxLetter,
    Suppression,
    TimeEntry,
    ScheduledRun,
    RefCounter,
)


def _add_column(database: pw.Database, field: pw.Field) -> bool:
    """Add ``field``'s column (and its index, when the field has one) unless it is there;
    True when it was added."""
    table = field.model._meta.table_name
    if field.column_name in {column.name for column in database.get_columns(table)}:
        return False
    migrator = SchemaMigrator.from_database(database)
    migrate(migrator.add_column(table, field.column_name, field))
    return True


def _add_automatic_and_suppressions(database: pw.Database) -> None:
    _add_column(database, OutboxItem.automatic)
    database.create_tables([Suppression], safe=True)


def _add_request_data_and_time(database: pw.Database) -> None:
    _add_column(database, Request.data)
    database.create_tables([TimeEntry], safe=True)


def _add_outbox_recipient(database: pw.Database) -> None:
    if not _add_column(database, OutboxItem.recipient):
        return
    for row in OutboxItem.select(OutboxItem.id, OutboxItem.recipients):
        first = (json.loads(row.recipients) or [""])[0]
        OutboxItem.update(recipient=first).where(OutboxItem.id == row.id).execute()


def _add_ref_sequence(database: pw.Database) -> None:
    """PostgreSQL: refs come from a sequence that continues where the counter stood."""
    if isinstance(database, pw.SqliteDatabase):
        return
    start = RefCounter.select(RefCounter.value).where(RefCounter.name == "request").scalar() or 0
    database.execute_sql("CREATE SEQUENCE IF NOT EXISTS request_ref_seq")  # type: ignore[no-untyped-call]
    if start:
        database.execute_sql("SELECT setval('request_ref_seq', %s)", (start,))  # type: ignore[no-untyped-call]


def _add_ref_counter(database: pw.Database) -> None:
    database.create_tables([RefCounter], safe=True)
    highest = Request.select(pw.fn.MAX(Request.id)).scalar() or 0
    RefCounter.insert(name="request", value=highest).on_conflict_ignore().execute()


def _outbox_covering_indexes(database: pw.Database) -> None:
    """The single-column indexes on recipient, cause and state give way to the
    covering ones of OUTBOX_INDEXES."""
    for column in ("recipient", "cause", "state"):
        database.execute_sql(f"DROP INDEX IF EXISTS outbox_item_{column}")  # type: ignore[no-untyped-call]
    # The model's indexes, named and made as create_tables makes them.
    OutboxItem._schema.create_indexes(safe=True)  # type: ignore[attr-defined]


def _outbox_letters_apart(database: pw.Database) -> None:
    """Outbox letters move from outbox_item.content to their own table (OutboxLetter)."""
    database.create_tables([OutboxLetter], safe=True)
    if "content" not in {column.name for column in database.get_columns("outbox_item")}:
        return
    for statement in (
        "INSERT INTO outbox_letter (id, content) SELECT id, content FROM outbox_item",
        "ALTER TABLE outbox_item DROP COLUMN content",
    ):
        database.execute_sql(statement)  # type: ignore[no-untyped-call]


# Each migration is a name and a function of the database; applied once, in order, and
# recorded in the ledger. Each is harmless on a schema that already has its change: the
# first creates today's tables on a fresh database.
MIGRATIONS: tuple[tuple[str, Any], ...] = (
    ("0001_initial", lambda database: database.create_tables(MODELS, safe=True)),
    ("0002_automatic_mail_limits", _add_automatic_and_suppressions),
    ("0003_request_data_and_time", _add_request_data_and_time),
    ("0004_scheduled_runs", lambda database: database.create_tables([ScheduledRun], safe=True)),
    ("0005_outbox_recipient", lambda database: _add_outbox_recipient(database)),
    ("0006_ref_counter", lambda database: _add_ref_counter(database)),
    ("0007_outbox_cause", lambda database: _add_column(database, OutboxItem.cause)),
    ("0008_ref_sequence", lambda database: _add_ref_sequence(database)),
    ("0009_outbox_covering_indexes", lambda database: _outbox_covering_indexes(database)),
    ("0010_outbox_letters_apart", lambda database: _outbox_letters_apart(database)),
    ("0011_inbox_reason_phrase", lambda database: _add_column(database, InboxItem.reason_phrase)),
)


# Refs reserved at a time for a backlog (one write turn instead of one per new request).
REF_BLOCK = 16

# How long a sender holds the outbox rows it claimed before others may take them.
OUTBOX_LEASE = timedelta(minutes=10)


def utcnow() -> datetime:
    return datetime.now(UTC)


def _naive(moment: datetime | None) -> datetime | None:
    """Stored datetimes are naive UTC: both backends then agree on what they hold."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        return moment
    if moment.tzinfo is not UTC:  # most are utcnow()'s, already in UTC
        moment = moment.astimezone(UTC)
    return moment.replace(tzinfo=None)


def _aware(moment: datetime | str | None) -> datetime | None:
    if moment is None:
        return None
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _fsync_path(path: Path) -> None:
    try:
        descriptor = os.open(path, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
    except OSError as exc:
        raise StoreError(f"cannot sync {path}: {exc.strerror or exc}") from exc


# From this many files on, a batch is made durable by one syncfs (see _sync_file_system).
SYNCFS_FROM = 16


def _syncfs_reports_errors() -> bool:
    """Whether syncfs(2) is there and reports write-back errors (Linux 5.8 and later)."""
    if sys.platform != "linux":
        return False
    try:
        major, minor = (int(part) for part in os.uname().release.split(".")[:2])
    except ValueError:
        return False
    return (major, minor) >= (5, 8)


@functools.cache
def _libc() -> ctypes.CDLL | None:
    if not _syncfs_reports_errors():
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syncfs  # noqa: B018 - present in glibc and musl since 2011
    except (OSError, AttributeError):
        return None
    return libc


def _sync_file_system(directory: Path) -> bool:
    """Write back everything dirty on the file system that holds ``directory``; False
    where syncfs(2) is missing or would not report errors (then fsync each file).

    For a batch of new files one syncfs costs about what writing them cost, where an
    fsync per file (even side by side in threads) cost three times more CPU than the
    writing (bench/ingest.py). PostgreSQL offers the same for its data directory
    (``recovery_init_sync_method = syncfs``).
    """
    libc = _libc()
    if libc is None:
        return False
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError as exc:
        raise StoreError(f"cannot sync {directory}: {exc.strerror or exc}") from exc
    try:
        if libc.syncfs(descriptor) != 0:
            error = ctypes.get_errno()
            raise StoreError(f"cannot sync {directory}: {os.strerror(error)}")
    finally:
        os.close(descriptor)
    return True


def fsync_all(paths: Sequence[Path], directory: Path | None) -> None:
    """Make files (all in one directory) and that directory, if given, durable. A large
    batch takes one syncfs; otherwise the fsyncs run side by side, so the file system
    commits its journal a few times for a batch instead of once per file."""
    if not (len(paths) >= SYNCFS_FROM and _sync_file_system(paths[0].parent)):
        _fsync_each(paths)
    if directory is not None:
        _fsync_path(directory)


def _fsync_each(paths: Sequence[Path]) -> None:
    if len(paths) > 1:
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(_fsync_path, paths))
    else:
        for path in paths:
            _fsync_path(path)


class BlobStore:
    """Content-addressed files: ``put`` is idempotent and atomic (write, fsync, rename)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, sha256: str) -> Path:
        if not re.fullmatch(r"[0-9a-f]{64}", sha256):
            raise ValueError(f"not a sha256: {sha256!r}")
        return self.root / sha256

    def put(self, sha256: str, data: bytes) -> Path:
        """Store one file durably: its bytes and its name are on disk when this returns."""
        self.put_many([(sha256, data)])
        return self.path(sha256)

    def put_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        """Store a batch durably. Each file is written and synced under a temporary name
        and only then renamed: a name on disk always holds the whole file, so a name that
        exists is never written again. The fsyncs run side by side, so the file system
        commits its journal a few times for the batch instead of once per file."""
        fresh = {sha256: data for sha256, data in items if not self.path(sha256).exists()}
        if not fresh:
            return
        temporaries = {sha256: self.root / f".{sha256}.{uuid.uuid4().hex}.tmp" for sha256 in fresh}
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            for sha256, data in fresh.items():
                temporaries[sha256].write_bytes(data)
            fsync_all(list(temporaries.values()), None)  # the directory once renamed
            for sha256, temporary in temporaries.items():
                os.replace(temporary, self.path(sha256))
        except (OSError, StoreError) as exc:
            for temporary in temporaries.values():
                temporary.unlink(missing_ok=True)
            if isinstance(exc, StoreError):
                raise
            raise StoreError(f"cannot store in {self.root}: {exc.strerror or exc}") from exc
        self._sync_directory()

    def _sync_directory(self) -> None:
        # The rename is durable only once the directory is (after a crash, the inbox row
        # must never point at a file that is not there).
        _fsync_path(self.root)

    def get(self, sha256: str) -> bytes:
        return self.path(sha256).read_bytes()

    def head(self, sha256: str, limit: int) -> bytes:
        """The first ``limit`` bytes (the headers of a mail too large to read whole)."""
        with open(self.path(sha256), "rb") as handle:
            return handle.read(limit)


_MESSAGE_ID = re.compile(rb"^message-id:[ \t]*(.*(?:\r?\n[ \t].*)*)", re.IGNORECASE | re.MULTILINE)


def header_message_id(raw: bytes) -> str:
    """The Message-ID from the header block, without a full parse (dedup key only)."""
    end = raw.find(b"\n\n")
    crlf_end = raw.find(b"\r\n\r\n")
    if crlf_end != -1 and (end == -1 or crlf_end < end):
        end = crlf_end
    head = raw if end == -1 else raw[:end]
    found = _MESSAGE_ID.search(head)
    if not found:
        return ""
    value = b" ".join(found.group(1).split()).decode("ascii", "replace")
    return value[:998]


@dataclass(frozen=True)
class Accepted:
    inbox_id: int
    duplicate: bool
    # What a processor needs of a newly accepted mail (None for a duplicate).
    pending: PendingItem | None = None


@dataclass(frozen=True)
class PendingItem:
    inbox_id: int
    sha256: str
    source: str
    attempts: int
    size: int = 0


# Store.accept_many, or a caller's wrapper of it (an IMAP drain takes one).
AcceptMany = Callable[[Sequence[tuple[bytes, str, str]]], list[Accepted]]


@dataclass(frozen=True)
class OutboxRow:
    id: int
    kind: str
    recipients: tuple[str, ...]
    raw: bytes
    message_id: str
    attempts: int
    request_ref: str | None
    created_at: datetime


@dataclass(frozen=True)
class OutboxDraft:
    kind: str
    request_ref: str | None
    recipients: tuple[str, ...]
    cc: tuple[str, ...]
    subject: str
    body_text: str
    reply_to: str
    message_id: str
    raw: bytes
    attachments: tuple[str, ...]
    inbox_id: int | None
    automatic: bool = True
    cause: str = ""


def store_failure(exc: BaseException) -> bool:
    """Whether an error is the store's (database or disk), not the message's."""
    return isinstance(exc, StoreError | pw.OperationalError | pw.InterfaceError)


class AlreadyProcessed(Exception):
    """The inbox row was taken by another processor; the transaction rolls back."""


class _PostgresqlDatabase(ReconnectMixin, pw.PostgresqlDatabase):  # type: ignore[misc]
    """PostgreSQL that reconnects, outside a transaction, after the server restarted
    (peewee would otherwise keep the dead connection and fail every query)."""

    reconnect_errors = (
        (pw.OperationalError, "server closed the connection"),
        (pw.OperationalError, "terminating connection"),
        (pw.OperationalError, "connection to server"),
        (pw.InterfaceError, "connection already closed"),
    )


def _connect(url: str) -> pw.Database:
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        path = unquote(parts.path)
        database = pw.SqliteDatabase(
            path,
            pragmas={
                "journal_mode": "wal",
                "synchronous": "normal",
                "foreign_keys": 1,
                # Each mail's savepoint journals the pages it changes; in a temporary
                # file that was most of the disk writes of processing a mail.
                "temp_store": "memory",
            },
            timeout=10,
        )
        return database
    if parts.scheme in {"postgresql", "postgres"}:
        return _PostgresqlDatabase(
            unquote(parts.path.lstrip("/")) or "postgres",
            user=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            host=parts.hostname or None,
            port=parts.port or 5432,
        )
    raise StoreError(f"unsupported database url {url!r}")


# The columns of an outbox row that sending needs (Store.due_outbox), in _outbox_row's order.
_SENDING = (
    OutboxItem.id,
    OutboxItem.kind,
    OutboxItem.recipients,
    OutboxItem.cc,
    OutboxLetter.content,
    OutboxItem.message_id,
    OutboxItem.attempts,
    OutboxItem.request_ref,
    OutboxItem.created_at,
)


def _outbox_row(row: tuple[Any, ...], now: datetime) -> OutboxRow:
    id_, kind, recipients, cc, content, message_id, attempts, request_ref, created_at = row
    return OutboxRow(
        id_,
        kind,
        tuple(json.loads(recipients)) + tuple(json.loads(cc)),
        bytes(content),
        message_id,
        attempts,
        request_ref,
        _aware(created_at) or now,
    )


class Store:
    """Repository functions over one database and the two file stores."""

    def __init__(self, url: str, data_dir: Path) -> None:
        self.url = url
        self.database = _connect(url)
        self.raw = BlobStore(data_dir / "raw")
        self.files = BlobStore(data_dir / "files")
        self.is_sqlite = isinstance(self.database, pw.SqliteDatabase)
        self._ids: dict[str, int] = {}
        self._turns: Path | None = None
        self._turn_file: BinaryIO | None = None
        self._turn_pid = 0
        self._turn_threads = threading.Lock()
        self._refs: list[int] = []
        self._sql: dict[str, str] = {}

    # -- plain SQL for the per-mail writes -------------------------------------------------
    #
    # Processing one mail writes a dozen rows; building each statement through the ORM
    # cost more than parsing the mail (bench/ingest.py), so these few are prepared once.

    def _execute(self, sql: str, params: Sequence[Any]) -> Any:
        statement = self._sql.get(sql)
        if statement is None:
            statement = self._sql[sql] = sql.replace("?", self.database.param)
        return self.database.execute_sql(statement, tuple(params))  # type: ignore[no-untyped-call]

    def _insert(self, table: str, values: dict[str, Any]) -> int:
        """INSERT one row and return its id."""
        columns = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        sql = f"INSERT INTO {table} ({columns}) VALUES ({marks})"
        if not self.is_sqlite:
            sql += " RETURNING id"
        cursor = self._execute(sql, list(values.values()))
        return int(cursor.lastrowid if self.is_sqlite else cursor.fetchone()[0])

    def _when(self, moment: datetime | None) -> Any:
        """A datetime as peewee stores it: naive UTC (SQLite keeps it as ISO text)."""
        naive = _naive(moment)
        if naive is None or not self.is_sqlite:
            return naive
        return naive.isoformat(" ")

    # -- lifecycle -------------------------------------------------------------

    def open(self) -> Store:
        db.initialize(self.database)
        try:
            self.database.connect(reuse_if_open=True)
            self.migrate()
        except pw.OperationalError as exc:
            raise StoreError(f"cannot open the database: {exc}") from exc
        return self

    def close(self) -> None:
        if not self.database.is_closed():
            self.database.close()

    def migrate(self) -> list[str]:
        with self.database.atomic():
            Migration.create_table(safe=True)
            done = {row.name for row in Migration.select()}
            applied = []
            for name, apply in MIGRATIONS:
                if name not in done:
                    apply(self.database)
                    Migration.create(name=name, applied_at=_naive(utcnow()))
                    applied.append(name)
        return applied

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """A write transaction; on SQLite it takes the write lock up front (IMMEDIATE)."""
        try:
            if self.is_sqlite:
                with self._writer_turn(), self.database.atomic("IMMEDIATE"):
                    yield
            else:
                with self.database.atomic():
                    yield
        except (pw.OperationalError, pw.InterfaceError) as exc:
            raise StoreError(f"database: {exc}") from exc

    def share_between_processes(self) -> None:
        """Several worker processes will write: they take turns through a lock file.

        SQLite makes a waiting writer sleep and poll (1, 2, 5, 10 ms…), which for
        transactions of a millisecond wastes most of the time; a kernel lock wakes the
        next writer at once.
        """
        self._turns = self.raw.root.parent / ".write-turn"
        self._open_turns()

    def _open_turns(self) -> None:
        # Opened per process: a descriptor inherited through fork shares its lock.
        assert self._turns is not None
        if self._turn_file is not None:
            self._turn_file.close()
        self._turns.parent.mkdir(parents=True, exist_ok=True)
        self._turn_file = open(self._turns, "a+b")  # noqa: SIM115 - held for the process
        self._turn_pid = os.getpid()
        self._turn_threads = threading.Lock()

    def ready_to_fork(self) -> bool:
        """Close this thread's connection and say whether no other is open.

        SQLite keeps per-process state about its open files; a child forked while any
        connection of the parent is open (even one of a finished thread, waiting in a
        reference cycle for the collector) inherits that state and corrupts the database
        when it writes.
        """
        self.close()
        if not self.is_sqlite:
            return True
        gc.collect()
        database = os.path.realpath(self.database.database)
        descriptors = Path("/proc/self/fd")
        if not descriptors.is_dir():
            return True
        for descriptor in descriptors.iterdir():
            try:
                target = os.readlink(descriptor)
            except OSError:
                continue  # closed while listing
            if target.startswith(database):
                return False
        return True

    def leave_checkpoints_to_others(self) -> None:
        """This connection's commits no longer copy the SQLite log into the database
        (a crew's parent does, see checkpoint)."""
        if self.is_sqlite:
            self.database.execute_sql("PRAGMA wal_autocheckpoint = 0")  # type: ignore[no-untyped-call]

    def checkpoint(self) -> None:
        """Copy what the SQLite log holds into the database, without waiting for anyone."""
        if self.is_sqlite:
            self.database.execute_sql("PRAGMA wal_checkpoint(PASSIVE)")  # type: ignore[no-untyped-call]

    def stop_sharing(self) -> None:
        self._turns = None
        if self._turn_file is not None:
            self._turn_file.close()
            self._turn_file = None

    @contextmanager
    def _writer_turn(self) -> Iterator[None]:
        if self._turns is None or self.database.in_transaction():
            yield
            return
        if self._turn_file is None or self._turn_pid != os.getpid():
            self._open_turns()  # a worker just forked: it has no other thread yet
        assert self._turn_file is not None
        # A flock belongs to the descriptor, which this process's threads share (an IMAP
        # drain accepting while the outbox is flushed): they take turns among themselves.
        with self._turn_threads:
            fcntl.flock(self._turn_file, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._turn_file, fcntl.LOCK_UN)

    # -- accept ------------------------------------------------------------------

    def accept(self, raw: bytes, source: str, source_ref: str = "") -> Accepted:
        """Store the bytes and commit an inbox row; only then may a source acknowledge."""
        return self.accept_many([(raw, source, source_ref)])[0]

    def accept_many(self, messages: Sequence[tuple[bytes, str, str]]) -> list[Accepted]:
        """Accept a batch in one transaction (ingest and IMAP drains commit per batch)."""
        if not messages:
            return []
        keyed = [
            (header_message_id(raw), self._sha256(raw), raw, source, source_ref)
            for raw, source, source_ref in messages
        ]
        if len(keyed) == 1:
            self.raw.put(keyed[0][1], keyed[0][2])
        else:
            self.raw.put_many([(sha, raw) for _, sha, raw, _, _ in keyed])
        now = self._when(utcnow())
        with self.transaction():
            return [
                self._insert_inbox(message_id, sha, len(raw), source, source_ref, now)
                for message_id, sha, raw, source, source_ref in keyed
            ]

    @staticmethod
    def _sha256(raw: bytes) -> str:
        import hashlib

        return hashlib.sha256(raw).hexdigest()

    def _insert_inbox(
        self, message_id: str, sha: str, size: int, source: str, ref: str, now: Any
    ) -> Accepted:
        # Two processes (or two mailboxes) may accept the same mail at once: the unique
        # key decides, and the loser reports a duplicate instead of failing.
        find = "SELECT id FROM inbox_item WHERE message_id = ? AND sha256 = ?"
        existing = self._execute(find, (message_id, sha)).fetchone()
        if existing is not None:
            return Accepted(int(existing[0]), duplicate=True)
        conflict = " ON CONFLICT DO NOTHING" + ("" if self.is_sqlite else " RETURNING id")
        cursor = self._execute(
            "INSERT INTO inbox_item (message_id, sha256, source, source_ref, size, received_at,"
            " state, reason, reason_phrase, classification, sender, subject, attempts)"
            " VALUES (?, ?, ?, ?, ?, ?, 'accepted', '', '', '', '', '', 0)" + conflict,
            (message_id, sha, source, ref, size, now),
        )
        inserted = cursor.lastrowid if self.is_sqlite else (cursor.fetchone() or [None])[0]
        if inserted:
            pending = PendingItem(int(inserted), sha, source, 0, size)
            return Accepted(int(inserted), duplicate=False, pending=pending)
        winner = self._execute(find, (message_id, sha)).fetchone()
        return Accepted(int(winner[0]), duplicate=True)

    # -- process -------------------------------------------------------------------

    def lock_next_pending(self) -> PendingItem | None:
        """PostgreSQL, inside a transaction: lock one accepted row that no other daemon
        holds (FOR UPDATE SKIP LOCKED); it stays locked until the transaction ends."""
        query = (
            InboxItem.select(
                InboxItem.id, InboxItem.sha256, InboxItem.source, InboxItem.attempts, InboxItem.size
            )
            .where(InboxItem.state == "accepted")
            .order_by(InboxItem.id)
            .limit(1)
            .for_update(skip_locked=True)
        )
        row = query.first()
        if row is None:
            return None
        return PendingItem(row.id, row.sha256, row.source, row.attempts, row.size)

    def pending(self, limit: int | None = 500) -> list[PendingItem]:
        """Accepted rows in order (``None``: all of them)."""
        query = (
            InboxItem.select(
                InboxItem.id, InboxItem.sha256, InboxItem.source, InboxItem.attempts, InboxItem.size
            )
            .where(InboxItem.state == "accepted")
            .order_by(InboxItem.id)
            .limit(limit)
        )
        return [
            PendingItem(row.id, row.sha256, row.source, row.attempts, row.size) for row in query
        ]

    def count_pending(self) -> int:
        return int(InboxItem.select().where(InboxItem.state == "accepted").count())

    def finish(
        self,
        inbox_id: int,
        *,
        state: str,
        reason: str = "",
        reason_phrase: str = "",
        classification: str = "",
        sender: str = "",
        subject: str = "",
        request_ref: str | None = None,
    ) -> None:
        """Inside the mail's transaction, after its writes: mark it processed, or raise
        AlreadyProcessed when another worker or daemon took it first (the caller's
        savepoint then undoes what it wrote). Claiming at the end costs nothing: until
        the commit no one else sees either the writes or the claim."""
        taken = self._execute(
            "UPDATE inbox_item SET state = ?, reason = ?, reason_phrase = ?, classification = ?,"
            " sender = ?, subject = ?, request_ref = ?, processed_at = ?,"
            " attempts = attempts + 1 WHERE id = ? AND state = 'accepted'",
            (
                state,
                reason[:2000],
                reason_phrase[:4000],
                classification,
                sender[:500],
                subject[:500],
                request_ref,
                self._when(utcnow()),
                inbox_id,
            ),
        ).rowcount
        if taken != 1:
            raise AlreadyProcessed(inbox_id)

    def quarantine(self, inbox_id: int, reason: str) -> None:
        """Record a failure in its own transaction: the failed one was rolled back."""
        with self.transaction():
            InboxItem.update(
                state="quarantined",
                reason=reason[:4000],
                attempts=InboxItem.attempts + 1,
                processed_at=_naive(utcnow()),
            ).where((InboxItem.id == inbox_id) & (InboxItem.state == "accepted")).execute()

    def replay(self, inbox_id: int) -> bool:
        with self.transaction():
            count = (
                InboxItem.update(state="accepted", reason="", reason_phrase="")
                .where((InboxItem.id == inbox_id) & InboxItem.state.in_(["quarantined", "held"]))
                .execute()
            )
        return bool(count == 1)

    def reserve_ref(self, ref_of: Any, *, ahead: int = 1) -> str:
        """The next request ref (``ref_of(number)``), never handed out twice.

        PostgreSQL takes it from a sequence (outside any transaction, so daemons never
        wait on each other); SQLite from a counter row in a short transaction — taking
        up to ``REF_BLOCK`` numbers at a time when ``ahead`` more mails of a backlog may
        want one (or worker processes share a backlog). Numbers reserved but never used
        are gaps: refs are unique, not dense.
        """
        if not self.is_sqlite:
            number = self._execute("SELECT nextval('request_ref_seq')", ()).fetchone()[0]
            return str(ref_of(int(number)))
        if not self._refs:
            block = REF_BLOCK if self._turns is not None else min(max(ahead, 1), REF_BLOCK)
            if self.database.in_transaction():
                # A number taken inside a transaction that may yet roll back must not
                # outlive it: take exactly one.
                block = 1
            with self.transaction():
                row = self._execute(
                    "UPDATE ref_counter SET value = value + ? WHERE name = 'request'"
                    " RETURNING value",
                    (block,),
                ).fetchone()
            last = int(row[0])
            self._refs = list(range(last - block + 1, last + 1))
        return str(ref_of(self._refs.pop(0)))

    def create_request(
        self, new: NewRequest, ref: str, changes: Mapping[str, Any] | None = None
    ) -> str:
        """Insert a request under a reserved ref, with the workflow's first ``changes``
        (see update_request) in the same row."""
        now = self._when(utcnow())
        values = {
            "ref": ref,
            "client": new.client_id,
            "model": new.model.value,
            "state": new.state.value,
            "director": new.director,
            "assignee": new.assignee,
            "subject": new.subject,
            "text": new.text,
            "language": new.language,
            "due": self._when(new.due),
            "skills": json.dumps(list(new.skills)),
            "priority": new.priority,
            "revision_count": 0,
            "hours_spent": 0.0,
            "data": "{}",
            "decision": json.dumps(new.decision.as_dict(), ensure_ascii=False),
            "created_at": now,
            "updated_at": now,
        }
        values.update(self._request_values(changes or {}))
        self._ids[ref] = self._insert("request", values)
        return ref

    def update_request(self, ref: str, changes: dict[str, Any]) -> None:
        """Apply workflow changes; lists and dicts are stored as JSON, datetimes as UTC."""
        if not changes:
            return
        values = {"updated_at": self._when(utcnow()), **self._request_values(changes)}
        assignments = ", ".join(f"{key} = ?" for key in values)
        self._execute(
            f"UPDATE request SET {assignments} WHERE id = ?",
            [*values.values(), self._request_id(ref)],
        )

    def _request_values(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        """Workflow changes as columns: lists and dicts as JSON, datetimes as UTC."""
        values = {}
        for key, value in changes.items():
            if key not in _REQUEST_COLUMNS:
                raise ValueError(f"not a request field: {key}")
            if key in {"skills", "data"}:
                value = json.dumps(value, ensure_ascii=False, default=str)
            elif isinstance(value, datetime):
                value = self._when(value)
            elif isinstance(value, State):
                value = value.value
            values[key] = value
        return values

    def log_hours(self, ref: str, member: str, hours: float) -> None:
        request = self._request(ref)
        TimeEntry.create(
            request=request, client=request.client, member=member, hours=hours, at=_naive(utcnow())
        )

    def hours_used(self, client: str, since: datetime, until: datetime) -> float:
        """Hours logged for a client's requests in [since, until)."""
        total = (
            TimeEntry.select(pw.fn.COALESCE(pw.fn.SUM(TimeEntry.hours), 0.0))
            .where(
                (TimeEntry.client == client)
                & (TimeEntry.at >= _naive(since))
                & (TimeEntry.at < _naive(until))
            )
            .scalar()
        )
        return float(total or 0.0)

    def open_request_rows(self) -> list[dict[str, Any]]:
        """Every open request as ``request_row`` gives it (for the scheduler)."""
        open_states = [state.value for state in OPEN_STATES]
        query = Request.select().where(Request.state.in_(open_states)).order_by(Request.id)
        return [_request_row(row) for row in query if row.ref]

    def state_since(self, refs: Iterable[str]) -> dict[str, datetime]:
        """When each request entered its current state (its latest event that moved it)."""
        since: dict[str, datetime] = {}
        wanted = list(refs)
        if not wanted:
            return since
        query = (
            Event.select(Request.ref, Request.state, Event.to_state, Event.at)
            .join(Request)
            .where(Request.ref.in_(wanted) & (Event.to_state == Request.state))
            .order_by(Event.id)
            .dicts()
        )
        rows: Iterable[dict[str, Any]] = iter(query)  # type: ignore[assignment]  # .dicts()
        for row in rows:
            moment = _aware(row["at"])
            if moment is not None:
                since[str(row["ref"])] = moment
        return since

    def scheduled_keys(self, since: datetime) -> set[str]:
        """Keys run since ``since``, plus every month marker (they never repeat)."""
        query = ScheduledRun.select(ScheduledRun.key).where(
            (ScheduledRun.at >= _naive(since)) | ScheduledRun.key.startswith("month:")
        )
        return {row.key for row in query}

    def claim_scheduled(self, key: str) -> bool:
        """Inside a transaction: record ``key``; False when it was already done."""
        if ScheduledRun.get_or_none(ScheduledRun.key == key) is not None:
            return False
        inserted = ScheduledRun.insert(key=key, at=_naive(utcnow())).on_conflict_ignore().execute()
        # SQLite holds the write lock (IMMEDIATE), so the look-up above decided; on
        # PostgreSQL a concurrent daemon may have won, and then nothing was returned.
        return self.is_sqlite or inserted is not None

    def request_row(self, ref: str) -> dict[str, Any] | None:
        """Everything the workflow reads about one request (plain values)."""
        row = Request.get_or_none(Request.ref == ref)
        return None if row is None else _request_row(row)

    def _request(self, ref: str) -> Request:
        row = Request.get_or_none(Request.ref == ref)
        if row is None:
            raise ProcessingError(f"no request {ref}")
        return row

    def _request_id(self, ref: str) -> int:
        """The row id of a ref. Refs never change, so the answer is kept (it is asked for
        every event, link and file a mail writes)."""
        cached = self._ids.get(ref)
        if cached is None:
            row = Request.select(Request.id).where(Request.ref == ref).first()
            if row is None:
                raise ProcessingError(f"no request {ref}")
            cached = self._ids[ref] = int(row.id)
        return cached

    def add_event(self, ref: str, event: EventDraft, inbox_id: int | None) -> None:
        self._insert(
            "event",
            {
                "request_id": self._request_id(ref),
                "at": self._when(utcnow()),
                "actor": event.actor,
                "kind": event.kind,
                "from_state": event.from_state.value if event.from_state else None,
                "to_state": event.to_state.value if event.to_state else None,
                "inbox_id": inbox_id,
                "detail": json.dumps(dict(event.detail), ensure_ascii=False, default=str),
            },
        )

    def link_message(
        self,
        ref: str,
        direction: str,
        message_id: str,
        *,
        inbox_id: int | None = None,
        outbox_id: int | None = None,
    ) -> None:
        self._insert(
            "message_link",
            {
                "request_id": self._request_id(ref),
                "direction": direction,
                "message_id": message_id,
                "inbox_id": inbox_id,
                "outbox_id": outbox_id,
                "at": self._when(utcnow()),
            },
        )

    def keep_files(self, attachments: Sequence[Any]) -> None:
        """Store attachments' bytes by sha256, before the transaction that records them:
        the fsyncs then never hold the write lock, and a file whose row never comes is
        only an unused blob."""
        if attachments:
            self.files.put_many([(a.sha256, a.payload) for a in attachments])

    def add_file(self, ref: str | None, inbox_id: int | None, attachment: Any) -> None:
        """Record a kept attachment (see keep_files): a row with the names for display."""
        if not self.files.path(attachment.sha256).exists():
            raise StoreError(f"attachment {attachment.sha256} was not kept before its row")
        self._insert(
            "file_record",
            {
                "request_id": self._request_id(ref) if ref else None,
                "inbox_id": inbox_id,
                "filename": attachment.filename,
                "safe_name": attachment.safe_name,
                "content_type": attachment.content_type,
                "size": attachment.size,
                "sha256": attachment.sha256,
                "inline": attachment.inline,
            },
        )

    def add_outbox(self, draft: OutboxDraft) -> int:
        now = self._when(utcnow())
        row_id = self._insert(
            "outbox_item",
            {
                "kind": draft.kind,
                "request_ref": draft.request_ref,
                "recipients": json.dumps([address.lower() for address in draft.recipients]),
                "cc": json.dumps([address.lower() for address in draft.cc]),
                "subject": draft.subject,
                "body_text": draft.body_text,
                "reply_to": draft.reply_to,
                "message_id": draft.message_id,
                "attachments": json.dumps(list(draft.attachments), ensure_ascii=False),
                "state": "pending",
                "attempts": 0,
                "last_error": "",
                "created_at": now,
                "next_attempt_at": now,
                "inbox_id": draft.inbox_id,
                "automatic": draft.automatic,
                "recipient": (draft.recipients[0] if draft.recipients else "").lower(),
                "cause": draft.cause.lower(),
            },
        )
        self._execute("INSERT INTO outbox_letter (id, content) VALUES (?, ?)", (row_id, draft.raw))
        if draft.request_ref:
            self.link_message(draft.request_ref, "out", draft.message_id, outbox_id=row_id)
        return row_id

    def automatic_mail_counts(self, recipient: str, starts: Sequence[datetime]) -> list[int]:
        """How much automatic mail to ``recipient`` was written after each of ``starts``
        (the rate windows, counted by the database rather than read row by row)."""
        return self._counts_after(
            "recipient = ? AND automatic = ?", (recipient.lower(), True), starts
        )

    def caused_counts(self, cause: str, starts: Sequence[datetime]) -> list[int]:
        """How much mail caused by ``cause`` (an outside sender) was written after each
        of ``starts``."""
        return self._counts_after("cause = ?", (cause.lower(),), starts)

    def _counts_after(
        self, condition: str, params: tuple[Any, ...], starts: Sequence[datetime]
    ) -> list[int]:
        if not starts:
            return []
        moments = [self._when(start) for start in starts]
        counts = ", ".join("SUM(CASE WHEN created_at > ? THEN 1 ELSE 0 END)" for _ in starts)
        row = self._execute(
            f"SELECT {counts} FROM outbox_item WHERE {condition} AND created_at > ?",
            (*moments, *params, min(moments)),
        ).fetchone()
        return [int(count or 0) for count in row]

    def sent_kind_to(self, kind: str, recipient: str, since: datetime) -> bool:
        """Whether a ``kind`` mail to ``recipient`` was written since ``since``."""
        row = self._execute(
            "SELECT 1 FROM outbox_item WHERE recipient = ? AND kind = ? AND created_at >= ?"
            " LIMIT 1",
            (recipient.lower(), kind, self._when(since)),
        ).fetchone()
        return row is not None

    def suppress(
        self,
        recipient: str,
        kind: str,
        reason: str,
        request_ref: str | None,
        inbox_id: int | None,
    ) -> None:
        self._insert(
            "suppression",
            {
                "at": self._when(utcnow()),
                "recipient": recipient.lower(),
                "kind": kind,
                "reason": reason,
                "request_ref": request_ref,
                "inbox_id": inbox_id,
            },
        )

    def list_suppressions(self) -> list[dict[str, Any]]:
        return [
            {
                "at": _iso(row.at),
                "recipient": row.recipient,
                "kind": row.kind,
                "reason": row.reason,
                "request": row.request_ref,
                "inbox_id": row.inbox_id,
            }
            for row in Suppression.select().order_by(Suppression.id)
        ]

    def outbox_by_message_id(self, message_id: str) -> dict[str, Any] | None:
        row = OutboxItem.get_or_none(OutboxItem.message_id == message_id)
        return None if row is None else _outbox_dict(row)

    def member_workload(self, week_start: datetime) -> dict[str, dict[str, Any]]:
        """Per member: open requests' hour estimates, assignments since ``week_start``, and
        the last assignment — the raw counts ``assign.MemberLoad`` is built from."""
        loads: dict[str, dict[str, Any]] = {}
        open_states = [state.value for state in OPEN_STATES]
        query = Request.select(Request.assignee, Request.hours_estimate).where(
            Request.assignee.is_null(False) & Request.state.in_(open_states)
        )
        for row in query:
            entry = loads.setdefault(str(row.assignee), _empty_load())
            entry["estimates"].append(row.hours_estimate)
        events = Event.select(Event.detail, Event.at).where(Event.kind == "assigned")
        for event in events.order_by(Event.id):
            member = json.loads(event.detail).get("member")
            if not member:
                continue
            entry = loads.setdefault(member, _empty_load())
            moment = _aware(event.at)
            entry["last_assigned_at"] = moment
            if moment is not None and moment >= week_start:
                entry["assigned_this_week"] += 1
        return loads

    # -- threading look-ups ---------------------------------------------------------

    def refs_for_message_ids(self, message_ids: Iterable[str]) -> list[str]:
        """Requests that any of these Message-IDs belongs to, most recent link first."""
        wanted = [mid for mid in message_ids if mid]
        if not wanted:
            return []
        query = (
            Request.select(Request.ref)
            .join(MessageLink)
            .where(MessageLink.message_id.in_(wanted))
            .order_by(MessageLink.id.desc())
        )
        return list(dict.fromkeys(row.ref for row in query if row.ref))

    def request_summary(self, ref: str) -> dict[str, Any] | None:
        row = Request.get_or_none(Request.ref == ref)
        return None if row is None else _request_dict(row)

    # -- outbox ---------------------------------------------------------------------

    def due_outbox(self, now: datetime, limit: int = 100) -> list[OutboxRow]:
        """Claim up to ``limit`` rows due now and return them.

        The claim is a lease: ``next_attempt_at`` moves ``OUTBOX_LEASE`` ahead, so another
        sender (a second daemon on PostgreSQL, which skips locked rows) leaves them alone,
        and a sender that dies mid-way leaves them due again once the lease runs out —
        sent again with the same Message-ID, never as a different mail.
        """
        with self.transaction():
            due = (
                OutboxItem.select(OutboxItem.id)
                .where(
                    (OutboxItem.state == "pending") & (OutboxItem.next_attempt_at <= _naive(now))
                )
                .order_by(OutboxItem.id)
                .limit(limit)
            )
            if not self.is_sqlite:
                due = due.for_update(skip_locked=True)
            ids = [row.id for row in due]
            if not ids:
                return []
            OutboxItem.update(next_attempt_at=_naive(now + OUTBOX_LEASE)).where(
                OutboxItem.id.in_(ids)
            ).execute()
        # The claimed rows are ours for the lease and their letters never change: they are
        # read after the commit, so the write lock (which a crew's workers wait for) is not
        # held while a hundred letters are read.
        query = (
            OutboxItem.select(*_SENDING)
            .join(OutboxLetter, on=OutboxLetter.id == OutboxItem.id)
            .where(OutboxItem.id.in_(ids))
        )
        # Only what sending needs, as tuples: model objects cost more than the query.
        rows: list[tuple[Any, ...]] = list(query.order_by(OutboxItem.id).tuples())  # type: ignore[arg-type]
        return [_outbox_row(row, now) for row in rows]

    def mark_sent(self, *outbox_ids: int) -> None:
        sent_at = self._when(utcnow())
        with self.transaction():
            for start in range(0, len(outbox_ids), 500):  # within any backend's parameter cap
                chunk = outbox_ids[start : start + 500]
                marks = ", ".join("?" for _ in chunk)
                self._execute(
                    "UPDATE outbox_item SET state = 'sent', sent_at = ?,"
                    f" attempts = attempts + 1, last_error = '' WHERE id IN ({marks})",
                    (sent_at, *chunk),
                )

    def mark_retry(self, outbox_id: int, error: str, next_attempt: datetime) -> None:
        with self.transaction():
            OutboxItem.update(
                attempts=OutboxItem.attempts + 1,
                last_error=error[:2000],
                next_attempt_at=_naive(next_attempt),
            ).where(OutboxItem.id == outbox_id).execute()

    def mark_failed(self, outbox_id: int, error: str) -> None:
        with self.transaction():
            OutboxItem.update(
                state="failed",
                attempts=OutboxItem.attempts + 1,
                last_error=error[:2000],
            ).where(OutboxItem.id == outbox_id).execute()

    # -- people -------------------------------------------------------------------------

    def sync_people(self, people: Iterable[tuple[str, str, str, str, str, dict[str, Any]]]) -> None:
        """Mirror people.yaml (id, role, name, email, language, data) so queries can join."""
        rows = [
            {
                "id": pid,
                "role": role,
                "name": name,
                "email": email,
                "language": language,
                "data": json.dumps(data, ensure_ascii=False, default=str),
            }
            for pid, role, name, email, language, data in people
        ]
        # An upsert, not delete-and-insert: two daemons starting together on one
        # PostgreSQL database must not trip over each other's rows.
        fields = [Person.role, Person.name, Person.email, Person.language, Person.data]
        with self.transaction():
            for chunk in range(0, len(rows), 200):
                Person.insert_many(rows[chunk : chunk + 200]).on_conflict(
                    conflict_target=[Person.id], preserve=fields
                ).execute()
            Person.delete().where(Person.id.not_in([row["id"] for row in rows])).execute()

    # -- inspection (plain dicts with the JSON keys of DESIGN §7) ------------------------

    def list_requests(self) -> list[dict[str, Any]]:
        return [_request_dict(row) for row in Request.select().order_by(Request.id)]

    def show_request(self, ref: str) -> dict[str, Any] | None:
        row = Request.get_or_none(Request.ref == ref.upper())
        if row is None:
            return None
        result = _request_dict(row)
        result["text"] = row.text
        result["decision"] = json.loads(row.decision)
        events = Event.select().where(Event.request == row.id).order_by(Event.id)
        result["events"] = [_event_dict(event) for event in events]
        result["messages"] = [
            {
                "direction": link.direction,
                "message_id": link.message_id,
                "inbox_id": link.inbox_id,
                "outbox_id": link.outbox_id,
                "at": _iso(link.at),
            }
            for link in MessageLink.select()
            .where(MessageLink.request == row.id)
            .order_by(MessageLink.id)
        ]
        return result

    def list_outbox(self) -> list[dict[str, Any]]:
        return [_outbox_dict(row) for row in OutboxItem.select().order_by(OutboxItem.id)]

    def list_quarantine(self) -> list[dict[str, Any]]:
        query = (
            InboxItem.select()
            .where(InboxItem.state.in_(["quarantined", "held"]))
            .order_by(InboxItem.id)
        )
        return [_inbox_dict(row) for row in query]

    def show_inbox(self, inbox_id: int) -> dict[str, Any] | None:
        row = InboxItem.get_or_none(InboxItem.id == inbox_id)
        return None if row is None else _inbox_dict(row)

    def counts(self) -> dict[str, int]:
        return {
            "inbox": InboxItem.select().count(),
            "requests": Request.select().count(),
            "events": Event.select().count(),
            "outbox": OutboxItem.select().count(),
        }


def _request_row(row: Request) -> dict[str, Any]:
    return {
        "ref": row.ref,
        "state": row.state,
        "model": row.model,
        "client": row.client,
        "director": row.director,
        "assignee": row.assignee,
        "subject": row.subject,
        "text": row.text,
        "language": row.language,
        "due": _aware(row.due),
        "skills": tuple(json.loads(row.skills)),
        "priority": row.priority,
        "revision_count": row.revision_count,
        "hours_estimate": row.hours_estimate,
        "hours_spent": row.hours_spent,
        "data": json.loads(row.data or "{}"),
    }


def _empty_load() -> dict[str, Any]:
    return {"estimates": [], "assigned_this_week": 0, "last_assigned_at": None}


def _iso(moment: datetime | None) -> str | None:
    aware = _aware(moment)
    return aware.isoformat() if aware else None


def _request_dict(row: Request) -> dict[str, Any]:
    files = [
        {
            "filename": f.filename,
            "safe_name": f.safe_name,
            "content_type": f.content_type,
            "size": f.size,
            "sha256": f.sha256,
            "inline": f.inline,
        }
        for f in FileRecord.select().where(FileRecord.request == row.id).order_by(FileRecord.id)
    ]
    # The workflow's view of the row, made JSON-friendly; text and data stay internal.
    view = _request_row(row)
    del view["text"], view["data"]
    return {
        **view,
        "due": _iso(row.due),
        "skills": list(view["skills"]),
        "created_at": _iso(row.created_at),
        "updated_at": _iso(row.updated_at),
        "events": Event.select().where(Event.request == row.id).count(),
        "attachments": files,
    }


def _event_dict(row: Event) -> dict[str, Any]:
    return {
        "at": _iso(row.at),
        "actor": row.actor,
        "kind": row.kind,
        "from_state": row.from_state,
        "to_state": row.to_state,
        "inbox_id": row.inbox_id,
        "detail": json.loads(row.detail),
    }


def _outbox_dict(row: OutboxItem) -> dict[str, Any]:
    return {
        "id": row.id,
        "kind": row.kind,
        "to": json.loads(row.recipients),
        "cc": json.loads(row.cc),
        "subject": row.subject,
        "state": row.state,
        "request": row.request_ref,
        "reply_to": row.reply_to,
        "message_id": row.message_id,
        "attachments": json.loads(row.attachments),
        "body_text": row.body_text,
        "attempts": row.attempts,
        "last_error": row.last_error,
        "created_at": _iso(row.created_at),
        "sent_at": _iso(row.sent_at),
    }


def _reason_phrase(stored: str) -> dict[str, Any]:
    """``reason_code`` and ``reason_facts`` of a held mail (what templates say in words)."""
    try:
        phrase = json.loads(stored) if stored else {}
    except ValueError:
        phrase = {}
    return {"reason_code": phrase.get("code"), "reason_facts": phrase.get("facts") or {}}


def _inbox_dict(row: InboxItem) -> dict[str, Any]:
    return {
        "id": row.id,
        "state": row.state,
        "reason": row.reason,
        **_reason_phrase(row.reason_phrase),
        "message_id": row.message_id,
        "sha256": row.sha256,
        "source": row.source,
        "source_ref": row.source_ref,
        "size": row.size,
        "sender": row.sender,
        "subject": row.subject,
        "classification": row.classification,
        "attempts": row.attempts,
        "received_at": _iso(row.received_at),
        "processed_at": _iso(row.processed_at),
        "request": row.request_ref,
    }


__all__ = ["Accepted", "AlreadyProcessed", "BlobStore", "OutboxDraft", "Store", "State"]
