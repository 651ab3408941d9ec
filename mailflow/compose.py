"""Rendered parts + threading headers → the bytes of one outgoing email.

The message is built with ``email.policy.SMTP`` (CRLF line ends) restricted to 7-bit
transfer: Japanese text parts go out as UTF-8 in base64 or quoted-printable, display names
and subjects as RFC 2047 encoded words, file names as RFC 2231 parameters. Nothing here
needs the relay to support 8BITMIME or SMTPUTF8.

Header values never carry CR or LF: every value is collapsed to one line first, so text that
came from a client (a subject, a file name) cannot add headers of its own.
"""

from __future__ import annotations

import email.policy
import re
from collections.abc import Iterable
from datetime import datetime
from email.headerregistry import Address as HeaderAddress
from email.message import EmailMessage
from email.utils import format_datetime

from mailflow.model import Address, Attachment
from mailflow.render import Rendered, one_line

__all__ = ["LOOP_HEADER", "POLICY", "compose"]

POLICY = email.policy.SMTP.clone(cte_type="7bit")
LOOP_HEADER = "X-Mailflow-Loop"

# Types the email package will not carry as a plain base64 leaf.
_OPAQUE_MAINTYPES = frozenset({"multipart", "message"})
_MIME_TYPE_RE = re.compile(r"([a-z0-9][a-z0-9!#$&^_.+-]*)/([a-z0-9][a-z0-9!#$&^_.+-]*)")


def compose(
    rendered: Rendered,
    *,
    sender: Address,
    to: tuple[Address, ...],
    cc: tuple[Address, ...],
    reply_to: str,
    message_id: str,
    date: datetime,
    in_reply_to: str | None,
    references: tuple[str, ...],
    automatic: bool,
    attachments: tuple[Attachment, ...] = (),
) -> bytes:
    """The RFC 5322 bytes (CRLF) of one outgoing email.

    ``date`` must be timezone-aware. ``automatic`` marks the mail as machine-written
    (``Auto-Submitted``) so auto-responders leave it alone.
    """
    if date.tzinfo is None:
        raise ValueError("compose() needs a timezone-aware date")
    message = EmailMessage(policy=POLICY)
    _set_addresses(message, sender=sender, to=to, cc=cc, reply_to=reply_to)
    message["Subject"] = one_line(rendered.subject)
    message["Date"] = format_datetime(date)
    message["Message-ID"] = one_line(message_id)
    _set_threading(message, in_reply_to, references)
    _set_automation(message, sender, automatic)
    _set_body(message, rendered)
    for attachment in attachments:
        _attach(message, attachment)
    _drop_inner_mime_version(message)
    return message.as_bytes()


def _set_addresses(
    message: EmailMessage,
    *,
    sender: Address,
    to: Iterable[Address],
    cc: Iterable[Address],
    reply_to: str,
) -> None:
    message["From"] = _header_address(sender)
    message["To"] = [_header_address(a) for a in to]
    cc_list = [_header_address(a) for a in cc]
    if cc_list:
        message["Cc"] = cc_list
    if reply_to.strip():
        message["Reply-To"] = one_line(reply_to)


def _header_address(address: Address) -> HeaderAddress:
    bare = "".join(address.email.split())
    return HeaderAddress(display_name=one_line(address.name), addr_spec=bare)


def _set_threading(
    message: EmailMessage, in_reply_to: str | None, references: tuple[str, ...]
) -> None:
    if in_reply_to and in_reply_to.strip():
        message["In-Reply-To"] = one_line(in_reply_to)
    ids = [one_line(mid) for mid in references if mid.strip()]
    if ids:
        message["References"] = " ".join(ids)


def _set_automation(message: EmailMessage, sender: Address, automatic: bool) -> None:
    if automatic:
        # RFC 3834, and the header Exchange/Outlook honour to suppress out-of-office replies.
        message["Auto-Submitted"] = "auto-generated"
        message["X-Auto-Response-Suppress"] = "All"
    domain = sender.email.rpartition("@")[2].strip().lower()
    if domain:
        # Lets classify.py recognise our own mail when a forward or a loop brings it back.
        message[LOOP_HEADER] = one_line(domain)


def _set_body(message: EmailMessage, rendered: Rendered) -> None:
    message.set_content(rendered.text, subtype="plain", charset="utf-8")
    if rendered.html is not None:
        message.add_alternative(rendered.html, subtype="html", charset="utf-8")


def _attach(message: EmailMessage, attachment: Attachment) -> None:
    maintype, subtype = _content_type(attachment.content_type)
    filename = _filename(attachment)
    message.add_attachment(
        attachment.payload,
        maintype=maintype,
        subtype=subtype,
        filename=filename,
        disposition="inline" if attachment.inline else "attachment",
        cid=_content_id(attachment.content_id),
    )


def _drop_inner_mime_version(message: EmailMessage) -> None:
    # add_alternative/add_attachment leave a MIME-Version in every part; only the top needs it.
    for part in message.walk():
        if part is not message:
            del part["MIME-Version"]


def _content_type(content_type: str) -> tuple[str, str]:
    bare = content_type.split(";")[0].strip().lower()
    match = _MIME_TYPE_RE.fullmatch(bare)
    if match is None or match.group(1) in _OPAQUE_MAINTYPES:
        return "application", "octet-stream"
    return match.group(1), match.group(2)


def _filename(attachment: Attachment) -> str:
    name = one_line("".join(ch for ch in attachment.filename if ch.isprintable() or ch.isspace()))
    return name or attachment.safe_name or "attachment"


def _content_id(content_id: str) -> str | None:
    bare = "".join(content_id.split()).strip("<>")
    return f"<{bare}>" if bare else None
