"""Composition root: builds everything once and owns the loop.

``run_once()`` does what is due (process accepted mail, send due outbox rows);
``run()`` starts the listeners and repeats ``run_once()``, woken early whenever a
listener accepts a mail. SIGTERM and SIGINT set the stop flag and wake the sleep;
SIGHUP reloads people, rules and templates.
"""

from __future__ import annotations

import itertools
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, BinaryIO

from mailflow.errors import StoreError
from mailflow.instance import Config, load_config, template_cache
from mailflow.outbox import FlushReport, OutboxSender, make_transport
from mailflow.pipeline import Desk, Processed
from mailflow.render import Renderer
from mailflow.scheduler import Scheduler
from mailflow.settings import read_secret
from mailflow.sources.files import read_messages
from mailflow.sources.imap import ImapPoller
from mailflow.store import Accepted, Store

log = logging.getLogger("mailflow")

# How long the loop waits before trying a store that is down again.
STORE_RETRY_SECONDS = 5.0

# How many messages `ingest` accepts per transaction: one commit per batch, not per mail.
INGEST_BATCH = 200
# The first batch a crew's parent accepts (later ones double up to INGEST_BATCH).
FIRST_BATCH = 25

# How often `run --once` sends what its worker processes have written meanwhile.
SEND_EVERY = 0.5


def database_url(config: Config) -> str:
    settings = config.settings
    return settings.database_url or f"sqlite:///{settings.db_path}"


def sync_people(store: Store, config: Config) -> None:
    rows: list[tuple[str, str, str, str, str, dict[str, Any]]] = []
    directory = config.directory
    for director in directory.directors.values():
        rows.append((director.id, "director", director.name, director.email, director.language, {}))
    for member in directory.members.values():
        rows.append(
            (
                member.id,
                "member",
                member.name,
                member.email,
                member.language,
                {"skills": list(member.skills), "capacity": member.capacity},
            )
        )
    for client in directory.clients.values():
        rows.append(
            (
                client.id,
                "client",
                client.company,
                ",".join(client.contacts),
                client.language,
                {"plan": client.plan.value},
            )
        )
    store.sync_people(rows)


@dataclass(frozen=True)
class RoundReport:
    processed: list[Processed]
    outbox: FlushReport
    mailboxes: dict[str, int | Exception] = field(default_factory=dict)

    @property
    def failed_mailboxes(self) -> dict[str, Exception]:
        return {name: r for name, r in self.mailboxes.items() if isinstance(r, Exception)}


class Service:
    """One running desk: configuration, store, desk pipeline and outbox sender."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.config = load_config(home)
        self.store = Store(database_url(self.config), self.config.settings.data_dir).open()
        sync_people(self.store, self.config)
        self.desk = Desk(
            self.config, self.store, self._renderer(), read_secret(self.config.settings)
        )
        self.scheduler = Scheduler(self.desk)
        settings = self.config.settings
        self.sender = OutboxSender(
            self.store,
            make_transport(settings.outbound_smtp, settings.sent_dir, settings.desk.address),
        )
        self.sender.on_failure = self.desk.delivery_failed
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._listeners: list[Any] = []
        self.imap = ImapPoller(settings.imap)
        self._store_down = False

    def _renderer(self) -> Renderer:
        overrides = self.home / "templates"
        return Renderer.default(
            extra_dirs=(overrides,) if overrides.is_dir() else (),
            bytecode_cache=template_cache(self.config.settings.template_cache_dir),
        )

    # -- one round --------------------------------------------------------------------

    def run_once(self, *, drain_mailboxes: bool = False) -> RoundReport:
        """Process what was accepted and send what is due; with ``drain_mailboxes``, first
        fetch every IMAP mailbox (each on its own: one failing does not stop the others)."""
        workers = backlog_workers()
        if drain_mailboxes and self.imap.sources and workers > 1:
            # A one-shot drain has no listener threads, so worker processes can process
            # what the drain accepts while it goes on fetching.
            with self.desk.crew(workers, self._stop) as crew, ThreadPoolExecutor(1) as drainer:
                draining = drainer.submit(self.imap.drain_all, crew.feeding(self.store.accept_many))
                sent = FlushReport()
                # What the workers have written goes out while they write more, from the
                # start: the letters need not wait for the end of the drain, and the drain,
                # the workers and the flush each spend much of their time waiting for
                # the disk or the server.
                while wait([draining], SEND_EVERY).not_done:
                    sent += self.sender.flush()
                crew.all_accepted()
                while crew.working(SEND_EVERY):
                    sent += self.sender.flush()
            return RoundReport(crew.processed, sent + self.sender.flush(), draining.result())
        mailboxes = self.imap.drain_all(self.store.accept_many) if drain_mailboxes else {}
        processed = self.desk.process_pending(
            stop=self._stop, workers=workers if drain_mailboxes else 1
        )
        return RoundReport(processed, self.sender.flush(), mailboxes)

    def ingest(self, paths: Iterable[str], stdin: BinaryIO | None = None) -> list[Accepted]:
        """Accept every message under ``paths`` and process them all; more than a batch
        is processed by worker processes while the rest is still being accepted."""
        messages = (
            (raw, "ingest", ref) for path in paths for raw, ref in read_messages(path, stdin=stdin)
        )
        # Up to a batch and one mail more are read (not accepted yet) to decide: more
        # than a batch is worth a crew, which is then formed before anything is accepted.
        head = list(itertools.islice(messages, INGEST_BATCH + 1))
        read = itertools.chain(head, messages)
        workers = backlog_workers()
        accepted: list[Accepted] = []
        if len(head) > INGEST_BATCH and workers > 1:
            with self.desk.crew(workers, self._stop) as crew:
                accept = crew.feeding(self.store.accept_many)
                # The first batches are small, so that the workers have mail at once.
                for batch in _batched(read, INGEST_BATCH, first=FIRST_BATCH):
                    accepted += accept(batch)
            return accepted
        for batch in _batched(read, INGEST_BATCH):
            accepted += self.store.accept_many(batch)
        self.desk.process_pending(workers=workers)
        return accepted

    # -- the daemon -----------------------------------------------------------------------

    def run(self, poll_seconds: float = 30.0) -> None:
        self._install_signals()
        self.desk.warm_up()
        self._start_listeners()
        self.imap.start(self.store.accept_many, self.wake, self._stop)
        watchdog = watchdog_interval()
        sd_notify("READY=1\nSTATUS=processing mail")
        log.info("mailflow running in %s", self.home)
        try:
            next_tick = 0.0
            while not self._stop.is_set():
                self._wake.clear()
                if not self._round():
                    self._wake.wait(STORE_RETRY_SECONDS)
                    continue
                if time.monotonic() >= next_tick:
                    # Scheduled work is planned at most once a minute; its keys make a
                    # second run within the minute harmless anyway.
                    self._tick()
                    next_tick = time.monotonic() + 60
                sd_notify("WATCHDOG=1")
                self._wake.wait(min(poll_seconds, watchdog or poll_seconds))
        finally:
            sd_notify("STOPPING=1")
            self._stop.set()
            self._stop_listeners()
            self.imap.join(timeout=10)
            self.store.close()
            log.info("mailflow stopped")

    def _round(self) -> bool:
        """One round; a store that is down (database restarting, disk full) is logged
        once and retried, and the accepted mail waits for it — nothing is lost."""
        try:
            self.run_once()
        except StoreError as exc:
            if not self._store_down:
                log.error("store unavailable, retrying every %ss: %s", STORE_RETRY_SECONDS, exc)
            self._store_down = True
            return False
        if self._store_down:
            log.warning("store available again")
            self._store_down = False
        return True

    def _tick(self) -> None:
        try:
            self.scheduler.tick()
            self.sender.flush()
        except Exception:  # noqa: BLE001 - a failing schedule must not stop the mail
            log.exception("scheduled work failed; trying again in a minute")

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    def reload(self) -> None:
        """Re-read people, rules and templates; keep running on the old ones if invalid."""
        try:
            config = load_config(self.home)
        except Exception as exc:  # noqa: BLE001 - a bad edit must not stop the desk
            log.error("reload refused, keeping the running configuration:\n%s", exc)
            return
        self.config = config
        sync_people(self.store, config)
        self.desk.configure(config)
        self.desk.renderer = self._renderer()
        log.info("reloaded people, rules and templates")

    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return

        def stop(signum: int, frame: FrameType | None) -> None:
            log.info("signal %s: stopping", signum)
            self.stop()

        def hangup(signum: int, frame: FrameType | None) -> None:
            self.reload()
            self.wake()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGHUP, hangup)

    def _start_listeners(self) -> None:
        from mailflow.sources.smtp import start_listener

        settings = self.config.settings
        for address, lmtp in ((settings.smtp_listen, False), (settings.lmtp_listen, True)):
            if address is None:
                continue
            host, port = address
            self._listeners.append(
                start_listener(
                    host,
                    port,
                    accept=self.store.accept,
                    on_accepted=self.wake,
                    max_bytes=settings.max_message_bytes,
                    lmtp=lmtp,
                )
            )

    def _stop_listeners(self) -> None:
        for listener in self._listeners:
            listener.stop()
        self._listeners.clear()


def sd_notify(state: str) -> None:
    """Tell systemd (Type=notify) how we are, when it asked via NOTIFY_SOCKET."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]  # the abstract namespace
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as channel:
            channel.sendto(state.encode(), address)
    except OSError as exc:
        log.warning("sd_notify failed: %s", exc)


def watchdog_interval() -> float | None:
    """Half of systemd's WatchdogSec, in seconds, when the watchdog is on."""
    value = os.environ.get("WATCHDOG_USEC")
    if not value or not value.isdigit():
        return None
    return int(value) / 2_000_000


def _batched(items: Iterable[Any], size: int, *, first: int = 0) -> Iterator[list[Any]]:
    """Lists of ``size`` items; with ``first``, the first ones grow from ``first`` to
    ``size``, doubling."""
    batch: list[Any] = []
    limit = first or size
    for item in items:
        batch.append(item)
        if len(batch) >= limit:
            yield batch
            batch = []
            limit = min(size, limit * 2)
    if batch:
        yield batch


def backlog_workers() -> int:
    """Processes for a large backlog: one per core, at most four."""
    return max(1, min(4, os.cpu_count() or 1))
