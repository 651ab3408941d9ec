"""SMTP and LMTP intake: the only aiosmtpd module.

Answers 250 only after the message is committed to the store; 451 when the store cannot
take it (the sending MTA retries); 552 above the size limit. LMTP answers once per
recipient, as RFC 2033 asks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, Envelope, Session

from mailflow.store import Accepted

log = logging.getLogger("mailflow.smtp")

Accept = Callable[[bytes, str, str], Accepted]


class IntakeHandler:
    """aiosmtpd handler: accept (commit) first, then answer."""

    def __init__(self, accept: Accept, on_accepted: Callable[[], None], protocol: str) -> None:
        self.accept = accept
        self.on_accepted = on_accepted
        self.protocol = protocol

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        peer = session.peer[0] if isinstance(session.peer, tuple) else str(session.peer)
        try:
            accepted = self.accept(raw, self.protocol, f"{peer} {envelope.mail_from}")
        except Exception as exc:  # noqa: BLE001 - whatever broke, the sender must retry
            log.error("cannot accept mail from %s: %s", peer, exc)
            return self._status("451 4.3.0 Mail store unavailable, try again later", envelope)
        log.info(
            "%s accepted inbox %s%s",
            self.protocol,
            accepted.inbox_id,
            " (duplicate)" if accepted.duplicate else "",
        )
        self.on_accepted()
        return self._status("250 2.0.0 Message accepted", envelope)

    async def handle_exception(self, error: Exception) -> str:
        # aiosmtpd answers 500 by default, which makes the sender bounce a mail we merely
        # failed to store: ask it to retry instead.
        log.exception("SMTP session error: %s", error)
        return "451 4.3.0 Temporary failure, try again later"

    def _status(self, line: str, envelope: Envelope) -> str:
        if self.protocol != "lmtp":
            return line
        return "\r\n".join(line for _ in envelope.rcpt_tos) or line


class _LmtpController(Controller):
    def factory(self) -> LMTP:
        return LMTP(self.handler, **self.SMTP_kwargs)


def start_listener(
    host: str,
    port: int,
    *,
    accept: Accept,
    on_accepted: Callable[[], None],
    max_bytes: int,
    lmtp: bool = False,
) -> Controller:
    """Start an SMTP (or LMTP) listener in its own thread; ``stop()`` it when done."""
    protocol = "lmtp" if lmtp else "smtp"
    handler = IntakeHandler(accept, on_accepted, protocol)
    kwargs: dict[str, Any] = {"data_size_limit": max_bytes, "enable_SMTPUTF8": True}
    controller_class = _LmtpController if lmtp else Controller
    controller = controller_class(handler, hostname=host, port=port, **kwargs)
    controller.start()
    log.info("%s listening on %s:%s", protocol.upper(), host, port)
    return controller
