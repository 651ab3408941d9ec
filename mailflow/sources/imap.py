"""IMAP source: the only imapclient module.

One ``ImapSource`` per ``[[imap]]`` mailbox. ``drain()`` takes every message in the folder
(``UID SEARCH ALL``: a mail someone already read in a mail client is still taken), fetches
it with ``BODY.PEEK[]`` in batches, hands each batch to ``accept_many`` (which commits),
and only then moves the batch to the processed folder: UID MOVE, or COPY + \\Deleted +
UID EXPUNGE where MOVE is missing. Nothing is ever deleted otherwise. The next batch is
fetched while one is being accepted. If the accept raises, the batch stays where it is and
the next drain takes it again; if the process dies between the commit and the move, the
next drain accepts the same bytes again, the store recognises them as a duplicate, and the
move completes. The source reference of each message is ``"<UIDVALIDITY>:<UID>"``.

``wait()`` sleeps in IMAP IDLE until the server reports new mail (re-issuing IDLE well
before the 29-minute limit of RFC 2177), or polls every ``poll_interval`` when the server
has no IDLE. ``run()`` loops drain → wait and reconnects with capped exponential backoff,
logging an outage once when it starts and once when it ends. ``ImapPoller`` runs one
thread per mailbox, so one failing account never holds up another.
"""

from __future__ import annotations

import imaplib
import logging
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mailflow.errors import MailflowError
from mailflow.settings import ImapSettings
from mailflow.sources.oauth2 import OAuth2Error, TokenSource
from mailflow.store import Accepted, AcceptMany

if TYPE_CHECKING:
    from imapclient import IMAPClient

log = logging.getLogger("mailflow.imap")

ClientFactory = Callable[[ImapSettings, float], Any]

_BODY = b"BODY[]"
_SIZE = b"RFC822.SIZE"
_DELETED = rb"\Deleted"
# RFC 2177: servers may drop a client idle for 30 minutes; re-issue IDLE before that.
MAX_IDLE = 25 * 60.0


class MailboxError(MailflowError):
    """A mailbox cannot be read now: unreachable, login refused, or the server said NO."""


@dataclass(frozen=True)
class Tuning:
    """Knobs with production defaults; tests shorten the waits."""

    batch_size: int = 200  # messages per UID FETCH and per accept_many commit
    first_batch: int = 25  # the first batches grow from this (worker processes start sooner)
    batch_bytes: int = 50_000_000  # and at most this many bytes in one batch
    size_chunk: int = 2000  # UIDs per RFC822.SIZE fetch when planning batches
    timeout: float = 60.0  # socket connect and read timeout
    max_idle: float = MAX_IDLE  # one IDLE command lasts at most this long
    idle_slice: float = 1.0  # how often an IDLE looks at the stop event
    recheck: float = 300.0  # drain at least this often even if IDLE said nothing
    backoff_start: float = 1.0
    backoff_max: float = 60.0


def open_client(settings: ImapSettings, timeout: float) -> IMAPClient:
    """Connect (TLS, STARTTLS or plain) with certificate and host name checks."""
    # Imported here: imapclient costs ~20 ms of every start-up, and most commands (and
    # instances without [[imap]]) never connect.
    from imapclient import IMAPClient

    context = ssl.create_default_context()
    if settings.tls == "ssl":
        return _quiet(
            IMAPClient(
                settings.host, port=settings.port, ssl=True, ssl_context=context, timeout=timeout
            )
        )
    client = _quiet(IMAPClient(settings.host, port=settings.port, ssl=False, timeout=timeout))
    if settings.tls == "starttls":
        try:
            client.starttls(context)
        except BaseException:
            _shutdown(client)
            raise
    return client


def _quiet(client: IMAPClient) -> IMAPClient:
    """imapclient sets imaplib's debug level to 5 so that its logger sees the protocol; at
    that level imaplib formats every response with ``%r``, fetched mail included, before the
    logger drops it: ~8 % of a drain's parent process. Kept only while the logger would
    print it."""
    if not logging.getLogger("imapclient.imaplib").isEnabledFor(logging.DEBUG):
        client._imap.debug = 0
    return client


def _shutdown(client: Any) -> None:
    try:
        client.shutdown()
    except Exception:  # noqa: BLE001 - the connection is being thrown away
        pass


def folder_path(path: str, delimiter: str | None, prefix: str = "") -> str:
    """``"mailflow/processed"`` in the server's hierarchy: ``"mailflow.processed"`` on Dovecot.

    ``prefix`` is the personal namespace (``"INBOX."`` on Courier and old Cyrus); a server
    without hierarchy (NIL delimiter) gets the levels joined with ``"_"``.
    """
    name = (delimiter or "_").join(part for part in path.split("/") if part)
    if prefix and not name.upper().startswith(prefix.upper()):
        name = prefix + name
    return name


def _is_arrival(response: Any) -> bool:
    if not isinstance(response, tuple) or len(response) < 2:
        return False
    count, kind = response[0], response[1]
    return kind == b"EXISTS" or (kind == b"RECENT" and isinstance(count, int) and count > 0)


def _is_bye(response: Any) -> bool:
    return isinstance(response, tuple) and bool(response) and response[0] == b"BYE"


def _describe(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, TimeoutError):
        return "timed out"
    return text


def _fetch_bodies(client: Any, batch: list[int]) -> dict[int, bytes]:
    """The raw bytes of each message in ``batch``, in UID order; a message expunged by
    someone else since the SEARCH is simply absent."""
    fetched = client.fetch(batch, ["BODY.PEEK[]"])
    return {uid: bytes(fetched[uid][_BODY]) for uid in batch if _BODY in fetched.get(uid, {})}


class ImapSource:
    """One mailbox: connect, drain, wait for more; reconnects when the server goes away."""

    def __init__(
        self,
        settings: ImapSettings,
        *,
        tuning: Tuning | None = None,
        client_factory: ClientFactory = open_client,
        tokens: TokenSource | None = None,
    ) -> None:
        self.settings = settings
        self.source = f"imap:{settings.name}"
        self.tuning = tuning or Tuning()
        self._client_factory = client_factory
        if tokens is None and settings.oauth2 is not None:
            tokens = TokenSource(settings.oauth2)
        self._tokens = tokens
        self._client: Any = None
        self._processed = ""
        self._selected = False
        self._outage_since: float | None = None
        self._attempts = 0
        self._warned_expunge = False

    # -- connection -----------------------------------------------------------------------

    def connect(self) -> Any:
        """The logged-in client, connecting first if needed; raises ``MailboxError``."""
        if self._client is not None:
            return self._client
        settings = self.settings
        where = f"{self.source} ({settings.host}:{settings.port})"
        try:
            client = self._client_factory(settings, self.tuning.timeout)
        except (OSError, imaplib.IMAP4.error) as error:
            raise MailboxError(f"{where}: cannot connect: {_describe(error)}") from error
        try:
            self._login(client)
            self._processed = self._prepare_processed_folder(client)
        except (OAuth2Error, MailboxError):
            _shutdown(client)
            raise
        except (OSError, imaplib.IMAP4.error) as error:
            _shutdown(client)
            raise MailboxError(f"{where}: {_describe(error)}") from error
        self._client = client
        self._selected = False
        return client

    def _login(self, client: Any) -> None:
        settings = self.settings
        if self._tokens is not None:
            try:
                client.oauth2_login(settings.username, self._tokens.access_token())
            except imaplib.IMAP4.error:
                # A revoked or expired token: get a fresh one on the next attempt.
                self._tokens.invalidate()
                raise
            return
        client.login(settings.username, self._password())

    def _password(self) -> str:
        settings = self.settings
        if settings.password_file is None:
            return settings.password or ""
        # Read on every login, so a rotated password is picked up without a restart.
        try:
            return settings.password_file.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as error:
            raise MailboxError(
                f"{self.source}: cannot read password_file {settings.password_file}: "
                f"{error.strerror or error}"
            ) from None

    def _prepare_processed_folder(self, client: Any) -> str:
        delimiter, prefix = self._hierarchy(client)
        name = folder_path(self.settings.processed_folder, delimiter, prefix)
        if not client.folder_exists(name):
            try:
                client.create_folder(name)
            except imaplib.IMAP4.error:
                # Another daemon on the same mailbox may have created it a moment ago.
                if not client.folder_exists(name):
                    raise
            try:
                client.subscribe_folder(name)
            except imaplib.IMAP4.error:
                log.debug("%s: could not subscribe to %s", self.source, name)
            log.info("%s: created folder %s", self.source, name)
        return name

    @staticmethod
    def _hierarchy(client: Any) -> tuple[str | None, str]:
        """The hierarchy delimiter and personal namespace prefix the server uses."""
        if client.has_capability("NAMESPACE"):
            personal = client.namespace().personal
            if personal:
                prefix, delimiter = personal[0]
                return (str(delimiter) if delimiter else None), str(prefix or "")
        listing = client.list_folders("", "")
        delimiter = listing[0][1] if listing else None
        if isinstance(delimiter, bytes):
            delimiter = delimiter.decode("ascii", "replace")
        return delimiter or None, ""

    def __enter__(self) -> ImapSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Log out; the next call connects again."""
        client, self._client = self._client, None
        if client is None:
            return
        try:
            client.logout()
        except Exception:  # noqa: BLE001 - a broken connection closes anyway
            _shutdown(client)

    def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            _shutdown(client)

    # -- draining -------------------------------------------------------------------------

    def drain(self, accept_many: AcceptMany) -> int:
        """Accept every message in the folder, then move it; return how many were new.

        Messages the store already had (duplicates) are moved too but not counted. If
        ``accept_many`` raises, the batch in hand is neither moved nor flagged and the
        exception propagates.
        """
        client = self.connect()
        try:
            return self._drain(client, accept_many)
        except (OSError, imaplib.IMAP4.error) as error:
            self._drop()
            raise MailboxError(f"{self.source}: {_describe(error)}") from error

    def _drain(self, client: Any, accept_many: AcceptMany) -> int:
        selected = client.select_folder(self.settings.folder)
        self._selected = True
        uidvalidity = int(selected[b"UIDVALIDITY"])
        handled: set[int] = set()
        new = taken = 0
        with ThreadPoolExecutor(1, thread_name_prefix=f"{self.source} fetch") as fetcher:
            # Search again after each pass: mail that arrived meanwhile is taken now, not
            # after the next IDLE wake-up (which it would not trigger).
            while uids := [uid for uid in client.search("ALL") if uid not in handled]:
                batches = self._batches(client, uids)
                for batch, results in self._take(
                    client, batches, uidvalidity, accept_many, fetcher
                ):
                    new += sum(not result.duplicate for result in results)
                    taken += len(results)
                    handled.update(batch)
        if taken:
            log.info(
                "%s: accepted %d new, %d already known, moved to %s",
                self.source,
                new,
                taken - new,
                self._processed,
            )
        return new

    def _batches(self, client: Any, uids: list[int]) -> Iterator[list[int]]:
        """Runs of UIDs limited by count and by total size; the first runs are shorter
        (doubling up to ``batch_size``), so that what processes the mail starts sooner."""
        tuning = self.tuning
        count = min(tuning.first_batch, tuning.batch_size) or tuning.batch_size
        # The sizes of the first batch are asked for alone: its fetch, which the workers
        # are waiting for, need not wait for the sizes of thousands.
        start, asking = 0, count
        while start < len(uids):
            chunk = uids[start : start + asking]
            start, asking = start + len(chunk), tuning.size_chunk
            sizes = client.fetch(chunk, [_SIZE])
            batch: list[int] = []
            total = 0
            for uid in chunk:
                size = int(sizes.get(uid, {}).get(_SIZE, 0))
                if batch and (len(batch) >= count or total + size > tuning.batch_bytes):
                    yield batch
                    batch, total = [], 0
                    count = min(count * 2, tuning.batch_size)
                batch.append(uid)
                total += size
            if batch:
                yield batch
                count = min(count * 2, tuning.batch_size)

    def _take(
        self,
        client: Any,
        batches: Iterator[list[int]],
        uidvalidity: int,
        accept_many: AcceptMany,
        fetcher: Executor,
    ) -> Iterator[tuple[list[int], list[Accepted]]]:
        """Accept each batch, then move it; yield it with what the store said.

        The next batch is fetched (by ``fetcher``) while this one is accepted: the accept
        mostly waits for the disk, the fetch for the server and the response parser.
        The connection still carries one command at a time: the next batch is planned
        before its fetch starts, and the move waits until that fetch is done.
        """
        batch = next(batches, None)
        bodies = _fetch_bodies(client, batch) if batch else {}
        while batch is not None:
            upcoming = next(batches, None)
            fetching = fetcher.submit(_fetch_bodies, client, upcoming) if upcoming else None
            try:
                results = self._accept(bodies, uidvalidity, accept_many)
            except BaseException:
                if fetching is not None:
                    wait([fetching])  # the connection is free again before anyone uses it
                raise
            following = fetching.result() if fetching is not None else {}
            if bodies:
                self._move(client, list(bodies))
            yield batch, results
            batch, bodies = upcoming, following

    def _accept(
        self, bodies: dict[int, bytes], uidvalidity: int, accept_many: AcceptMany
    ) -> list[Accepted]:
        if not bodies:
            return []
        return accept_many(
            [(raw, self.source, f"{uidvalidity}:{uid}") for uid, raw in bodies.items()]
        )

    def _move(self, client: Any, uids: list[int]) -> None:
        if client.has_capability("MOVE"):
            client.move(uids, self._processed)
            return
        client.copy(uids, self._processed)
        client.add_flags(uids, [_DELETED], silent=True)
        if client.has_capability("UIDPLUS"):
            client.uid_expunge(uids)
            return
        if not self._warned_expunge:
            log.warning(
                "%s: the server has neither MOVE nor UIDPLUS; EXPUNGE also removes other "
                "messages marked \\Deleted in %s",
                self.source,
                self.settings.folder,
            )
            self._warned_expunge = True
        client.expunge()

    # -- waiting --------------------------------------------------------------------------

    def wait(self, timeout: float, stop_event: threading.Event) -> bool:
        """Block until the server reports new mail (True), ``timeout`` passes or
        ``stop_event`` is set (False). Polls every ``poll_interval`` without IDLE."""
        client = self.connect()
        try:
            if not self._selected:
                client.select_folder(self.settings.folder)
                self._selected = True
            if self.settings.idle and client.has_capability("IDLE"):
                return self._idle(client, timeout, stop_event)
            return self._poll(client, timeout, stop_event)
        except MailboxError:
            self._drop()
            raise
        except (OSError, imaplib.IMAP4.error) as error:
            self._drop()
            raise MailboxError(f"{self.source}: {_describe(error)}") from error

    def _idle(self, client: Any, timeout: float, stop_event: threading.Event) -> bool:
        deadline = time.monotonic() + timeout
        while not stop_event.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            client.idle()
            arrived = self._idle_once(client, min(remaining, self.tuning.max_idle), stop_event)
            _text, responses = client.idle_done()
            if arrived or any(_is_arrival(response) for response in responses):
                return True
        return False

    def _idle_once(self, client: Any, length: float, stop_event: threading.Event) -> bool:
        """One IDLE command: True on EXISTS/RECENT; False when it is time to end it."""
        end = time.monotonic() + length
        while not stop_event.is_set():
            left = end - time.monotonic()
            if left <= 0:
                return False
            wait = min(left, self.tuning.idle_slice)
            started = time.monotonic()
            responses = client.idle_check(timeout=wait)
            if any(_is_bye(response) for response in responses):
                raise MailboxError(f"{self.source}: the server closed the connection")
            if any(_is_arrival(response) for response in responses):
                return True
            if not responses and time.monotonic() - started < wait / 2:
                # The socket woke up with nothing to read: a closed connection looks like
                # this. Ending IDLE tells (it raises when the connection is gone).
                return False
        return False

    def _poll(self, client: Any, timeout: float, stop_event: threading.Event) -> bool:
        if stop_event.wait(min(timeout, self.settings.poll_interval)):
            return False
        # NOOP lets the server tell the selected folder's news; SEARCH confirms there is
        # something to take (STATUS on the selected folder may answer from a stale view).
        _text, responses = client.noop()
        return any(_is_arrival(response) for response in responses) or bool(client.search("ALL"))

    # -- the loop -------------------------------------------------------------------------

    def run(
        self, accept_many: AcceptMany, on_accepted: Callable[[], None], stop_event: threading.Event
    ) -> None:
        """drain → on_accepted() when something new arrived → wait, until ``stop_event``."""
        backoff = self.tuning.backoff_start
        try:
            while not stop_event.is_set():
                try:
                    if self.drain(accept_many) > 0:
                        on_accepted()
                    self._reachable()
                    backoff = self.tuning.backoff_start
                    self.wait(self.tuning.recheck, stop_event)
                except Exception as error:  # noqa: BLE001 - one mailbox must never stop
                    self._unreachable(error, backoff)
                    self._drop()
                    stop_event.wait(backoff)
                    backoff = min(backoff * 2, self.tuning.backoff_max)
        finally:
            self.close()

    def _unreachable(self, error: Exception, backoff: float) -> None:
        self._attempts += 1
        if self._outage_since is not None:
            log.debug("%s: still failing (attempt %d): %s", self.source, self._attempts, error)
            return
        self._outage_since = time.monotonic()
        log.warning(
            "%s: mailbox unavailable, retrying every %g s up to %g s: %s",
            self.source,
            backoff,
            self.tuning.backoff_max,
            error,
        )

    def _reachable(self) -> None:
        if self._outage_since is None:
            return
        seconds = time.monotonic() - self._outage_since
        log.info(
            "%s: mailbox available again after %.0f s (%d failed attempts)",
            self.source,
            seconds,
            self._attempts,
        )
        self._outage_since = None
        self._attempts = 0

    @property
    def failing(self) -> bool:
        """True while an outage is going on (for status output)."""
        return self._outage_since is not None


class ImapPoller:
    """All ``[[imap]]`` mailboxes: one thread each in the daemon, or one drain each."""

    def __init__(
        self,
        mailboxes: Sequence[ImapSettings],
        *,
        tuning: Tuning | None = None,
        client_factory: ClientFactory = open_client,
    ) -> None:
        self.sources = [
            ImapSource(mailbox, tuning=tuning, client_factory=client_factory)
            for mailbox in mailboxes
        ]
        self._threads: list[threading.Thread] = []

    def start(
        self, accept_many: AcceptMany, on_accepted: Callable[[], None], stop_event: threading.Event
    ) -> None:
        """Start one daemon thread per mailbox; they stop when ``stop_event`` is set."""
        for source in self.sources:
            thread = threading.Thread(
                target=source.run,
                args=(accept_many, on_accepted, stop_event),
                name=source.source,
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the threads after ``stop_event`` was set; True when all ended."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        self._threads = [thread for thread in self._threads if thread.is_alive()]
        return not self._threads

    def drain_all(self, accept_many: AcceptMany) -> dict[str, int | Exception]:
        """Drain every mailbox once, in parallel (``run --once``); close the connections.

        Each mailbox reports the number of new messages or the exception that stopped it.
        """
        results: dict[str, int | Exception] = {}

        def drain(source: ImapSource) -> None:
            try:
                results[source.settings.name] = source.drain(accept_many)
            except Exception as error:  # noqa: BLE001 - reported, the others go on
                log.error("%s: %s", source.source, error)
                results[source.settings.name] = error
            finally:
                source.close()

        threads = [
            threading.Thread(target=drain, args=(source,), name=source.source)
            for source in self.sources
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return {source.settings.name: results[source.settings.name] for source in self.sources}

    def close(self) -> None:
        for source in self.sources:
            source.close()
