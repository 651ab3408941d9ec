"""One path for every mail: claim → parse → classify → identify → plan → commit.

``Desk`` holds what is built once (configuration, renderer, store, secret) and runs the
pure steps, then carries out their Outcome in one transaction. A message that raises is
quarantined with its reason; the others go on.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import queue
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from mailflow import ratelimit
from mailflow import threading as mfthreading
from mailflow.asked import read_format
from mailflow.assign import MemberLoad
from mailflow.auth import AuthResult, authenticate
from mailflow.calendar_jp import BusinessCalendar
from mailflow.classify import classify
from mailflow.compose import compose
from mailflow.errors import StoreError
from mailflow.instance import Config
from mailflow.model import (
    Address,
    Attachment,
    Classification,
    FileRef,
    Notice,
    Outcome,
    ParsedMail,
    Sender,
)
from mailflow.parse import parse_mail, safe_name
from mailflow.phrases import phrase
from mailflow.randomness import token_hex
from mailflow.render import Renderer
from mailflow.situation import RequestView, Situation
from mailflow.store import (
    Accepted,
    AcceptMany,
    AlreadyProcessed,
    OutboxDraft,
    OutboxRow,
    PendingItem,
    Store,
    store_failure,
    utcnow,
)
from mailflow.transitions import month_bounds
from mailflow.workflow import delivery_failed, plan, quarantine_notice

log = logging.getLogger("mailflow")

Clock = Callable[[], datetime]
# What Desk.warm_up reads: Japanese text in ISO-2022-JP, as most clients' mail comes.
_REHEARSAL_TEXT = "Excel形式でお願いします。12月3日までにご確認ください。"
_REHEARSAL_MAIL = (
    "From: rehearsal@example.com\r\nSubject: =?ISO-2022-JP?B?GyRCJDMkcyRLJEEkTxsoQg==?=\r\n"
    'Content-Type: text/plain; charset="ISO-2022-JP"\r\n\r\n'
).encode("ascii") + _REHEARSAL_TEXT.encode("iso-2022-jp")
# One outgoing mail, rendered and composed, waiting to be written to the outbox.
Letter = tuple[Notice, OutboxDraft]
# The ref of the mail's request (reserved when new) and its outgoing mails.
Prepared = tuple[str | None, list[Letter]]

# Mails processed per SQLite transaction (see process_pending).
COMMIT_EVERY = 50
# How much of an oversized mail is read to find its headers.
HEADER_BYTES = 256 * 1024
# A backlog this large is shared among worker processes (see process_pending).
WORKERS_FROM = 200
# How often the parent of a crew checkpoints the SQLite log while the workers write.
CHECKPOINT_EVERY = 0.25
# How often a crew worker waiting for mail checks that its parent is still there.
ORPHAN_CHECK = 1.0
# Mails a crew worker writes in one transaction: a commit per mail would cost more than
# any single step, while a group must stay short (the others wait for the write lock).
# 16 rather than 8: ~5 % less time for a 2,000-mail ingest (half the commits and ref
# reservations); the first batch a crew accepts (FIRST_BATCH, 25) still makes two groups.
GROUP = 16


@dataclass(frozen=True)
class Planned:
    """A mail parsed and planned, its files not yet kept, its letters not yet rendered."""

    mail: ParsedMail
    situation: Situation
    outcome: Outcome
    trusted: bool  # its files may join the request

    @property
    def files_to_keep(self) -> tuple[Attachment, ...]:
        """The attachments that will join a request: on disk before the transaction that
        records them (whose fsyncs must not hold the write lock)."""
        if self.trusted and (self.outcome.request_ref or self.outcome.new_request):
            return tuple(self.mail.attachments)
        return ()


@dataclass(frozen=True)
class Worked(Planned):
    """A mail worked out and rendered, waiting to be written."""

    prepared: Prepared


@dataclass(frozen=True)
class Processed:
    inbox_id: int
    state: str
    ref: str | None
    note: str


class Desk:
    """The composition of config, templates and store that processes mail."""

    def __init__(
        self,
        config: Config,
        store: Store,
        renderer: Renderer,
        secret: bytes,
        clock: Clock = utcnow,
    ) -> None:
        self.config = config
        self.store = store
        self.renderer = renderer
        self.secret = secret
        self.clock = clock
        self._files: ThreadPoolExecutor | None = None
        self._files_pid = 0
        self.configure(config)

    def configure(self, config: Config) -> None:
        """Take a (re)loaded configuration: people, rules and what is derived from them."""
        self._loads: tuple[datetime, dict[str, MemberLoad]] | None = None
        self.config = config
        self.calendar = BusinessCalendar.from_defaults(config.rules.defaults)
        defaults = config.rules.defaults
        self.rate_windows = _windows(defaults.automatic_mail_limits)
        self.sender_windows = _windows(defaults.sender_mail_limits)

    @property
    def desk_address(self) -> str:
        return self.config.settings.desk.address

    # -- the loop body ------------------------------------------------------------------

    def process_pending(
        self, limit: int = 500, *, stop: threading.Event | None = None, workers: int = 1
    ) -> list[Processed]:
        """Process accepted mail until none is left; a set ``stop`` ends the round once
        what was already worked out is written (SIGTERM during a backlog stops within a
        group: no mail is parsed after it, at most COMMIT_EVERY are still written).

        With ``workers`` > 1 a large SQLite backlog is shared among that many processes
        (only from a process without threads: `ingest`, `run --once`).
        """
        stop = stop or threading.Event()
        self._loads = None  # another daemon or a person may have assigned since
        if not self.store.is_sqlite:
            return self._process_locked(stop)
        if workers > 1 and self.store.count_pending() >= WORKERS_FROM:
            with self.crew(workers, stop) as crew:
                pass  # the backlog is all there: the workers only drain it
            return crew.processed
        done: list[Processed] = []
        while not stop.is_set():
            batch = self.store.pending(limit)
            if not batch:
                return done
            for start in range(0, len(batch), COMMIT_EVERY):
                # One SQLite transaction per few dozen mails (each in its own savepoint,
                # so one failing mail rolls back alone): commits, not parsing, would
                # otherwise set the pace.
                done += self.process_group(batch[start : start + COMMIT_EVERY], stop=stop)
        return done

    def crew(self, workers: int, stop: threading.Event | None = None) -> Crew:
        """Worker processes that process accepted mail while the caller goes on
        accepting (``with desk.crew(n) as crew: …accept…``; then ``crew.processed``)."""
        return Crew(self, workers, stop or threading.Event())

    def _process_locked(self, stop: threading.Event) -> list[Processed]:
        """PostgreSQL: each message inside a transaction that holds its row lock, so that
        several daemons on one database never work on the same message."""
        done: list[Processed] = []
        while not stop.is_set():
            with self.store.transaction():
                item = self.store.lock_next_pending()
                if item is None:
                    return done
                result = self.process(item)
            if result is not None:
                done.append(result)
        return done

    def warm_up(self) -> None:
        """Build now what the first mails would otherwise build on the way: the rules'
        keyword patterns, the ISO-2022-JP tables, the format words. (Not the templates:
        loading every kind costs more than the few a first mail needs, and compiling
        them all, with no bytecode cache yet, about a second.)

        A crew's worker does this while it has no mail yet (its first group took ~120 ms
        instead of ~45), the daemon before it takes mail.
        """
        rules = self.config.rules
        steps: tuple[Callable[[], object], ...] = (
            lambda: rules.skill_index,
            lambda: read_format(_REHEARSAL_TEXT, rules.formats),
            lambda: parse_mail(_REHEARSAL_MAIL),
        )
        for step in steps:
            try:
                step()
            except Exception as exc:  # noqa: BLE001 - a mail that needs it will say why
                log.warning("warm-up: %s: %s", type(exc).__name__, exc)

    def process(self, item: PendingItem) -> Processed | None:
        done = self.process_group([item])
        return done[0] if done else None

    def process_group(
        self, items: Sequence[PendingItem], *, stop: threading.Event | None = None
    ) -> list[Processed]:
        """Work each mail out on its own (parse → plan → render, outside any transaction),
        then write them all in one transaction, each in its own savepoint: one commit
        for the group, and a mail that fails rolls back alone. A set ``stop`` ends the
        group after the mail in hand (SIGTERM during a backlog); what was worked out is
        written."""
        started = time.perf_counter()
        done: list[Processed] = []
        planned: list[tuple[PendingItem, Planned]] = []
        # Each mail's files are written and synced by a thread from the moment it is
        # planned, while the others are planned and the letters rendered. The letters are
        # rendered together, after the planning: each step then runs on warm caches, and
        # the refs for the group's new requests are reserved at once.
        keeping: list[Callable[[], object]] = []
        for item in items:
            if stop is not None and stop.is_set():
                break
            mail_plan: Planned | None = None
            with self._failing(item, done):
                mail_plan = self._plan(item)
            if mail_plan is not None:
                planned.append((item, mail_plan))
                keeping.append(self._keep_files_meanwhile(mail_plan.files_to_keep))
        opening = sum(1 for _, mail_plan in planned if mail_plan.outcome.new_request is not None)
        ready: list[tuple[PendingItem, Worked]] = []
        for item, mail_plan in planned:
            with self._failing(item, done):
                ready.append((item, self._prepared(mail_plan, refs_ahead=opening)))
            opening -= mail_plan.outcome.new_request is not None
        for files_kept in keeping:
            files_kept()  # a file system that failed stops the group: all stay accepted
        together = self.store.transaction() if len(ready) > 1 else contextlib.nullcontext()
        with together:
            for item, worked in ready:
                with self._failing(item, done):
                    done.append(self._write(item, worked))
        for result in done:
            log.info(
                "inbox %s → %s %s (%s) %.0f ms",
                result.inbox_id,
                result.state,
                result.ref or "-",
                result.note,
                (time.perf_counter() - started) * 1000,
            )
        return done

    @contextlib.contextmanager
    def _failing(self, item: PendingItem, done: list[Processed]) -> Iterator[None]:
        """One bad mail never stops the others: it is quarantined with the reason."""
        try:
            yield
        except AlreadyProcessed:
            return
        except Exception as exc:  # noqa: BLE001 - one bad mail never stops the others
            if store_failure(exc):
                # The store, not the mail, failed: the mail stays accepted for the next
                # round instead of being quarantined for a fault of ours.
                raise StoreError(f"database: {exc}") from exc
            reason = f"{type(exc).__name__}: {exc}"
            log.error(
                "inbox %s quarantined: %s\n%s", item.inbox_id, reason, traceback.format_exc(limit=6)
            )
            self.store.quarantine(item.inbox_id, reason)
            self._tell_director(item, reason)
            done.append(Processed(item.inbox_id, "quarantined", None, reason))

    def _tell_director(self, item: PendingItem, reason: str) -> None:
        """A quarantined mail is reported to the (first) director, at most once an hour;
        a failure to report never stops the others either."""
        try:
            head = self.store.raw.head(item.sha256, HEADER_BYTES)
            mail = parse_mail(header_block(head))
            sender, subject = (str(mail.sender) if mail.sender else ""), mail.subject
        except Exception:  # noqa: BLE001 - the mail is broken: report what we know
            sender, subject = "", ""
        notice = quarantine_notice(self.config.directory, item.inbox_id, sender, subject, reason)
        if notice is None:
            return
        try:
            with self.store.transaction():
                self.carry_out(Outcome(notices=(notice,)))
        except Exception:  # noqa: BLE001
            log.exception("could not tell the director about inbox %s", item.inbox_id)

    def _work_out(self, item: PendingItem) -> Worked:
        """Everything but the writing: parse, situate, plan, keep the files, render."""
        planned = self._plan(item)
        self.store.keep_files(planned.files_to_keep)
        return self._prepared(planned)

    def _keep_files_meanwhile(self, files: Sequence[Attachment]) -> Callable[[], object]:
        """Start keeping ``files`` in this process's file thread (writes and fsyncs let go
        of the GIL); the function returned waits and raises what keeping raised."""
        if not files:
            return lambda: None
        return self._file_thread().submit(self.store.keep_files, files).result

    def end_file_thread(self) -> None:
        """Before a fork: a child must not inherit a thread (it makes its own)."""
        if self._files is not None:
            self._files.shutdown(wait=True)
            self._files = None

    def _file_thread(self) -> ThreadPoolExecutor:
        # Made on first use in each process (a crew's workers are forked without it): a
        # thread started per group cost ~0.7 ms of waiting for it to take the GIL.
        if self._files is None or self._files_pid != os.getpid():
            self._files = ThreadPoolExecutor(max_workers=1, thread_name_prefix="keep-files")
            self._files_pid = os.getpid()
        return self._files

    def _plan(self, item: PendingItem) -> Planned:
        limit = self.config.settings.max_message_bytes
        if item.size > limit:
            # An oversized mail is only read as far as its headers: who sent it, about what.
            oversized: tuple[int, int] | None = (item.size, limit)
            mail = parse_mail(header_block(self.store.raw.head(item.sha256, HEADER_BYTES)))
        else:
            raw = self.store.raw.get(item.sha256)
            oversized = (len(raw), limit) if len(raw) > limit else None
            mail = parse_mail(header_block(raw) if oversized else raw)
        situation = self.situate(mail, oversized=oversized)
        outcome = plan(situation)
        # Files of a refused (spoofed) or automatic mail never join a request.
        trusted = situation.classification is Classification.HUMAN and not outcome.hold_reason
        return Planned(mail, situation, outcome, trusted)

    def _prepared(self, planned: Planned, *, refs_ahead: int = 1) -> Worked:
        """``refs_ahead``: how many mails, this one included, will still open a request."""
        prepared = self.prepare(planned.outcome, planned.mail, refs_ahead=refs_ahead)
        return Worked(planned.mail, planned.situation, planned.outcome, planned.trusted, prepared)

    def _planned_on_stale(self, worked: Worked) -> bool:
        """Whether the request a mail was planned against has changed since."""
        ref = worked.situation.matched_ref
        if ref is None:
            return False
        row = self.store.request_row(ref)
        return (RequestView.from_row(row) if row else None) != worked.situation.request

    # -- pure steps, also used by `mailflow explain` --------------------------------------

    def situate(self, mail: ParsedMail, *, oversized: tuple[int, int] | None = None) -> Situation:
        desk = self.config.settings.desk
        classification, why = classify(mail, desk_domain=desk.domain, desk_address=desk.address)
        directory = self.config.directory
        sender = directory.identify(mail.sender.email) if mail.sender else None
        bounced = self._bounced_outbox(mail) if classification is Classification.BOUNCE else None
        bounced_ref = bounced["request"] if bounced else None
        matched_ref = self.match_request(mail, sender)
        now = self.clock()
        row = self.store.request_row(matched_ref) if matched_ref else None
        auth = self._authenticate(mail, sender, matched_ref)
        return Situation(
            mail=mail,
            classification=classification,
            classification_reason=why,
            sender=sender,
            matched_ref=matched_ref,
            directory=directory,
            rules=self.config.rules,
            now=now,
            timezone=desk.timezone,
            desk_language=desk.language,
            calendar=self.calendar,
            workload=self._workload(now) if sender and matched_ref is None else {},
            oversized=oversized,
            bounced=bounced,
            bounced_request=self.store.request_summary(bounced_ref) if bounced_ref else None,
            request=RequestView.from_row(row) if row else None,
            authenticated=auth.ok,
            auth_reason=auth.why,
            hours_used=self.hours_used(row["client"] if row else None, now),
        )

    def _caused_too_much(self, mail: ParsedMail | None, now: datetime) -> str | None:
        """Why no more mail may be written because of this outside sender, or None."""
        cause = mail.sender.email if mail is not None and mail.sender is not None else ""
        if not cause or self.config.directory.is_staff(cause):
            return None
        windows = self.sender_windows
        recent = self.store.caused_counts(cause, ratelimit.window_starts(now, windows))
        over = ratelimit.over_counts(recent, windows)
        return f"possible mail loop with {cause}: {over}" if over else None

    def _authenticate(self, mail: ParsedMail, sender: Sender | None, ref: str | None) -> AuthResult:
        if sender is None:
            return AuthResult(False, phrase("unknown_sender"))
        return authenticate(
            mail,
            sender=sender.email,
            desk_address=self.desk_address,
            secret=self.secret,
            trusted_authserv_ids=self.config.settings.trusted_authserv_ids,
            ref=ref,
        )

    def hours_used(self, client: str | None, now: datetime) -> float:
        """Hours logged this month (desk time) for the client, against monthly_hours."""
        if client is None:
            return 0.0
        start, end = month_bounds(now.astimezone(self.config.settings.tz))
        return self.store.hours_used(client, start, end)

    def _workload(self, now: datetime) -> dict[str, MemberLoad]:
        """Each member's open work and this week's assignments, for choosing a member.

        Counting them reads every open request, so the answer is kept until something
        assigns a member (``carry_out`` forgets it) or the week changes.
        """
        local = now.astimezone(self.config.settings.tz)
        week_start = (local - timedelta(days=local.weekday())).replace(
            hour=0, minute=0, second=0, microsecond=0
        )
        if self._loads is not None and self._loads[0] == week_start:
            return self._loads[1]
        loads = {
            member: MemberLoad.of(
                counts["estimates"],
                assigned_this_week=counts["assigned_this_week"],
                last_assigned_at=counts["last_assigned_at"],
            )
            for member, counts in self.store.member_workload(week_start).items()
        }
        self._loads = (week_start, loads)
        return loads

    def _bounced_outbox(self, mail: ParsedMail) -> dict[str, Any] | None:
        """The outbox row a bounce answers, found by the Message-ID it returns."""
        bounce = mail.bounce
        if bounce is None or not bounce.original_message_id:
            return None
        return self.store.outbox_by_message_id(bounce.original_message_id)

    def match_request(self, mail: ParsedMail, sender: Sender | None) -> str | None:
        """Thread a mail to a request the sender belongs to (DESIGN §3 order)."""
        if sender is None:
            return None
        for ref in self._candidate_refs(mail, sender):
            summary = self.store.request_summary(ref)
            if summary is not None and self._belongs(summary, sender):
                return ref
        return None

    def _belongs(self, request: dict[str, Any], sender: Sender) -> bool:
        """A ref alone never gives access: the sender must be part of the request —
        a contact of its client, its member, its director, or the client's coordinator."""
        if sender.client_id is not None:
            return bool(request["client"] == sender.client_id)
        client = self.config.directory.clients.get(request["client"])
        coordinator = client.coordinator if client else None
        return sender.person_id in (request["director"], request["assignee"], coordinator)

    def _candidate_refs(self, mail: ParsedMail, sender: Sender) -> list[str]:
        candidates: list[str] = []
        for recipient in (*mail.to, *mail.cc):
            ref = mfthreading.verify_reply_address(
                recipient.email, self.desk_address, sender.email, self.secret
            )
            if ref:
                candidates.append(ref)
        candidates += self.store.refs_for_message_ids((mail.in_reply_to, *mail.references))
        for found in (mfthreading.ref_in_subject(mail.subject), mfthreading.ref_in_text(mail.text)):
            if found:
                candidates.append(found)
        return list(dict.fromkeys(candidates))

    # -- commit -------------------------------------------------------------------------

    def _write(self, item: PendingItem, worked: Worked) -> Processed:
        """Inside a transaction of its own (a savepoint in a group): write what the
        mail's outcome says, then mark it done (which fails if another took it)."""
        inbox_id = item.inbox_id
        with self.store.transaction():
            if self._planned_on_stale(worked):
                # Another mail about the same request was written since this one was
                # worked out (a crew works on several at once): work it out again on
                # what is there now, as if they had come one after the other.
                worked = self._work_out(item)
            mail, situation, outcome = worked.mail, worked.situation, worked.outcome
            ref = self.carry_out(
                outcome,
                mail=mail,
                inbox_id=inbox_id,
                keep_files=worked.trusted,
                prepared=worked.prepared,
            )
            held = outcome.hold_reason
            state, note = ("held", held.text) if held else ("done", outcome.note)
            self.store.finish(
                inbox_id,
                state=state,
                reason=note,
                reason_phrase=held.stored() if held else "",
                classification=situation.classification.value,
                sender=str(mail.sender) if mail.sender else "",
                subject=mail.subject,
                request_ref=ref,
            )
        return Processed(inbox_id, state, ref, note)

    def carry_out(
        self,
        outcome: Outcome,
        *,
        mail: ParsedMail | None = None,
        inbox_id: int | None = None,
        keep_files: bool = False,
        prepared: Prepared | None = None,
    ) -> str | None:
        """Inside a transaction: write what an Outcome says. Mail and scheduled work
        (a synthetic event, with no mail) both come through here."""
        ref, letters = prepared or self.prepare(outcome, mail)
        if _changes_load(outcome):
            self._loads = None
        changes = dict(outcome.changes)
        if outcome.new_request is not None and ref is not None:
            self.store.create_request(outcome.new_request, ref, changes)
            changes = {}
        if ref is not None:
            if mail is not None:
                self.store.link_message(ref, "in", mail.message_id, inbox_id=inbox_id)
            for event in outcome.events:
                self.store.add_event(ref, event, inbox_id)
            for attachment in mail.attachments if mail is not None and keep_files else ():
                self.store.add_file(ref, inbox_id, attachment)
            self.store.update_request(ref, changes)
            for member, hours in outcome.hours:
                self.store.log_hours(ref, member, hours)
        for letter in letters:
            self._post(letter, inbox_id, mail)
        return ref

    def prepare(
        self, outcome: Outcome, mail: ParsedMail | None, *, refs_ahead: int = 1
    ) -> Prepared:
        """The ref (reserved for a new request) and every outgoing mail, rendered."""
        ref = outcome.request_ref
        if outcome.new_request is not None:
            ref = self.store.reserve_ref(mfthreading.format_ref, ahead=refs_ahead)
        return ref, [self._letter(notice, ref, mail) for notice in outcome.notices]

    def delivery_failed(self, row: OutboxRow, error: str) -> None:
        """The relay refused a mail for good: its request's director is told."""
        outbox = self.store.outbox_by_message_id(row.message_id)
        if outbox is None:
            return
        request = self.store.request_summary(row.request_ref) if row.request_ref else None
        status = error.split(" ", 1)[0] if error[:1].isdigit() else ""
        outcome = delivery_failed(
            self.config.directory,
            outbox,
            request,
            recipients=row.recipients,
            status=status,
            diagnostic=error,
            permanent=True,
        )
        with self.store.transaction():
            self.carry_out(outcome)

    def _suppression(self, notice: Notice, mail: ParsedMail | None) -> str | None:
        """Why an automatic notice must not go out, or None (DESIGN §2: no loops).

        Some kinds go to one address once a day at most. All mail one outside sender
        causes (to staff too) is capped by ``sender_mail_limits``: a robot hiding behind
        a client's address must not flood the director — its requests are still opened,
        only the mail about them is held back. The per-recipient windows apply to
        answers to the mail in hand, never to staff: a director with forty client mails
        at 9:00 gets forty notices.
        """
        recipient = notice.to[0].email
        if not notice.automatic:
            return None
        now = self.clock()
        interval = ratelimit.ONCE_PER.get(notice.kind)
        if interval and self.store.sent_kind_to(notice.kind, recipient, now - interval):
            return f"{notice.kind} already sent to {recipient} within {interval}"
        flood = self._caused_too_much(mail, now)
        if flood:
            return flood
        answering = (
            mail is not None and mail.sender is not None and mail.sender.email == recipient.lower()
        )
        if not answering or self.config.directory.is_staff(recipient):
            return None
        windows = self.rate_windows
        recent = self.store.automatic_mail_counts(recipient, ratelimit.window_starts(now, windows))
        return ratelimit.over_counts(recent, windows)

    def _stored(self, file: FileRef, mail: ParsedMail | None) -> Attachment:
        """A file made attachable: from the mail in hand (a delivery is reviewed in the
        same breath as it arrives), else from the file store, by sha256."""
        for attachment in mail.attachments if mail is not None else ():
            if attachment.sha256 == file.sha256:
                return attachment
        return Attachment(
            filename=file.filename,
            safe_name=safe_name(file.filename),
            content_type=file.content_type,
            payload=self.store.files.get(file.sha256),
        )

    def _letter(self, notice: Notice, ref: str | None, mail: ParsedMail | None) -> Letter:
        """Render and compose one outgoing mail; its Message-ID is fixed here."""
        desk = self.config.settings.desk
        rendered = self.renderer.render(
            notice, ref=ref, desk_name=desk.name, desk_address=desk.address
        )
        message_id = mfthreading.make_message_id(_message_token(), desk.domain)
        recipient = notice.to[0].email
        reply_to = (
            mfthreading.reply_address(desk.address, ref, recipient, self.secret)
            if ref
            else desk.address
        )
        replying_to = (mail.message_id or None) if mail is not None else None
        references = (*mail.references, mail.message_id) if mail is not None else ()
        attachments = notice.attachments + tuple(self._stored(f, mail) for f in notice.files)
        raw = compose(
            rendered,
            sender=Address(desk.address, desk.name),
            to=notice.to,
            cc=notice.cc,
            reply_to=reply_to,
            message_id=message_id,
            date=self.clock(),
            in_reply_to=replying_to,
            references=tuple(r for r in references if r),
            automatic=notice.automatic,
            attachments=attachments,
        )
        draft = OutboxDraft(
            kind=notice.kind,
            request_ref=ref,
            recipients=tuple(a.email for a in notice.to),
            cc=tuple(a.email for a in notice.cc),
            subject=rendered.subject,
            body_text=rendered.text,
            reply_to=reply_to,
            message_id=message_id,
            raw=raw,
            attachments=tuple(a.filename for a in attachments),
            inbox_id=None,
            automatic=notice.automatic,
        )
        return notice, draft

    def _post(self, letter: Letter, inbox_id: int | None, mail: ParsedMail | None) -> None:
        """Store one prepared mail in the outbox, unless the limits hold it back."""
        notice, draft = letter
        suppressed = self._suppression(notice, mail)
        if suppressed:
            log.info("suppressed %s to %s: %s", notice.kind, notice.to[0].email, suppressed)
            self.store.suppress(
                notice.to[0].email, notice.kind, suppressed, draft.request_ref, inbox_id
            )
            return
        cause = mail.sender.email if mail is not None and mail.sender is not None else ""
        if self.config.directory.is_staff(cause):
            cause = ""
        self.store.add_outbox(replace(draft, inbox_id=inbox_id, cause=cause))


class Crew:
    """Worker processes that process accepted mail while the process that made them
    goes on accepting more (``with desk.crew(n) as crew: crew.feeding(accept)(batch)``).

    Accepting is I/O (reading files or IMAP, fsync); processing is CPU. With the two
    overlapping, `ingest` and `run --once` take about as long as the slower of the two
    instead of their sum. The parent hands out accepted mail in small groups through a
    queue, so a worker that drew the large mails does not leave the other idle at the end.
    Exactly-once still rests on each mail's conditional claim: a worker that dies
    leaves its mail accepted, and the parent takes it on leaving.

    Only a process without other threads may fork, so the crew is formed before any
    (the IMAP drain's threads come after). Without workers (PostgreSQL, which scales
    out by daemons instead, or a fork that would be unsafe) the parent processes
    everything on leaving.
    """

    def __init__(self, desk: Desk, workers: int, stop: threading.Event) -> None:
        self.desk = desk
        self.workers = workers
        self.stop = stop
        self.processed: list[Processed] = []
        self._context = multiprocessing.get_context("fork")
        self._queue: Any = None
        self._children: list[tuple[Any, Any]] = []

    def __enter__(self) -> Crew:
        store = self.desk.store
        if not store.is_sqlite:
            return self
        backlog = store.pending(limit=None)
        self.desk.end_file_thread()
        if not store.ready_to_fork():
            log.warning("a database connection is still open: processing in this process")
            return self
        store.share_between_processes()
        self._queue = self._context.Queue()
        for _ in range(self.workers):
            receiver, sender = self._context.Pipe(duplex=False)
            child = self._context.Process(target=self._work, args=(sender,), daemon=True)
            child.start()
            sender.close()
            self._children.append((child, receiver))
        # After the fork: the queue's feeder thread must exist in the parent only.
        self._hand_out(backlog)
        return self

    def _hand_out(self, items: Sequence[PendingItem]) -> None:
        # A group at a time: each put wakes the queue's feeder thread and writes the pipe.
        for start in range(0, len(items), GROUP):
            self._queue.put(items[start : start + GROUP])

    def _feed(self, accepted: Iterable[Accepted]) -> None:
        """Hand newly accepted mail to the workers (thread-safe)."""
        if self._queue is not None:
            self._hand_out([item.pending for item in accepted if item.pending is not None])

    def feeding(self, accept: AcceptMany) -> AcceptMany:
        """``accept`` that also hands what it accepted to the workers."""

        def accept_and_feed(messages: Sequence[tuple[bytes, str, str]]) -> list[Accepted]:
            accepted = accept(messages)
            self._feed(accepted)
            return accepted

        return accept_and_feed

    def all_accepted(self) -> None:
        """Nothing more is coming: each worker ends once the queue is empty."""
        if self._queue is not None:
            for _ in self._children:
                self._queue.put(None)
            self._queue.close()
            self._queue = None

    def working(self, timeout: float) -> bool:
        """Wait up to ``timeout`` for reports; whether any worker has yet to report.

        Meanwhile the parent checkpoints the SQLite log, which the workers leave alone:
        a checkpoint's fsyncs inside a worker's commit would hold up the write turn.
        """
        waiting = [receiver for _, receiver in self._children]
        if not waiting:
            return False  # (waiting on nothing would still sleep the whole timeout)
        for receiver in multiprocessing.connection.wait(waiting, timeout):
            self._collect(receiver)
        if self._children:
            self.desk.store.checkpoint()
        return bool(self._children)

    def __exit__(self, failure: type[BaseException] | None, *exc_info: object) -> None:
        self.all_accepted()
        while self.working(CHECKPOINT_EVERY):
            pass
        self.desk.store.stop_sharing()
        if failure is None:
            # Whatever a dead worker left accepted is still there: take it now. (After
            # an error or Ctrl-C it waits for the next run instead.)
            self.processed += self.desk.process_pending(stop=self.stop)

    def _collect(self, receiver: Any) -> None:
        """Take one worker's report (read before joining: a large one fills the pipe)."""
        child = next(child for child, r in self._children if r is receiver)
        try:
            self.processed += receiver.recv()
        except EOFError:
            log.error("worker %s ended without a report", child.pid)
        child.join()
        receiver.close()
        self._children = [(c, r) for c, r in self._children if r is not receiver]

    def _work(self, report: Any) -> None:
        store = self.desk.store
        store.leave_checkpoints_to_others()
        if self._queue.empty():
            # Nothing to do yet (an IMAP drain is still logging in): build now what the
            # first mails would otherwise build while they wait.
            self.desk.warm_up()
        done: list[Processed] = []
        try:
            for group in self._handed_out():
                done += self.desk.process_group(group)
            report.send(done)
        finally:
            report.close()
            store.close()

    def _handed_out(self) -> Iterator[list[PendingItem]]:
        """Groups of accepted mail from the queue (one commit each), until the parent
        says it is done or is gone (killed mid-accept: then the mail it accepted waits
        for the next run)."""
        parent = os.getppid()
        while not self.stop.is_set():
            try:
                group = self._queue.get(timeout=ORPHAN_CHECK)
            except queue.Empty:
                if os.getppid() != parent:
                    return
                continue
            if group is None:
                return
            yield group


def _message_token() -> str:
    """32 unique hex digits for a Message-ID, milliseconds first: the indexes on
    Message-IDs then grow at their end, where a random key would dirty another index
    page for every mail written."""
    return f"{time.time_ns() // 1_000_000:012x}{token_hex(10)}"


def _windows(limits: tuple[tuple[int, int], ...]) -> tuple[ratelimit.Window, ...]:
    return tuple(ratelimit.Window(count, timedelta(seconds=span)) for count, span in limits)


def _changes_load(outcome: Outcome) -> bool:
    """Whether an outcome changes who works on what (then member loads are recounted)."""
    return (
        "assignee" in outcome.changes
        or "state" in outcome.changes
        or (outcome.new_request is not None and outcome.new_request.assignee is not None)
        or any(event.kind == "assigned" for event in outcome.events)
    )


def header_block(raw: bytes) -> bytes:
    """The header section of a raw message, with an empty body."""
    for separator in (b"\r\n\r\n", b"\n\n"):
        end = raw.find(separator)
        if end != -1:
            return raw[: end + len(separator)]
    return raw
