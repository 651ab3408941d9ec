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
from collections.abc import Collection, Iterable
from functools import lru_cache
from itertools import compress

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
    """The regular expression of one normalised keyword (see the module docstring)."""
    escaped = re.escape(keyword)
    if not _ASCII_WORD.match(keyword):
        return escaped
    start = r"(?<![0-9a-z])" if keyword[0].isalnum() else ""
    end = r"s?(?![0-9a-z])" if len(keyword) <= SHORT_KEYWORD and keyword[-1].isalnum() else ""
    return start + escaped + end


class KeywordSet:
    """Keywords compiled for searching; ``find`` returns the keyword as written.

    Each keyword is first looked for as a plain substring (fast, in C); only where one
    occurs is its word-boundary pattern checked. A long alternation regex is several
    times slower on a typical mail.
    """

    def __init__(self, keywords: Iterable[str]) -> None:
        self.keywords = tuple(dict.fromkeys(keyword for keyword in keywords if keyword.strip()))
        self._written: dict[str, str] = {}
        for keyword in self.keywords:
            self._written.setdefault(normalize(keyword), keyword)
        # Longer keywords first, so "data entry" is reported rather than "data".
        forms = sorted(self._written, key=len, reverse=True)
        self._forms = tuple(
            (form, None if _pattern(form) == re.escape(form) else re.compile(_pattern(form)))
            for form in forms
        )
        self._blank = re.compile("|".join(_pattern(form) for form in forms)).sub if forms else None
        self._initials = tuple(form[0] for form in forms)
        # The characters a text must have for some keyword to occur in it (see ``find``).
        self.initials = frozenset(self._initials)

    def __bool__(self) -> bool:
        return bool(self.keywords)

    def _first(
        self, normalized: str, present: Collection[str] | None = None
    ) -> tuple[int, str] | None:
        best: tuple[int, str] | None = None
        forms: Iterable[tuple[str, re.Pattern[str] | None]] = self._forms
        if present is not None:
            # A keyword whose first character the text lacks cannot occur in it (this
            # filter runs in C; most keywords of most skills drop out here).
            forms = compress(self._forms, map(present.__contains__, self._initials))
        for form, pattern in forms:
            start = normalized.find(form)
            if start < 0 or (best is not None and start >= best[0]):
                continue
            if pattern is not None:
                match = pattern.search(normalized, start)
                if match is None:
                    continue
                start = match.start()
            if best is None or start < best[0]:
                best = (start, form)
        return best

    def find(self, normalized: str, present: Collection[str] | None = None) -> str | None:
        """The keyword found first in already ``normalize``-d text, or None.

        ``present`` (optional) is the set of the text's characters, computed once when many
        keyword sets search the same text; those not in ``initials`` may be left out.
        """
        found = self._first(normalized, present)
        return None if found is None else self._written[found[1]]

    def mask(self, normalized: str, present: Collection[str] | None = None) -> str:
        """``normalized`` with every keyword blanked out (for a skill's ``ignore`` words);
        ``present`` as for ``find``."""
        if self._blank is None or self._first(normalized, present) is None:
            return normalized
        return self._blank(" ", normalized)
