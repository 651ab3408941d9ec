"""The charset layer: Windows extension characters survive every Japanese label."""

from __future__ import annotations

import random

import pytest

from mailflow.parse import charsets
from mailflow.parse.charsets import decode_bytes, decode_iso2022jp

WINDOWS_CHARS = "①②㈱髙﨑№ ～"


def test_iso2022jp_with_nec_and_ibm_extensions() -> None:
    # ① = 2D21, ㈱ = 2D6A (NEC row 13); 髙 = 7C62 (NEC-selected IBM extension, row 92).
    data = b"\x1b$B-!-j|b\x1b(B abc"
    assert decode_bytes(data, "ISO-2022-JP") == "①㈱髙 abc"


@pytest.mark.parametrize(
    "label", ["iso-2022-jp-1", "iso-2022-jp-2", "iso-2022-jp-3", "csISO2022JP"]
)
def test_iso2022jp_variants_share_the_decoder(label: str) -> None:
    assert decode_bytes(b"\x1b$B-!\x1b(B", label) == "①"


def test_iso2022jp_escapes_roman_and_katakana() -> None:
    data = b"\x1b(Jabc\x1b$@%F%9%H\x1b(I12\x1b(B x \x0e34\x0f y"
    assert decode_iso2022jp(data) == "abcテストｱｲ x ｳｴ y"


def test_iso2022jp_line_break_inside_double_byte_run_recovers() -> None:
    assert decode_bytes(b"\x1b$B%F\nabc", "iso-2022-jp") == "テ\nabc"


@pytest.mark.parametrize(
    "label", ["shift_jis", "sjis", "x-sjis", "shift-jis", "ms_kanji", "windows-31j", "SHIFT_JIS"]
)
def test_shift_jis_labels_decode_as_cp932(label: str) -> None:
    assert decode_bytes(WINDOWS_CHARS.encode("cp932"), label) == WINDOWS_CHARS


def test_euc_jp_and_utf8() -> None:
    assert decode_bytes("日本語".encode("euc_jp"), "EUC-JP") == "日本語"
    assert decode_bytes("日本語①".encode(), "utf-8") == "日本語①"


def test_no_charset_with_jis_escape_is_iso2022jp() -> None:
    assert decode_bytes("テスト".encode("iso2022_jp"), None) == "テスト"


def test_iso2022jp_label_holding_8bit_utf8_or_sjis() -> None:
    assert decode_bytes("こんにちは①".encode(), "iso-2022-jp") == "こんにちは①"
    assert decode_bytes("こんにちは①".encode("cp932"), "iso-2022-jp") == "こんにちは①"


@pytest.mark.parametrize(
    "label", ["x-bogus", "us-askey", "fakescii", "unicode-escape", "rot13", ""]
)
def test_bogus_charset_is_sniffed(label: str) -> None:
    assert decode_bytes("日本語です".encode(), label) == "日本語です"
    assert decode_bytes("日本語です".encode("cp932"), label) == "日本語です"
    assert decode_bytes("日本語のテキストです".encode("euc_jp"), label) == "日本語のテキストです"


def test_never_raises_on_garbage() -> None:
    garbage = bytes(range(256)) * 3
    for label in ("iso-2022-jp", "shift_jis", "euc-jp", "utf-8", "x-unknown", None, "latin-1"):
        assert isinstance(decode_bytes(garbage, label), str)
    assert isinstance(decode_bytes(b"\x1b$B\x7f\x80\x1b$(D\x21", "iso-2022-jp"), str)


# -- the pair table (whole runs at once) and the byte-by-byte reading agree ----------------

_JIS_BYTES = range(0x21, 0x7F)


def test_every_jis_pair_reads_as_byte_by_byte() -> None:
    pairs = [bytes((first, second)) for first in _JIS_BYTES for second in _JIS_BYTES]
    for pair in pairs:
        assert charsets._decode_double(pair) == charsets._decode_double_bytewise(pair), pair
    whole = b"".join(pairs)
    assert charsets._decode_double(whole) == charsets._decode_double_bytewise(whole)


def test_runs_with_stray_bytes_read_as_byte_by_byte() -> None:
    rng = random.Random(2026)
    alphabet = [*_JIS_BYTES, 0x0A, 0x0D, 0x20, 0x7F, 0x80, 0xFF, 0x00]
    for _ in range(20000):
        run = bytes(rng.choice(alphabet) for _ in range(rng.randrange(12)))
        assert charsets._decode_double(run) == charsets._decode_double_bytewise(run), run


def test_extension_characters_come_through_the_pair_table() -> None:
    # ① ㈱ № ～ (NEC row 13 and the cp932 wave dash), 髙 﨑 (IBM extensions).
    text = "①㈱№～髙﨑"
    assert decode_iso2022jp(b"\x1b$B-!-j-b!A|byu\x1b(B") == text
