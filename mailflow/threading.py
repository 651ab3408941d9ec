"""Which request a mail belongs to, and the signed reply addresses that prove it.

Every mail we send about a request carries ``Reply-To: desk+MF-0012.<tag>@domain``, where
the tag is an HMAC of the ref and the recipient. A reply to that address names the request
and shows that its sender received our mail. The weaker fallbacks (our Message-IDs in
In-Reply-To/References, a ``[MF-0012]`` in the subject, a ref typed in the body) are
parsed here too; deciding whether the sender may act on the request is the caller's job.

Everything here is pure: strings and bytes in, strings out.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
import unicodedata
from email.utils import parseaddr

from mailflow.skills import nfkc

__all__ = [
    "REF_RE",
    "TAG_LENGTH",
    "format_ref",
    "is_our_message_id",
    "make_message_id",
    "normalize_ref",
    "parse_reply_address",
    "ref_in_subject",
    "ref_in_text",
    "reply_address",
    "reply_tag",
    "verify_reply_address",
]

TAG_LENGTH = 10

# A ref as people write it: "MF-12", "mf-0012", "ＭＦ－１２" (after NFKC), "MF−12" (a minus
# or dash typed for the hyphen). It must not be glued to a preceding letter or digit
# ("XMF-1") or run into more digits.
REF_RE = re.compile(r"(?<![0-9A-Za-z])MF[-‐‑‒–—―−](\d{1,12})(?!\d)", re.IGNORECASE)

# A ref in brackets, as our subjects carry it: [MF-0012], 【MF-0012】, (MF-0012), 〔MF-0012〕.
_BRACKETED_REF_RE = re.compile(
    r"[\[【(〔〈《<「『]\s*(" + REF_RE.pattern + r")\s*[\]】)〕〉》>」』]", re.IGNORECASE
)
_TAG_RE = re.compile(rf"[a-z2-7]{{{TAG_LENGTH}}}")


def format_ref(number: int) -> str:
    """The ref of request ``number``: ``MF-0001``, at least four digits."""
    if number < 1:
        raise ValueError(f"request numbers start at 1, got {number}")
    return f"MF-{number:04d}"


def normalize_ref(ref: str) -> str | None:
    """The canonical form of a ref written any way (``ｍｆ－１２`` → ``MF-0012``), or None."""
    match = REF_RE.fullmatch(unicodedata.normalize("NFKC", ref).strip())
    return _canonical(match) if match else None


def _canonical(match: re.Match[str]) -> str | None:
    number = int(match.group(1))
    return format_ref(number) if number > 0 else None


def ref_in_subject(subject: str) -> str | None:
    """The ref a subject carries; a bracketed ``[MF-0012]`` wins over a bare one."""
    text = nfkc(subject)
    bracketed = _BRACKETED_REF_RE.search(text)
    if bracketed:
        return normalize_ref(bracketed.group(1))
    return ref_in_text(text)


def ref_in_text(text: str) -> str | None:
    """The first ref typed anywhere in ``text`` (full-width forms included), or None."""
    for match in REF_RE.finditer(nfkc(text)):
        ref = _canonical(match)
        if ref:
            return ref
    return None


def reply_tag(secret: bytes, ref: str, recipient: str) -> str:
    """The HMAC tag that binds ``ref`` to ``recipient``: 10 lower-case base32 characters."""
    return _tag(secret, normalize_ref(ref) or ref, recipient)


def _tag(secret: bytes, canonical_ref: str, recipient: str) -> str:
    mac = _keyed(secret).copy()
    mac.update(f"{canonical_ref}\0{recipient.strip().lower()}".encode())
    return _base32_start(mac.digest())


@functools.lru_cache(maxsize=8)
def _keyed(secret: bytes) -> hmac.HMAC:
    """An HMAC with the key already in, copied for each tag. ``hmac.digest`` lets go of
    the GIL for every call: with a second thread busy (a worker's file syncs), taking it
    back cost ~30 µs a tag, fifteen times the HMAC."""
    return hmac.new(secret, digestmod=hashlib.sha256)


# Base32 (RFC 4648) in lower case, two characters (ten bits) at a time. base64.b32encode
# is written in Python and cost more than the HMAC itself, for the 10 characters we keep.
_BASE32 = "abcdefghijklmnopqrstuvwxyz234567"
_BASE32_PAIRS = tuple(first + second for first in _BASE32 for second in _BASE32)


def _base32_start(digest: bytes) -> str:
    """The first TAG_LENGTH (10) characters of ``digest`` in lower-case base32."""
    bits = int.from_bytes(digest[:7], "big") >> 6  # the first 50 bits
    pairs = _BASE32_PAIRS
    return (
        pairs[bits >> 40]
        + pairs[(bits >> 30) & 1023]
        + pairs[(bits >> 20) & 1023]
        + pairs[(bits >> 10) & 1023]
        + pairs[bits & 1023]
    )


def reply_address(desk_address: str, ref: str, recipient: str, secret: bytes) -> str:
    """``desk+MF-0012.<tag>@domain``: where ``recipient`` replies about ``ref``."""
    local, domain = _split(desk_address)
    canonical = normalize_ref(ref) or ref
    return f"{local}+{canonical}.{_tag(secret, canonical, recipient)}@{domain}"


def parse_reply_address(address: str, desk_address: str) -> tuple[str, str] | None:
    """``(ref, tag)`` from a signed desk address, or None if it is not one.

    Some MTAs change the case of the local part, so the desk name, the ref and the tag
    are all compared without regard to case; the ref comes back canonical (``MF-0012``)
    and the tag lower-cased.
    """
    if "+" not in address:
        return None  # a signed address always has "desk+": no need to run the address parser
    desk_local, desk_domain = _split(desk_address)
    local, domain = _split(parseaddr(address)[1] or address)
    prefix = desk_local.lower() + "+"
    if domain.lower() != desk_domain.lower() or not local.lower().startswith(prefix):
        return None
    ref_part, _, tag = local[len(prefix) :].rpartition(".")
    ref, tag = normalize_ref(ref_part), tag.lower()
    if ref is None or not _TAG_RE.fullmatch(tag):
        return None
    return ref, tag


def verify_reply_address(address: str, desk_address: str, sender: str, secret: bytes) -> str | None:
    """The ref of a signed reply address, only if its tag was made for ``sender``."""
    parsed = parse_reply_address(address, desk_address)
    if parsed is None:
        return None
    ref, tag = parsed
    expected = _tag(secret, ref, parseaddr(sender)[1] or sender)  # the ref is canonical
    return ref if hmac.compare_digest(tag, expected) else None


def make_message_id(token: str, domain: str) -> str:
    """The Message-ID of one outgoing mail: ``<mf.{token}@{domain}>``."""
    return f"<mf.{token}@{domain}>"


def is_our_message_id(message_id: str, domain: str) -> bool:
    """True if ``message_id`` was made by :func:`make_message_id` for ``domain``."""
    bare = message_id.strip().removeprefix("<").removesuffix(">").lower()
    return bare.startswith("mf.") and bare.endswith("@" + domain.strip().lower())


def _split(address: str) -> tuple[str, str]:
    local, at, domain = address.strip().rpartition("@")
    if not at or not local:
        return address.strip(), ""
    return local, domain
