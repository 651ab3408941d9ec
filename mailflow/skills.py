"""Reading a client's words: normalisation, keyword matching and language detection.

Pure helpers shared by the rule engine (``rules.py``): a ``KeywordSet`` is compiled once
when rules.yaml loads and then searched in every mail, so matching must be cheap and its
result must name the keyword that matched (the explanation quotes it).

Matching happens on ``normalize``-d text: NFKC (full-width ``ＵＲＧＥＮＴ`` and half-width
``ｶﾀｶﾅ`` become ordinary characters), case-folded, whitespace collapsed, and line breaks
inside Japanese text removed (mail clients wrap ``市場\\n調査`` in the middle of a word).
Japanese keywords match anywhere; English keywords must start at a word start, and short
ones (four characters or fewer, such as ``call`` or ``logo``) must also end at a word end,
allowing a plural ``s``: ``call`` matches "calls" but not "callback", while ``translate``
also matches "translated".
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache

SHORT_KEYWORD = 4

# A space between two non-ASCII characters is a line wrap, not a word break. The space
# comes first so that the regex engine jumps from space to space instead of trying the
# look-behind at every character.
_WRAP = re.compile(r" (?<=[^\x00-\x7f] )(?=[^\x00-\x7f])")
_ASCII_WORD = re.compile(r"^[\x00-\x7f]*[0-9a-z][\x00-\x7f]*$")
# Hiragana, katakana (full and half width), CJK ideographs and the iteration mark.
_JAPANESE = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f々]")
# A signature's contact line ("TEL: 03-…", "電話：03-…") is not a request to phone someone.
_CONTACT_LABEL = re.compile(
    r"(?:tel|fax|phone|mobile|携帯|電話番号|電話|ＴＥＬ)\.?\s*[:：]?\s*(?=[+(（]?\d)",
    re.IGNORECASE,
)
_SIGNATURE = re.compile(r"^-- ?$", re.MULTILINE)


@lru_cache(maxsize=16)
def nfkc(text: str) -> str:
    """``text`` in NFKC (full-width ``ＭＦ－１２`` → ``MF-12``, ``ｶﾀｶﾅ`` → ``カタカナ``).

    A mail's subject and body are normalised by several readers (refs, skills, routes,
    deadlines, formats): the last few results are kept so that each is computed once.
    """
    return unicodedata.normalize("NFKC", text)


def normalize(text: str) -> str:
    """The form keywords are matched in: NFKC, case-folded, whitespace collapsed."""
    folded = " ".join(nfkc(text).casefold().split())
    return folded if folded.isascii() else _WRAP.sub("", folded)


def request_words(text: str) -> str:
    """The part of a body that says what is wanted: no signature, no contact lines.

    The text after a standard ``-- `` signature line is dropped, and labels such as
    ``TEL: 03-1234-5678`` are removed so that a phone number in a signature does not make
    a research request look like phone work.
    """
    signature = _SIGNATURE.search(text)
    if signature is not None:
        text = text[: signature.start()]
    return _CONTACT_LABEL.sub(" ", text)


def detect_language(text: str) -> str:
    """``ja`` when the text contains any kana or kanji, else ``en``."""
    return "ja" if _JAPANESE.search(text) else "en"


def _pattern(keyword: str) -> str:
    """The regular expression of one normalised keyword (see the module docstring).

    It starts with the keyword's first character itself; the word-start check follows it
    (``c(?<![0-9a-z]c)all`` is ``(?<![0-9a-z])call``). An alternation of such patterns
    lets the regex engine skip, in C, every position whose character starts no keyword.
    """
    escaped = re.escape(keyword)
    if not _ASCII_WORD.match(keyword):
        return escaped
    first, rest = re.escape(keyword[0]), re.escape(keyword[1:])
    start = rf"(?<![0-9a-z]{first})" if keyword[0].isalnum() else ""
    end = r"s?(?![0-9a-z])" if len(keyword) <= SHORT_KEYWORD and keyword[-1].isalnum() else ""
    return first + start + rest + end


class KeywordSet:
    """Keywords compiled for searching; ``find`` returns the keyword as written.

    All the keywords make one regular expression, longest first. Every alternative
    starts with a plain character (see ``_pattern``), so the engine jumps from one
    possible first character to the next and rules out most keywords there by it.
    """

    def __init__(self, keywords: Iterable[str]) -> None:
        self.keywords = tuple(dict.fromkeys(keyword for keyword in keywords if keyword.strip()))
        self._written: dict[str, str] = {}
        for keyword in self.keywords:
            self._written.setdefault(normalize(keyword), keyword)
        # Longer keywords first, so "data entry" is reported rather than "data".
        self._forms = tuple(sorted(self._written, key=len, reverse=True))
        patterns = [_pattern(form) for form in self._forms]
        # Each alternative ends in an empty group: the one that took part names the keyword.
        self._search = re.compile("|".join(f"{p}()" for p in patterns)).search if patterns else None
        self._blank = re.compile("|".join(patterns)).sub if patterns else None

    def __bool__(self) -> bool:
        return bool(self.keywords)

    def find(self, normalized: str) -> str | None:
        """The keyword found first in already ``normalize``-d text, or None; of those that
        start at the same place, the longest."""
        match = self._search(normalized) if self._search is not None else None
        if match is None or match.lastindex is None:
            return None
        return self._written[self._forms[match.lastindex - 1]]

    def mask(self, normalized: str) -> str:
        """``normalized`` with every keyword blanked out (for a skill's ``ignore`` words)."""
        if self._blank is None or self.find(normalized) is None:
            return normalized
        return self._blank(" ", normalized)
