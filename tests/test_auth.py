"""Who really sent a mail: signed reply addresses and the topmost Authentication-Results."""

from __future__ import annotations

from mailflow.auth import authenticate, parse_authentication_results
from mailflow.model import Address, ParsedMail
from mailflow.threading import reply_address

SECRET = b"k" * 32
DESK = "desk@secretary.example"
TRUSTED = ["mx.secretary.example"]


def _mail(to: str = DESK, results: tuple[str, ...] = ()) -> ParsedMail:
    headers = tuple(("authentication-results", value) for value in results)
    return ParsedMail(
        message_id="<x@y>",
        subject="s",
        sender=Address("tanaka@secretary.example"),
        to=(Address(to),),
        headers=headers,
    )


def _check(mail: ParsedMail, ref: str | None = None) -> bool:
    return authenticate(
        mail,
        sender="tanaka@secretary.example",
        desk_address=DESK,
        secret=SECRET,
        trusted_authserv_ids=TRUSTED,
        ref=ref,
    ).ok


def test_a_reply_to_the_address_signed_for_the_sender() -> None:
    signed = reply_address(DESK, "MF-0001", "tanaka@secretary.example", SECRET)
    assert _check(_mail(to=signed), ref="MF-0001")
    assert not _check(_mail(to=signed), ref="MF-0002")
    other = reply_address(DESK, "MF-0001", "sato@members.example", SECRET)
    assert not _check(_mail(to=other), ref="MF-0001")


def test_only_the_topmost_trusted_authentication_results_counts() -> None:
    trusted = "mx.secretary.example; dmarc=pass header.from=secretary.example"
    forged = "mx.evil.example; dmarc=pass header.from=secretary.example"
    assert _check(_mail(results=(trusted,)))
    assert _check(_mail(results=(trusted, forged)))
    assert not _check(_mail(results=(forged,)))
    assert not _check(_mail(results=(forged, trusted)))
    assert not _check(_mail(results=("mx.secretary.example; dmarc=fail; dkim=fail",)))


def test_dkim_must_align_with_the_from_domain() -> None:
    aligned = "mx.secretary.example; dkim=pass header.d=secretary.example"
    foreign = "mx.secretary.example; dkim=pass header.d=mailer.example"
    assert _check(_mail(results=(aligned,)))
    assert not _check(_mail(results=(foreign,)))


def test_parse_authentication_results_with_comments_and_version() -> None:
    authserv, results = parse_authentication_results(
        "mx.secretary.example 1; spf=pass (sender ok) smtp.mailfrom=a.example; "
        "dkim=pass (2048-bit key) header.d=a.example header.s=s1"
    )
    assert authserv == "mx.secretary.example"
    assert results[1] == ("dkim", "pass", {"header.d": "a.example", "header.s": "s1"})
