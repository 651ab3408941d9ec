"""Split a body into what the sender newly wrote and what they quoted.

Commands (#tags) and replies are read from the new text only, so the splitter errs on
the side of cutting at anything that looks like the start of a quoted or forwarded mail:
attribution lines in English and Japanese, Outlook header blocks, forward markers and
``>`` lines. Signatures go with the quoted rest.
"""

from __future__ import annotations

import re
from functools import lru_cache

_SEPARATOR = re.compile(
    r"^\s*(-{2,}|_{2,}|={2,})?\s*("
    r"original message|元のメッセージ|オリジナル\s*メッセージ|forwarded message|mensaje original|"
    r"messaggio originale|mensagem original|originalnachricht|"
    r"転送されたメッセージ|転送メッセージ|転送\s*メール|転送|forwarded by .*|reply message|"
    r"ursprüngliche nachricht|message d'origine|oprindelig meddelelse|oorspronkelijk bericht"
    r")\s*(-{2,}|_{2,}|={2,})?\s*$",
    re.IGNORECASE,
)
_BEGIN_FORWARD = re.compile(
    r"^\s*(begin forwarded message|以下、?転送(します|メッセージ))\s*[:：]?\s*$", re.I
)
_ATTRIBUTION_END = re.compile(
    r"(wrote|writes|schrieb|написал|skrev|napisał\(a\)|napisał|kirjoitti|ha scritto|escreveu|"
    r"a écrit|escribió|scrisse|さんは書きました|は書きました|書きました|"
    r"のメール|のメッセージ|からのメール|さんからのメッセージ)\s*[:：]\s*$",
    re.IGNORECASE,
)
_ATTRIBUTION_START = re.compile(
    r"^\s*(on\s|am\s|le\s|el\s|den\s|em\s|il\s|op\s|w dniu\s|dnia\s|"
    r"\d{4}\s*[年/.-]|\d{1,2}[/.]\d{1,2}[/.]\d{2,4}|\(?\w+\)?\s*\d{4}年|"
    r"[^\s].{0,80}(さん|様)?(は|が)?書きました)",
    re.IGNORECASE,
)
_DATED_ATTRIBUTION = re.compile(
    r"^\s*(\d{4}\s*年\s*\d{1,2}\s*月\s*\d{1,2}\s*日|\d{4}/\d{1,2}/\d{1,2}).*>\s*[:：]$"
)
_HEADER_FROM = re.compile(
    r"^\s*\*?(from|差出人|送信者|送信元|von|de|da|fra|van|od|från|от)\*?\s*[:：]", re.IGNORECASE
)
_HEADER_NEXT = re.compile(
    r"^\s*\*?(sent|date|to|subject|cc|送信日時|日付|日時|宛先|件名|gesendet|datum|betreff|"
    r"envoyé|objet|sendt|til|emne|verzonden|aan|onderwerp|wysłano|do|temat|skickat|ämne|"
    r"enviado|para|asunto|inviato|data|oggetto|a|отправлено|кому|тема|дата)\*?\s*[:：]",
    re.IGNORECASE,
)
# Zoho: "---- On Tue, 22 Dec 2015 14:17:36 +0530 Sam <sam@x> wrote ----".
_BOXED_ATTRIBUTION = re.compile(r"^\s*-{2,}\s*on\s.{5,200}\swrote\s*-{2,}\s*$", re.IGNORECASE)
# Old Gmail: "2013/7/20 Sam <sam@example.org>" alone on its line, no "wrote:".
_DATE_AND_ADDRESS = re.compile(r"^\s*\d{4}[/-]\d{1,2}[/-]\d{1,2}\s.{0,100}<[^<>\s]+@[^<>\s]+>\s*$")
# The four kinds of marker line in one pattern: one regex call per line instead of four.
# (_DATE_AND_ADDRESS has no letters, so IGNORECASE leaves its meaning alone.)
_MARKER = re.compile(
    "|".join(
        f"(?:{pattern.pattern})"
        for pattern in (_SEPARATOR, _BEGIN_FORWARD, _BOXED_ATTRIBUTION, _DATE_AND_ADDRESS)
    ),
    re.IGNORECASE,
)
_ADDRESS_TAIL = re.compile(r"^\s*[^\s<>]+@[^\s<>]+>")
_ENDS_WITH_ADDRESS = re.compile(r"@[^\s<>]+>+\s*[:：]$")
_SIG_DECORATION = re.compile(r"^[\s―━─＝=＿_\-－*＊~〜～・.]{4,}$")
_SIG_MAX_LINES = 15
_CONTACT = re.compile(
    r"@|https?://|tel|fax|phone|mobile|電話|携帯|〒|株式会社|有限会社|合同会社|\(株\)|㈱", re.I
)
_DIGITS = re.compile(r"\d{1,2}[:：]\d{2}|\d{4}")
_MOBILE_SIGNATURE = re.compile(r"^(sent from my [\w ]{1,30}|\S{1,20}から送信)$", re.IGNORECASE)


def split_quoted(text: str) -> tuple[str, str]:
    """Return ``(new, quoted)``; both normalised to LF with trailing whitespace stripped."""
    fresh: list[str] = []
    quoted: list[str] = []
    lines = normalise(text).split("\n")
    while True:
        cut, attribution = find_quote_start(lines)
        head, inline_quotes = _separate_marked(lines[:cut])
        fresh += head
        quoted += inline_quotes
        after = _answers_below(lines, cut, attribution)
        if after is None:
            quoted += lines[cut:]
            break
        # Bottom-posting or inline answers: keep reading below the quoted block.
        quoted += lines[cut:after]
        lines = lines[after:]
    fresh, signature = _split_signature(fresh)
    while fresh and (not fresh[-1] or _SIG_DECORATION.match(fresh[-1])):
        signature.insert(0, fresh.pop())  # the rule Outlook draws above a quoted header
    return _join(fresh), _join([*signature, *quoted])


def _answers_below(lines: list[str], cut: int, attribution: int) -> int | None:
    """Where unquoted text resumes after an attribution and its ``>`` block, if it does."""
    if not attribution:
        return None
    i = cut + attribution
    while i < len(lines) and not lines[i]:
        i += 1
    if i >= len(lines) or not lines[i].startswith(">"):
        return None  # the original follows unquoted: everything below is quoted
    while i < len(lines) and (not lines[i] or lines[i].startswith(">")):
        i += 1
    return i if i < len(lines) else None


# The quote splitter and the inline-forward reader normalise the same body, one after the
# other: the second gets the first's result.
@lru_cache(maxsize=4)
def normalise(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return "\n".join(line.rstrip() for line in text.split("\n")).strip("\n")


def _join(lines: list[str]) -> str:
    return "\n".join(lines).strip("\n")


def find_quote_start(lines: list[str]) -> tuple[int, int]:
    """Where a quoted or forwarded mail starts, and how many attribution lines open it.

    Returns ``(len(lines), 0)`` when nothing is quoted.
    """
    last_fresh = next(
        (i for i in range(len(lines) - 1, -1, -1) if lines[i] and lines[i][0] != ">"), -1
    )
    for i, line in enumerate(lines):
        if not line or line.startswith(">"):
            if line and i > last_fresh:
                # Only quotes follow: the bottom of a top-posted reply. An attribution
                # wrapped before its closing ">:" goes with them.
                wrapped = line.strip() in (">:", ">：") and i and "@" in lines[i - 1]
                return (i - 1 if wrapped else i), 0
            continue
        if is_marker(line) or _is_header_block(lines, i):
            return i, 0
        size = _attribution_size(lines, i)
        if size:
            if i and _wraps_into(lines[i - 1], line):
                return i - 1, size + 1  # "… Silva" <" / "meta@x.org> написал:"
            return i, size
    return len(lines), 0


def is_marker(line: str) -> bool:
    """A forward/original-message separator line."""
    if len(line) > 200:
        return False
    bare = line.strip().strip("*")
    return _MARKER.match(bare) is not None


def _attribution_size(lines: list[str], i: int) -> int:
    """How many lines (1–3) an "On … wrote:" style attribution takes at ``i``, else 0."""
    line = lines[i]
    if len(line) > 300 or not _colon_ends_one_of_three(lines, i):
        return 0  # every attribution ends with a colon: skip the regexes for most lines
    if _DATED_ATTRIBUTION.match(line):
        return 1
    if _ATTRIBUTION_START.match(line) and _ENDS_WITH_ADDRESS.search(line) and _DIGITS.search(line):
        return 1  # "Den 15. jun. 2016 kl. 20.42 skrev Jeff <jeff@x.org>:" (name after the verb)
    if _ATTRIBUTION_END.search(line):
        return int(bool(_ATTRIBUTION_START.match(line)) or _looks_dated(line))
    joined = line
    # Clients wrap long attributions: the address or "wrote:" lands on the next lines.
    for size in (2, 3):
        if i + size > len(lines) or len(lines[i + size - 1]) > 200 or not lines[i + size - 1]:
            return 0
        joined = f"{joined} {lines[i + size - 1]}"
        if _DATED_ATTRIBUTION.match(joined):
            return size
        if _ATTRIBUTION_END.search(joined) and _ATTRIBUTION_START.match(joined):
            return size * _looks_dated(joined)
    return 0


def _colon_ends_one_of_three(lines: list[str], i: int) -> bool:
    # One join and two searches in C: a generator over the three lines costs more.
    window = "\n".join(lines[i : i + 3]) + "\n"
    return ":\n" in window or "：\n" in window


def _wraps_into(previous: str, line: str) -> bool:
    """True when ``previous`` is the first half of an attribution wrapped at its address."""
    return bool(previous) and (previous.endswith("<") or bool(_ADDRESS_TAIL.match(line)))


def _looks_dated(line: str) -> bool:
    return bool(_DIGITS.search(line)) or "@" in line


def _is_header_block(lines: list[str], i: int) -> bool:
    """Outlook/Apple/Hotmail: a From: line with Sent:/Date:/Subject: lines around it."""
    if ":" not in lines[i] and "：" not in lines[i]:
        return False  # both patterns end in a colon: most lines need neither regex
    if _HEADER_FROM.match(lines[i]):
        return any(_HEADER_NEXT.match(line) for line in lines[i + 1 : i + 6])
    if not _HEADER_NEXT.match(lines[i]):
        return False
    # Hotmail starts the block with Date:/Subject:; demand a From: and three fields.
    window = lines[i : i + 6]
    has_from = any(_HEADER_FROM.match(line) for line in window)
    fields = sum(1 for line in window if _HEADER_FROM.match(line) or _HEADER_NEXT.match(line))
    return has_from and fields >= 3


def _separate_marked(lines: list[str]) -> tuple[list[str], list[str]]:
    """Interleaved replies: ``>`` lines are quoted, the lines between them are new."""
    fresh: list[str] = []
    quoted: list[str] = []
    for i, line in enumerate(lines):
        if not line.startswith(">"):
            fresh.append(line)
            continue
        if i and not lines[i - 1].startswith(">"):
            # A quote block starts: an attribution right above it belongs to it.
            if line.strip() in (">:", ">：") and "@" in lines[i - 1]:
                quoted.append(fresh.pop())  # "… <a@b.example" wrapped before its ">:"
            fresh, moved = _strip_trailing_attribution(fresh, [])
            quoted += moved
        quoted.append(line)
    return _strip_trailing_attribution(fresh, quoted)


def _strip_trailing_attribution(fresh: list[str], quoted: list[str]) -> tuple[list[str], list[str]]:
    # An attribution we could not recognise up front (wrapped, other languages) still ends
    # with a colon right above the quote: it belongs with the quote.
    while fresh and not fresh[-1]:
        fresh.pop()
    for size in (3, 2, 1):
        tail = fresh[-size:]
        joined = " ".join(tail)
        if len(fresh) < size or "" in tail or len(joined) > 300:
            continue
        if not joined.endswith((":", "：")):
            continue
        if _ATTRIBUTION_END.search(joined) or ("@" in joined and _DIGITS.search(joined)):
            return fresh[:-size], [*tail, *quoted]
    return fresh, quoted


def _split_signature(lines: list[str]) -> tuple[list[str], list[str]]:
    """Cut at a signature separator: "-- "/"--", or a rule (――――, ━━━━, ＝＝＝) near the end."""
    for i, line in enumerate(lines):
        if line in ("--", "-- "):
            return lines[:i], lines[i:]
        if i >= len(lines) - 2 and _MOBILE_SIGNATURE.match(line):
            return lines[:i], lines[i:]
    start = max(0, len(lines) - _SIG_MAX_LINES)
    rules = [i for i in range(start, len(lines)) if _SIG_DECORATION.match(lines[i])]
    # A single rule on the very last line closes nothing: it is decoration, not a signature.
    if not rules or rules == [len(lines) - 1] or rules[0] == 0:
        return lines, []
    # A rule can also underline a heading: only a block that reads like contact details
    # (or is boxed by a second rule) counts as a signature.
    block = "\n".join(lines[rules[0] + 1 :])
    if len(rules) < 2 and not _CONTACT.search(block):
        return lines, []
    return lines[: rules[0]], lines[rules[0] :]
