"""Pipeline step 4 (pure): is this mail from a person, an autoresponder, a bounce, or us?

Only human mail may open or move a request. Everything automatic is recognised from
headers first (RFC 3834, RFC 3464, Exchange and list headers) and from subjects last,
because subjects are the least reliable signal. Mailing-list mail (List-Id) is its own
class: a person wrote it, but nobody wrote it to the desk, so it is never answered.
"""

from __future__ import annotations

import re

from mailflow.model import Classification, ParsedMail
from mailflow.threading import is_our_message_id

_DAEMONS = ("mailer-daemon", "postmaster", "mail-daemon", "mailerdaemon")
_DAEMON_NAMES = ("mail delivery system", "mail delivery subsystem", "mail administrator")
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|delivery status notification|delivery (failure|has failed)|returned mail|"
    r"failure notice|mail delivery failed|配信不能|配信エラー|配送エラー|送信エラー|"
    r"宛先不明|未配達|mail system error",
    re.IGNORECASE,
)
_AUTO_SUBJECT = re.compile(
    r"^\s*(auto(matic)?[\s_-]*(reply|response|antwort)?\s*[:：]|automatic reply|autoreply|"
    r"auto-reply|out of (the )?office|abwesenheitsnotiz|"
    r"[【\[（(]?\s*(自動応答|自動返信|自動送信|不在(通知|のお知らせ|連絡|中|[:：】\])）\s]|$)))",
    re.IGNORECASE,
)
_PRECEDENCE = frozenset({"bulk", "junk", "auto_reply", "auto-reply"})
_SUPPRESS = re.compile(r"\b(all|oof|autoreply)\b", re.IGNORECASE)


def classify(
    mail: ParsedMail, *, desk_domain: str, desk_address: str | None = None
) -> tuple[Classification, str]:
    """The classification of ``mail`` and a short reason a person can read.

    Order matters: our own mail first (loops), then bounces, autoresponders and list
    mail. ``desk_address`` (optional) also marks mail *from* the desk itself as a loop.
    """
    loop = _loop_reason(mail, desk_domain, desk_address)
    if loop:
        return Classification.LOOP, loop
    headers = _topmost(mail)
    bounce = _bounce_reason(mail, headers)
    if bounce:
        return Classification.BOUNCE, bounce
    auto = _autoresponse_reason(mail, headers)
    if auto:
        return Classification.AUTO_REPLY, auto
    listed = _list_reason(headers)
    if listed:
        return Classification.LIST, listed
    bulk = _bulk_reason(headers)
    if bulk:
        return Classification.AUTO_REPLY, bulk
    return Classification.HUMAN, "no automatic-mail signals"


def is_automatic(mail: ParsedMail) -> bool:
    """True for bounces, autoresponders and list mail: never answer these (RFC 3834 §2)."""
    return bool(bounce_reason(mail) or auto_reply_reason(mail))


def _topmost(mail: ParsedMail) -> dict[str, str]:
    """Each header's topmost value (what ``mail.header`` returns), read in one pass."""
    # Built from the bottom up (in C), so the topmost value of each name is the one kept.
    return dict(reversed(mail.headers))


def _loop_reason(mail: ParsedMail, desk_domain: str, desk_address: str | None) -> str:
    for name, _value in mail.headers:
        if name.startswith("x-mailflow-"):
            return f"carries our control header {name}"
    # Only ids we made ("<mf.…@desk domain>"): staff mail from the desk's own domain
    # carries ids on that domain too, and must not look like a loop.
    domain = desk_domain.strip().lower().lstrip("@")
    if domain and is_our_message_id(mail.message_id, domain):
        return f"Message-ID {mail.message_id} is one of ours"
    desk = (desk_address or "").strip().strip("<>").lower()
    if desk and mail.sender is not None and _same_mailbox(mail.sender.email, desk):
        return f"sent from the desk address {mail.sender.email}"
    return ""


def _same_mailbox(email: str, desk: str) -> bool:
    """``desk@x`` and ``desk+MF-1.tag@x`` are both the desk (its signed reply addresses)."""
    local, _, domain = email.lower().partition("@")
    desk_local, _, desk_domain = desk.partition("@")
    return domain == desk_domain and local.split("+", 1)[0] == desk_local


def bounce_reason(mail: ParsedMail) -> str:
    """Why ``mail`` is a delivery status notification ("" if it is not)."""
    return _bounce_reason(mail, _topmost(mail))


def _bounce_reason(mail: ParsedMail, headers: dict[str, str]) -> str:
    ctype = (headers.get("content-type") or "").lower()
    kind = "multipart/report delivery-status" if "delivery-status" in ctype else ""
    if mail.bounce is not None:
        where = ", ".join(mail.bounce.recipients[:3])
        status = mail.bounce.status or "no status"
        return f"{kind or 'delivery failure report'} for {where} ({status})"
    if "multipart/report" in ctype and kind:
        return kind
    sender = mail.sender
    if sender:
        local = sender.email.split("@", 1)[0]
        if local in _DAEMONS or sender.name.lower() in _DAEMON_NAMES:
            return f"sent by {sender.email}"
    raw_from = (headers.get("from") or "").lower()
    if sender is None and any(daemon in raw_from for daemon in _DAEMONS):
        return f"sent by {raw_from[:60]}"  # e.g. "MAILER-DAEMON <>", which has no address
    return_path = (headers.get("return-path") or "").strip()
    if return_path in ("<>", "") and "return-path" in headers:
        if _BOUNCE_SUBJECT.search(mail.subject):
            return "empty Return-Path and a delivery-failure subject"
    return ""


def auto_reply_reason(mail: ParsedMail) -> str:
    """Why ``mail`` is an autoresponse, list or bulk mail ("" if it is not)."""
    headers = _topmost(mail)
    return _autoresponse_reason(mail, headers) or _list_reason(headers) or _bulk_reason(headers)


def list_reason(mail: ParsedMail) -> str:
    """Why ``mail`` comes from a mailing list ("" if it does not)."""
    return _list_reason(_topmost(mail))


def _list_reason(headers: dict[str, str]) -> str:
    for name in ("list-id", "list-unsubscribe"):
        if name in headers:
            return f"mailing-list mail ({name})"
    if (headers.get("precedence") or "").strip().lower() == "list":
        return "Precedence: list"
    return ""


def _autoresponse_reason(mail: ParsedMail, headers: dict[str, str]) -> str:
    """Signals that a program answered: these win over list headers."""
    auto_submitted = (headers.get("auto-submitted") or "").strip().lower()
    if auto_submitted and not auto_submitted.startswith("no"):
        return f"Auto-Submitted: {auto_submitted}"
    for name in ("x-autoreply", "x-autorespond", "x-autoresponder", "x-autogenerated"):
        if name in headers:
            return f"{name} header"
    ctype = (headers.get("content-type") or "").lower()
    if "multipart/report" in ctype:
        return "multipart/report (receipt or feedback report)"
    if _AUTO_SUBJECT.search(mail.subject):
        return f"autoresponder subject {mail.subject[:40]!r}"
    return ""


def _bulk_reason(headers: dict[str, str]) -> str:
    """Weaker signals of mail nobody wants answered (lists often set these too)."""
    precedence = (headers.get("precedence") or "").strip().lower()
    if precedence in _PRECEDENCE:
        return f"Precedence: {precedence}"
    suppress = headers.get("x-auto-response-suppress") or ""
    if _SUPPRESS.search(suppress):
        return f"X-Auto-Response-Suppress: {suppress}"
    return ""
