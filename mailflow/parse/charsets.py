"""Bytes → text for every charset label real Japanese mail carries.

The stock ``iso2022_jp*`` and ``shift_jis`` codecs reject the Windows extension characters
(①, ㈱, №, 髙, 﨑 …) that Outlook and Japanese phones send every day, so ISO-2022-JP is
decoded here by hand (JIS X 0208 row/cell → Shift_JIS arithmetic → cp932), and every
Shift_JIS label is decoded as cp932. Nothing in this module raises on bad input.
"""

from __future__ import annotations

import codecs
import re
import sys
from functools import cache

_JIS_LABELS = frozenset(
    {
        "iso-2022-jp",
        "iso2022-jp",
        "iso2022jp",
        "iso-2022-jp-1",
        "iso-2022-jp-2",
        "iso-2022-jp-3",
        "iso-2022-jp-2004",
        "iso-2022-jp-ext",
        "csiso2022jp",
        "csiso2022jp2",
        "jis",
        "cp50220",
        "cp50221",
        "cp50222",
    }
)
_SJIS_LABELS = frozenset(
    {
        "shift_jis",
        "shift-jis",
        "sjis",
        "x-sjis",
        "s-jis",
        "shiftjis",
        "ms_kanji",
        "ms-kanji",
        "csshiftjis",
        "windows-31j",
        "cp932",
        "ms932",
        "x-ms-cp932",
        "shift_jisx0213",
        "shift_jis_2004",
    }
)
_EUC_LABELS = frozenset(
    {"euc-jp", "eucjp", "euc_jp", "x-euc-jp", "ujis", "cseucpkdfmtjapanese", "eucjp-ms"}
)
_UTF8_LABELS = frozenset({"utf-8", "utf8", "utf_8", "x-utf-8", "unicode-1-1-utf-8"})
_NO_LABEL = frozenset({"", "us-ascii", "ascii", "us_ascii", "ansi_x3.4-1968", "unknown-8bit"})
# Labels mailers write that Python spells differently, or that name a superset we prefer.
_ALIASES = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "ks_c_5601-1987": "cp949",
    "ks_c_5601": "cp949",
    "euc-kr": "cp949",
    "big5": "big5hkscs",
    "iso-8859-8-i": "iso-8859-8",
    "windows-874": "cp874",
    "unicode-1-1-utf-7": "utf-7",
    "latin1": "latin-1",
}
# Text codecs that are not charsets: a hostile label must not pick them.
_FORBIDDEN = ("escape", "undefined", "idna", "punycode", "mbcs", "oem", "rot", "hex", "zip")

_ESC = 0x1B
_ESC_SEQ = re.compile(rb"\x1b(\(B|\(J|\(H|\$@|\$B|\$\(B|\$\(Q|\$\(O|\(I|\$\(D|\$A|\$\(C|\.A|\.F|N)")
_JIS_HINT = re.compile(rb"\x1b\$[@B]")
_UNDEFINED_LEADS = frozenset({0xEB, 0xEC, 0xEF})


def normalise_charset(charset: str | None) -> str:
    """A lower-cased label without quotes, comments or RFC 2231 language."""
    if not charset:
        return ""
    label = charset.strip().strip("\"'").lower()
    return label.split("*", 1)[0].strip()


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Decode ``data`` labelled ``charset`` (may be None or a bogus name) without raising."""
    label = normalise_charset(charset)
    if label in _JIS_LABELS:
        return _decode_labelled_jis(data)
    if label in _SJIS_LABELS:
        return _first_strict(data, ("cp932", "utf-8")) or data.decode("cp932", "replace")
    if label in _EUC_LABELS:
        return _first_strict(data, ("euc_jp", "utf-8")) or data.decode("euc_jis_2004", "replace")
    if label in _UTF8_LABELS:
        return _first_strict(data, ("utf-8",)) or sniff(data)
    if label in _NO_LABEL:
        return sniff(data)
    codec = _lookup(label)
    if codec is None:
        return sniff(data)
    return _first_strict(data, (codec,)) or sniff(data)


def _lookup(label: str) -> str | None:
    """The Python codec for a label, or None for unknown or unsafe names."""
    label = _ALIASES.get(label, label)
    if any(bad in label for bad in _FORBIDDEN):
        return None
    try:
        info = codecs.lookup(label)
    except (LookupError, ValueError):
        return None
    if not getattr(info, "_is_text_encoding", True):
        return None
    return info.name


def _first_strict(data: bytes, codecs_to_try: tuple[str, ...]) -> str | None:
    for codec in codecs_to_try:
        try:
            return data.decode(codec)
        except (UnicodeDecodeError, LookupError):
            continue
    return None


def sniff(data: bytes) -> str:
    """Guess: ASCII, ISO-2022-JP, UTF-8, then cp932 or EUC-JP, then latin-1."""
    if data.isascii():
        if _JIS_HINT.search(data):
            return decode_iso2022jp(data)
        return data.decode("ascii")
    text = _first_strict(data, ("utf-8",))
    if text is not None:
        return text
    return _sniff_legacy(data)


def _sniff_legacy(data: bytes) -> str:
    # EUC-JP text often also decodes as cp932, but as a spray of half-width katakana:
    # when both succeed, keep the reading with fewer of those.
    sjis = _first_strict(data, ("cp932",))
    euc = _first_strict(data, ("euc_jp",))
    if sjis is not None and euc is not None:
        return sjis if _halfwidth_count(sjis) <= _halfwidth_count(euc) else euc
    if sjis is not None:
        return sjis
    if euc is not None:
        return euc
    return data.decode("latin-1", "replace")


def _halfwidth_count(text: str) -> int:
    return sum(1 for ch in text if "\uff61" <= ch <= "\uff9f")


def _decode_labelled_jis(data: bytes) -> str:
    # Some mailers label UTF-8 or Shift_JIS bodies as ISO-2022-JP: 8-bit bytes give them away.
    if not data.isascii():
        text = _first_strict(data, ("utf-8", "cp932"))
        if text is not None:
            return text
    return decode_iso2022jp(data)


def decode_iso2022jp(data: bytes) -> str:
    """ISO-2022-JP with the Windows (CP50220) extensions, never raising."""
    if _ESC not in data and 0x0E not in data:
        return data.decode("latin-1" if not data.isascii() else "ascii", "replace")
    # split() gives text, mode, text, mode, …: each text is read in the mode before it.
    pieces = _ESC_SEQ.split(data)
    modes = [b"(B", *pieces[1::2]]
    return "".join(map(_decode_run, pieces[::2], modes))


_DOUBLE_MODES = frozenset({b"$B", b"$@", b"$(B", b"$(Q", b"$(O"})
_SINGLE_MODES = frozenset({b"(B", b"(J", b"(H"})


def _decode_run(chunk: bytes, mode: bytes) -> str:
    """Decode bytes written while one escape sequence was in force."""
    if not chunk:
        return ""
    # The two modes of nearly every run first: kanji, then ASCII / JIS-Roman.
    if mode in _DOUBLE_MODES:
        return _decode_double(chunk)
    if mode in _SINGLE_MODES:
        return _decode_single(chunk)
    if mode == b"(I":
        return _decode_kana(chunk)
    if mode == b"$(D":
        return _decode_other(b"\x1b$(D" + chunk + b"\x1b(B")
    if mode in (b"$A", b"$(C", b".A", b".F", b"N"):
        # ISO-2022-JP-2 designations (Chinese, Korean, Latin-1, Greek): the stock codec knows them.
        return _decode_other(b"\x1b" + mode + chunk + b"\x1b(B")
    return _decode_single(chunk)


def _decode_single(chunk: bytes) -> str:
    """ASCII / JIS-Roman, with SO…SI runs as half-width katakana."""
    if 0x0E not in chunk:
        return chunk.decode("ascii", "replace")
    out: list[str] = []
    shifted = False
    for piece in re.split(rb"([\x0e\x0f])", chunk):
        if piece in (b"\x0e", b"\x0f"):
            shifted = piece == b"\x0e"
        elif piece:
            out.append(_decode_kana(piece) if shifted else piece.decode("ascii", "replace"))
    return "".join(out)


# JIS X 0201 katakana 0x21–0x5F is cp932 0xA1–0xDF.
_KANA_TO_CP932 = bytes(b + 0x80 if 0x21 <= b <= 0x5F else b for b in range(256))


def _decode_kana(chunk: bytes) -> str:
    return chunk.translate(_KANA_TO_CP932).decode("cp932", "replace")


def _decode_other(data: bytes) -> str:
    return data.decode("iso2022_jp_2", "replace")


def _decode_double(chunk: bytes) -> str:
    """JIS X 0208 pairs → Shift_JIS bytes → cp932 (which holds the NEC/IBM extensions)."""
    if len(chunk) % 2 == 0:
        # Almost every run is whole pairs that each make one character: look them up.
        try:
            return "".join(map(_pair_table().__getitem__, memoryview(chunk).cast("H")))
        except KeyError:
            pass  # a line break, a stray byte or an unmapped pair: go byte by byte
    return _decode_double_bytewise(chunk)


@cache
def _pair_table() -> dict[int, str]:
    """Each JIS X 0208 pair that is one cp932 character, keyed as ``cast("H")`` reads it.

    Pairs that do not decode to exactly one character are left out, so a run holding one
    takes the byte-by-byte path and its replacement characters come out as before.
    """
    table: dict[int, str] = {}
    for first in range(0x21, 0x7F):
        for second in range(0x21, 0x7F):
            try:
                text = _jis_to_sjis(first, second).decode("cp932")
            except UnicodeDecodeError:
                continue
            if len(text) == 1:
                table[int.from_bytes(bytes((first, second)), sys.byteorder)] = text
    return table


def _decode_double_bytewise(chunk: bytes) -> str:
    sjis = bytearray()
    i = 0
    size = len(chunk)
    while i < size:
        first = chunk[i]
        if first in (0x0A, 0x0D):
            # RFC 1468 lines start in ASCII: a mailer that forgot ESC ( B meant ASCII here.
            return sjis.decode("cp932", "replace") + _decode_single(chunk[i:])
        if first < 0x21 or first > 0x7E or i + 1 >= size:
            sjis.append(first if first < 0x80 else 0x3F)
            i += 1
            continue
        second = chunk[i + 1]
        if not 0x21 <= second <= 0x7E:
            sjis.append(0x3F)
            i += 1
            continue
        sjis += _jis_to_sjis(first, second)
        i += 2
    return sjis.decode("cp932", "replace")


def _jis_to_sjis(first: int, second: int) -> bytes:
    lead = ((first + 1) >> 1) + (0x70 if first <= 0x5E else 0xB0)
    if lead in _UNDEFINED_LEADS:
        # Rows 85–88 and 93–94 are empty in JIS X 0208; Windows (CP50221) reads them as the
        # cp932 user-defined area, where Japanese carriers put their emoji (au, SoftBank).
        lead = 0xF0 + ((first - 0x75) >> 1)
    if first & 1:
        trail = second + (0x1F if second <= 0x5F else 0x20)
    else:
        trail = second + 0x7E
    return bytes((lead, trail))


def is_known_charset(charset: str | None) -> bool:
    """True when ``charset`` is a label we decode on purpose rather than by guessing."""
    label = normalise_charset(charset)
    if label in _JIS_LABELS | _SJIS_LABELS | _EUC_LABELS | _UTF8_LABELS | _NO_LABEL:
        return True
    return _lookup(label) is not None
