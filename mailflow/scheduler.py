"""Scheduled work: reminders, overdue notices, estimate nudges and daily digests.

It enters the pipeline at the plan step as synthetic events (DESIGN §2): ``schedule.py``
and ``digest.py`` (pure) decide what is due; this runs it through the desk's commit and
send path, recording each item's key with its effects so nothing runs twice.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from mailflow import digest
from mailflow.model import Outcome
from mailflow.pipeline import Desk
from mailflow.render import Rendered
from mailflow.schedule import Scheduled, plan_tick
from mailflow.situation import RequestView

log = logging.getLogger("mailflow")


class Scheduler:
    """What is due at a moment, carried out through a Desk."""

    def __init__(self, desk: Desk) -> None:
        self.desk = desk

    def tick(self, now: datetime | None = None) -> list[str]:
        """Run what is due at ``now``: reminders, overdue notices, estimate nudges,
        digests. Each item's key is recorded in the same transaction as its effects, so
        a repeated tick, a restart or a second daemon does nothing twice."""
        now = now or self.desk.clock()
        ran = []
        for item in self._due_work(now):
            with self.desk.store.transaction():
                if not self.desk.store.claim_scheduled(item.key):
                    continue
                self.desk.carry_out(
                    Outcome(
                        request_ref=item.ref,
                        events=(item.event,) if item.event else (),
                        notices=(item.notice,) if item.notice else (),
                    )
                )
            ran.append(item.key)
        if ran:
            log.info("scheduled work: %s", ", ".join(ran))
        return ran

    def _due_work(self, now: datetime) -> list[Scheduled]:
        settings, directory = self.desk.config.settings, self.desk.config.directory
        views = [RequestView.from_row(row) for row in self.desk.store.open_request_rows()]
        return plan_tick(
            now,
            views,
            directory,
            self.desk.config.rules,
            settings.tz,
            self.desk.calendar,
            digest_time=settings.digest_time,
            done=self.desk.store.scheduled_keys(now - timedelta(days=3)),
            held=self.desk.store.list_quarantine(),
            hours_used=self.month_hours(now),
            state_since=self.desk.store.state_since(v.ref for v in views if v.ref),
        )

    def month_hours(self, now: datetime) -> dict[str, float]:
        """Hours used this month by every client with contracted monthly hours."""
        return {
            client.id: self.desk.hours_used(client.id, now)
            for client in self.desk.config.directory.clients.values()
            if client.monthly_hours
        }

    def digest_preview(self, email: str, now: datetime | None = None) -> Rendered | None:
        """The digest ``email`` would get now, rendered; None when they get none."""
        now = now or self.desk.clock()
        directory, settings = self.desk.config.directory, self.desk.config.settings
        found = digest.preview(email, directory)
        if found is None:
            return None
        role, person_id = found
        views = [RequestView.from_row(row) for row in self.desk.store.open_request_rows()]
        context = digest.digest_for(
            role,
            person_id,
            now,
            views,
            directory,
            settings.tz,
            held=self.desk.store.list_quarantine(),
            hours_used=self.month_hours(now),
            calendar=self.desk.calendar,
        )
        if context is None:
            return None
        notice = digest.digest_notice(
            role, person_id, context, directory, address=email if role == "client" else None
        )
        if notice is None:
            return None
        desk = settings.desk
        return self.desk.renderer.render(
            notice, ref=None, desk_name=desk.name, desk_address=desk.address
        )
