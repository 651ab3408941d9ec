"""One path for every mail: claim → parse → classify → identify → plan → commit.

``Desk`` holds what is built once (configuration, renderer, store, secret) and runs the
pure steps, then carries out their Outcome in one transaction. A message that raises is
quarantined with its reason; the others go on.
"""

from __future__ import annotations

import logging
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from mailflow import threading as mfthreading
from mailflow.classify import classify
from mailflow.compose import compose
from mailflow.instance import Config
from mailflow.model import Address, Notice, Outcome, ParsedMail, Sender
from mailflow.parse import parse_mail
from mailflow.render import Renderer
from mailflow.store import AlreadyProcessed, OutboxDraft, PendingItem, Store, utcnow
from mailflow.workflow import Situation, plan

log = logging.getLogger("mailflow")

Clock = Callable[[], datetime]


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

    @property
    def desk_address(self) -> str:
        return self.config.settings.desk.address

    # -- the loop body ------------------------------------------------------------------

    def process_pending(self, limit: int = 500) -> list[Processed]:
        """Process accepted mail until none is left (or ``limit`` per round)."""
        done: list[Processed] = []
        while True:
            batch = self.store.pending(limit)
            if not batch:
                return done
            for item in batch:
                result = self.process(item)
                if result is not None:
                    done.append(result)

    def process(self, item: PendingItem) -> Processed | None:
        started = time.perf_counter()
        try:
            result = self._process(item)
        except AlreadyProcessed:
            return None
        except Exception as exc:  # noqa: BLE001 - one bad mail never stops the others
            reason = f"{type(exc).__name__}: {exc}"
            log.error(
                "inbox %s quarantined: %s\n%s", item.inbox_id, reason, traceback.format_exc(limit=6)
            )
            self.store.quarantine(item.inbox_id, reason)
            return Processed(item.inbox_id, "quarantined", None, reason)
        log.info(
            "inbox %s → %s %s (%s) %.0f ms",
            item.inbox_id,
            result.state,
            result.ref or "-",
            result.note,
            (time.perf_counter() - started) * 1000,
        )
        return result

    def _process(self, item: PendingItem) -> Processed:
        mail = parse_mail(self.store.raw.get(item.sha256))
        situation = self.situate(mail)
        outcome = plan(situation)
        return self.commit(item.inbox_id, mail, situation, outcome)

    # -- pure steps, also used by `mailflow explain` --------------------------------------

    def situate(self, mail: ParsedMail) -> Situation:
        classification, why = classify(mail, desk_domain=self.config.settings.desk.domain)
        directory = self.config.directory
        sender = directory.identify(mail.sender.email) if mail.sender else None
        return Situation(
            mail=mail,
            classification=classification,
            classification_reason=why,
            sender=sender,
            matched_ref=self.match_request(mail, sender),
            directory=directory,
            now=self.clock(),
        )

    def match_request(self, mail: ParsedMail, sender: Sender | None) -> str | None:
        """Thread a mail to a request the sender belongs to (DESIGN §3 order)."""
        if sender is None:
            return None
        for ref in self._candidate_refs(mail, sender):
            summary = self.store.request_summary(ref)
            if summary is not None and _belongs(summary, sender):
                return ref
        return None

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

    def commit(
        self, inbox_id: int, mail: ParsedMail, situation: Situation, outcome: Outcome
    ) -> Processed:
        sender_text = str(mail.sender) if mail.sender else ""
        with self.store.transaction():
            self.store.claim(inbox_id)
            ref = outcome.request_ref
            if outcome.new_request is not None:
                ref = self.store.create_request(
                    outcome.new_request, inbox_id, mfthreading.format_ref
                )
            if ref is not None:
                self._record_mail(ref, inbox_id, mail, outcome)
            for notice in outcome.notices:
                self._queue(notice, ref, inbox_id, mail)
            state = "held" if outcome.hold_reason else "done"
            note = outcome.hold_reason or outcome.note
            self.store.finish(
                inbox_id,
                state=state,
                reason=note,
                classification=situation.classification.value,
                sender=sender_text,
                subject=mail.subject,
                request_ref=ref,
            )
        return Processed(inbox_id, state, ref, note)

    def _record_mail(self, ref: str, inbox_id: int, mail: ParsedMail, outcome: Outcome) -> None:
        self.store.link_message(ref, "in", mail.message_id, inbox_id=inbox_id)
        for event in outcome.events:
            self.store.add_event(ref, event, inbox_id)
        for attachment in mail.attachments:
            self.store.add_file(ref, inbox_id, attachment)

    def _queue(self, notice: Notice, ref: str | None, inbox_id: int, mail: ParsedMail) -> None:
        """Render, compose and store one outgoing mail; its Message-ID is fixed here."""
        desk = self.config.settings.desk
        rendered = self.renderer.render(
            notice, ref=ref, desk_name=desk.name, desk_address=desk.address
        )
        message_id = mfthreading.make_message_id(uuid.uuid4().hex, desk.domain)
        recipient = notice.to[0].email
        reply_to = (
            mfthreading.reply_address(desk.address, ref, recipient, self.secret)
            if ref
            else desk.address
        )
        replying_to = mail.message_id or None
        raw = compose(
            rendered,
            sender=Address(desk.address, desk.name),
            to=notice.to,
            cc=notice.cc,
            reply_to=reply_to,
            message_id=message_id,
            date=self.clock(),
            in_reply_to=replying_to,
            references=tuple(r for r in (*mail.references, mail.message_id) if r),
            automatic=notice.automatic,
            attachments=notice.attachments,
        )
        self.store.add_outbox(
            OutboxDraft(
                kind=notice.kind,
                request_ref=ref,
                recipients=tuple(a.email for a in notice.to),
                cc=tuple(a.email for a in notice.cc),
                subject=rendered.subject,
                body_text=rendered.text,
                reply_to=reply_to,
                message_id=message_id,
                raw=raw,
                attachments=tuple(a.filename for a in notice.attachments),
                inbox_id=inbox_id,
            )
        )


def _belongs(request: dict[str, object], sender: Sender) -> bool:
    """A ref alone never gives access: the sender must be part of the request."""
    if sender.client_id is not None:
        return request["client"] == sender.client_id
    return sender.person_id in (request["director"], request["assignee"])
