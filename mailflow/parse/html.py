"""HTML → readable plain text with the stdlib parser.

Only what the pipeline needs: the words a person wrote, line breaks where blocks end,
``> `` before blockquoted lines (so the quote splitter sees Gmail/Thunderbird quotes), and
no script, style or hidden preheader text.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

_SKIP = frozenset({"script", "style", "head", "title", "template", "noscript", "xml"})
_BLOCK = frozenset(
    {
        "p", "div", "tr", "table", "ul", "ol", "li", "h1", "h2", "h3", "h4", "h5", "h6",
        "pre", "hr", "section", "article", "header", "footer", "dl", "dt", "dd", "address",
        "center", "form", "blockquote", "figure", "caption", "tbody", "thead", "main", "nav",
    }
)  # fmt: skip
_PARAGRAPH = frozenset({"p", "h1", "h2", "h3", "h4", "h5", "h6", "table", "pre", "ul", "ol"})
_VOID = frozenset(
    {"br", "img", "hr", "meta", "link", "input", "col", "area", "base", "wbr", "source"}
)
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.IGNORECASE)
_SPACES = re.compile(r"[ \t\r\n\f\u200b]+")
# A line break in the source between two East Asian wide characters: HTML writers wrap
# Japanese lines anywhere, and a browser joins them without a space (CSS Text 3, segment
# break transformation). Hangul is written with spaces, so it is left out.
_WIDE = (
    "\u2e80-\u303e\u3041-\u33ff\u3400-\u4dbf\u4e00-\u9fff"  # CJK, kana, punctuation
    "\uf900-\ufaff\ufe30-\ufe4f\uff01-\uff9f\uffe0-\uffe6"  # compatibility, full/half width
)
_WIDE_BREAK = re.compile(f"(?<=[{_WIDE}])[ \\t\\f]*[\\r\\n][ \\t\\r\\n\\f]*(?=[{_WIDE}])")
_MAX_DEPTH = 2000


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self.current: list[str] = []
        # Each open element: (tag, skipped, quoted, preformatted); counters avoid rescans.
        self.stack: list[tuple[str, bool, bool, bool]] = []
        self.skip = 0
        self.quote = 0
        self.pre = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self._newline(force=True)
            return
        if tag in _BLOCK:
            self._newline()
        if tag == "li" and not self.skip:
            self.current.append("- ")
        if tag in ("td", "th") and self.current:
            self.current.append(" ")
        if tag in _VOID or len(self.stack) >= _MAX_DEPTH:
            return
        style = next((v or "" for k, v in attrs if k == "style"), "")
        hidden = tag in _SKIP or any(k == "hidden" for k, _ in attrs)
        hidden = hidden or bool(_HIDDEN_STYLE.search(style))
        entry = (tag, hidden, tag == "blockquote", tag == "pre")
        self._count(entry, 1)
        self.stack.append(entry)

    def handle_endtag(self, tag: str) -> None:
        if tag in _BLOCK:
            self._newline()
        if tag in _PARAGRAPH:
            self.lines.append("")
        if not any(entry[0] == tag for entry in self.stack[-50:]):
            return  # a stray end tag: ignore rather than unwind everything
        while self.stack:
            entry = self.stack.pop()
            self._count(entry, -1)
            if entry[0] == tag:
                break

    def _count(self, entry: tuple[str, bool, bool, bool], step: int) -> None:
        self.skip += step * entry[1]
        self.quote += step * entry[2]
        self.pre += step * entry[3]

    def handle_data(self, data: str) -> None:
        if self.skip:
            return
        if self.pre:
            parts = data.replace("\r\n", "\n").split("\n")
            for i, part in enumerate(parts):
                if i:
                    self._newline()
                self.current.append(part)
            return
        self.current.append(data)

    def _newline(self, *, force: bool = False) -> None:
        # Whitespace is collapsed per line, not per piece of text: a break between wide
        # characters may fall between two pieces ("お世話に\n<b>なって</b>").
        line = "".join(self.current)
        line = line.rstrip() if self.pre else _SPACES.sub(" ", _WIDE_BREAK.sub("", line)).strip()
        self.current = []
        if not line and not force:
            return  # block boundaries only end lines; <br> and </p> make blank ones
        prefix = "> " * self.quote
        self.lines.append((prefix + line).rstrip() if line or prefix else "")

    def text(self) -> str:
        self._newline()
        return _squeeze(self.lines)


def _squeeze(lines: list[str]) -> str:
    """Collapse runs of blank lines (block ends pile them up) to one."""
    out: list[str] = []
    for line in lines:
        blank = not line or set(line) <= {">", " "}
        if blank and (not out or not out[-1] or set(out[-1]) <= {">", " "}):
            continue
        out.append(line.rstrip())
    return "\n".join(out).strip("\n")


def html_to_text(source: str) -> str:
    """Readable text from an HTML body; never raises on malformed markup."""
    extractor = _TextExtractor()
    try:
        extractor.feed(source)
        extractor.close()
    except (AssertionError, ValueError):  # very old html.parser paths on broken markup
        pass
    return extractor.text()
