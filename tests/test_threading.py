"""Signed reply addresses, refs in subjects and bodies, our Message-IDs."""

from __future__ import annotations

import base64
import hashlib

import pytest

from mailflow import threading
from mailflow.threading import (
    REF_RE,
    format_ref,
    is_our_message_id,
    make_message_id,
    normalize_ref,
    parse_reply_address,
    ref_in_subject,
    ref_in_text,
    reply_address,
    reply_tag,
    verify_reply_address,
)

SECRET = b"s3cret-for-tests"
DESK = "desk@secretary.example"
CLIENT = "yamada@acme.example"


def signed(ref: str = "MF-0012", recipient: str = CLIENT) -> str:
    return reply_address(DESK, ref, recipient, SECRET)


def test_reply_tag_is_ten_lowercase_base32_characters() -> None:
    tag = reply_tag(SECRET, "MF-0012", CLIENT)
    assert len(tag) == 10
    assert tag == tag.lower()
    assert set(tag) <= set("abcdefghijklmnopqrstuvwxyz234567")


def test_reply_tag_is_the_start_of_the_base32_hmac() -> None:
    # Addresses already sent out must keep verifying: the tag is pinned.
    assert reply_tag(SECRET, "MF-0012", CLIENT) == "yrouzuodjv"


def test_reply_tag_ignores_recipient_case_but_not_secret_or_ref() -> None:
    tag = reply_tag(SECRET, "MF-0012", CLIENT)
    assert reply_tag(SECRET, "MF-0012", "Yamada@ACME.example") == tag
    assert reply_tag(b"other", "MF-0012", CLIENT) != tag
    assert reply_tag(SECRET, "MF-0013", CLIENT) != tag


def test_reply_address_shape() -> None:
    address = signed()
    tag = reply_tag(SECRET, "MF-0012", CLIENT)
    assert address == f"desk+MF-0012.{tag}@secretary.example"


def test_parse_reply_address_returns_ref_and_tag() -> None:
    tag = reply_tag(SECRET, "MF-0012", CLIENT)
    assert parse_reply_address(signed(), DESK) == ("MF-0012", tag)


def test_parse_reply_address_tolerates_case_changes() -> None:
    tag = reply_tag(SECRET, "MF-0012", CLIENT)
    upper = f"DESK+MF-0012.{tag.upper()}@Secretary.Example"
    lower = f"desk+mf-0012.{tag}@secretary.example"
    assert parse_reply_address(upper, DESK) == ("MF-0012", tag)
    assert parse_reply_address(lower, DESK) == ("MF-0012", tag)


def test_parse_reply_address_accepts_display_name_and_brackets() -> None:
    assert parse_reply_address(f"Desk <{signed()}>", DESK) is not None


@pytest.mark.parametrize(
    "address",
    [
        DESK,
        "desk+hello@secretary.example",
        "desk+MF-0012@secretary.example",
        "desk+MF-0012.short@secretary.example",
        "other+MF-0012.abcdefghij@secretary.example",
        "desk+MF-0012.abcdefghij@elsewhere.example",
        "desk+MF-0012.abcdefgh1j@secretary.example",
        "not an address",
    ],
)
def test_parse_reply_address_rejects_other_addresses(address: str) -> None:
    assert parse_reply_address(address, DESK) is None


def test_verify_accepts_the_right_sender_in_any_case() -> None:
    assert verify_reply_address(signed(), DESK, CLIENT, SECRET) == "MF-0012"
    assert verify_reply_address(signed(), DESK, "YAMADA@acme.example", SECRET) == "MF-0012"
    assert verify_reply_address(signed().upper(), DESK, CLIENT, SECRET) == "MF-0012"
    assert verify_reply_address(signed(), DESK, f"山田 <{CLIENT}>", SECRET) == "MF-0012"


def test_verify_refuses_another_sender() -> None:
    assert verify_reply_address(signed(), DESK, "mallory@evil.example", SECRET) is None


def test_verify_refuses_a_tampered_tag() -> None:
    address = signed()
    local, domain = address.split("@")
    last = local[-1]
    tampered = local[:-1] + ("a" if last != "a" else "b") + "@" + domain
    assert verify_reply_address(tampered, DESK, CLIENT, SECRET) is None


def test_verify_refuses_the_tag_moved_to_another_ref() -> None:
    tag = reply_tag(SECRET, "MF-0012", CLIENT)
    moved = f"desk+MF-0013.{tag}@secretary.example"
    assert verify_reply_address(moved, DESK, CLIENT, SECRET) is None


def test_verify_refuses_another_secret() -> None:
    assert verify_reply_address(signed(), DESK, CLIENT, b"rotated") is None


def test_format_ref_pads_to_four_digits_and_grows() -> None:
    assert format_ref(1) == "MF-0001"
    assert format_ref(9999) == "MF-9999"
    assert format_ref(12345) == "MF-12345"
    with pytest.raises(ValueError):
        format_ref(0)


@pytest.mark.parametrize(
    ("written", "canonical"),
    [("MF-0012", "MF-0012"), ("mf-12", "MF-0012"), ("ＭＦ－１２", "MF-0012"), ("MF−12", "MF-0012")],
)
def test_normalize_ref(written: str, canonical: str) -> None:
    assert normalize_ref(written) == canonical


@pytest.mark.parametrize(
    ("subject", "ref"),
    [
        ("[MF-0012] ご依頼を承りました", "MF-0012"),
        ("Re: 【MF-0012】資料作成の件", "MF-0012"),
        ("RE: Re: [mf-0012] follow-up", "MF-0012"),
        ("Re: ［ＭＦ－００１２］全角の件名", "MF-0012"),
        ("Fwd: (MF-12345) big numbers", "MF-12345"),
        ("MF-0007 の件で追加です", "MF-0007"),
        ("見積の件 MF-0001 ではなく [MF-0002]", "MF-0002"),
        ("MF-0 は無効", None),
        ("XMF-0012 product code", None),
        ("通常の件名", None),
    ],
)
def test_ref_in_subject(subject: str, ref: str | None) -> None:
    assert ref_in_subject(subject) == ref


def test_ref_in_text_finds_hand_typed_refs() -> None:
    assert ref_in_text("お世話になっております。\n受付番号ＭＦ－１２の件です。") == "MF-0012"
    assert ref_in_text("about request mf-0033, thanks") == "MF-0033"
    assert ref_in_text("no reference here, MF12 is not one") is None


def test_ref_re_is_case_insensitive() -> None:
    match = REF_RE.search("see mf-0042")
    assert match is not None and match.group(1) == "0042"


def test_message_ids() -> None:
    mid = make_message_id("01HXYZ", "secretary.example")
    assert mid == "<mf.01HXYZ@secretary.example>"
    assert is_our_message_id(mid, "secretary.example")
    assert is_our_message_id(" <MF.01hxyz@Secretary.Example> ", "secretary.example")
    assert not is_our_message_id("<abc@secretary.example>", "secretary.example")
    assert not is_our_message_id("<mf.1@evil.example>", "secretary.example")
    assert not is_our_message_id("<mf.1@evil-secretary.example>", "secretary.example")


def test_tags_are_the_start_of_the_standard_base32() -> None:
    for n in range(2000):
        digest = hashlib.sha256(str(n).encode()).digest()
        standard = base64.b32encode(digest[:10]).decode("ascii").lower()[: threading.TAG_LENGTH]
        assert threading._base32_start(digest) == standard
