"""Who really sent a mail (DESIGN §3): signed reply addresses and Authentication-Results.

Pure. A sender is authenticated when the mail went to a reply address we signed for that
very sender, or when the *topmost* Authentication-Results header — the one our own MX
added, from an authserv-id listed in ``[security] trusted_authserv_ids`` — says DMARC
passed for the From domain (``header.from``), or DKIM passed for it. Headers further
down were written by others and prove nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from mailflow.model import ParsedMail
from mailflow.phrases import Phrase, phrase
from mailflow.threading import verify_reply_address

_COMMENT = re.compile(r"\([^()]*\)")


@dataclass(frozen=True)
class AuthResult:
    ok: bool
    why: Phrase  # the English of ``why.text`` is what events and ``explain`` record


def authenticate(
    mail: ParsedMail,
    *,
    sender: str,
    desk_address: str,
    secret: bytes,
    trusted_authserv_ids: Iterable[str],
    ref: str | None = None,
) -> AuthResult:
    signed = _signed_for(mail, sender, desk_address, secret, ref)
    if signed:
        return AuthResult(True, phrase("signed_reply", sender=sender, ref=signed))
    return _authentication_results(mail, sender, {i.lower() for i in trusted_authserv_ids})


def _signed_for(
    mail: ParsedMail, sender: str, desk_address: str, secret: bytes, ref: str | None
) -> str | None:
    for recipient in (*mail.to, *mail.cc):
        found = verify_reply_address(recipient.email, desk_address, sender, secret)
        if found and (ref is None or found == ref):
            return found
    return None


def _authentication_results(mail: ParsedMail, sender: str, trusted: set[str]) -> AuthResult:
    headers = mail.header_all("authentication-results")
    if not headers:
        return AuthResult(False, phrase("no_proof"))
    authserv_id, results = parse_authentication_results(headers[0])
    if authserv_id not in trusted:
        return AuthResult(False, phrase("untrusted_authserv", authserv_id=authserv_id))
    domain = sender.rpartition("@")[2].lower()
    for method, result, properties in results:
        # DMARC vouches for the domain it evaluated: a pass for another From (a second
        # From header, a look-alike domain) says nothing about this sender.
        if method == "dmarc" and result == "pass" and _dmarc_for(properties, domain):
            return AuthResult(True, phrase("dmarc_pass", authserv_id=authserv_id))
        if method == "dkim" and result == "pass" and _aligned(properties, domain):
            return AuthResult(True, phrase("dkim_pass", domain=domain, authserv_id=authserv_id))
    return AuthResult(False, phrase("no_pass", authserv_id=authserv_id))


def _dmarc_for(properties: dict[str, str], domain: str) -> bool:
    return properties.get("header.from", "").strip().lower() == domain


def _aligned(properties: dict[str, str], domain: str) -> bool:
    signer = properties.get("header.d") or properties.get("header.i", "").rpartition("@")[2]
    signer = signer.lower()
    return bool(signer) and (domain == signer or domain.endswith("." + signer))


def parse_authentication_results(
    value: str,
) -> tuple[str, list[tuple[str, str, dict[str, str]]]]:
    """RFC 8601: ``authserv-id [version]; method=result prop=value; …``."""
    parts = [part.strip() for part in _COMMENT.sub(" ", value).split(";")]
    head = parts[0].split()
    authserv_id = head[0].lower() if head else ""
    results = []
    for part in parts[1:]:
        tokens = part.split()
        if not tokens or "=" not in tokens[0]:
            continue
        method, _, result = tokens[0].partition("=")
        properties = dict(t.split("=", 1) for t in tokens[1:] if "=" in t)
        results.append((method.lower(), result.lower(), properties))
    return authserv_id, results
