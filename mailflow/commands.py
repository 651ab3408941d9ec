"""The #tag grammar of DESIGN §4: lines at the top of the new text → Command values.

Pure. Reading a command never judges it: whether the sender may give it, and whether
its argument makes sense now, is the workflow's business (it answers with a receipt).

    #assign sato            #担当 sato
    #due 12/3               #納期 来週金曜
    #approve いい出来です     #承認
    #revise 表の列を…         #修正 …
    #done 1.5h              #完了 90分

A command's argument is the rest of its line; a text-taking command written alone on its
line (``#revise`` then the feedback below) takes the text that follows the command block.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

# Canonical name → the words that call it (lower-case; Japanese aliases included).
ALIASES: dict[str, tuple[str, ...]] = {
    "assign": ("assign", "担当", "アサイン"),
    "due": ("due", "納期", "期限", "締切"),
    "approve": ("approve", "承認", "ok"),
    "revise": ("revise", "修正", "差し戻し", "差戻し"),
    "ask": ("ask", "質問", "確認"),
    "estimate": ("estimate", "見積", "見積もり", "見積り"),
    "done": ("done", "完了", "納品"),
    "hold": ("hold", "保留"),
    "resume": ("resume", "再開"),
    "close": ("close", "クローズ", "終了"),
    "reject": ("reject", "却下", "お断り", "辞退"),
    "priority": ("priority", "優先度", "優先"),
    "skill": ("skill", "スキル"),
    "note": ("note", "メモ", "備考"),
}
_BY_WORD = {word: name for name, words in ALIASES.items() for word in words}

# Commands whose argument is free text: written alone on a line, they take the body.
TEXT_COMMANDS = frozenset({"approve", "revise", "ask", "reject", "note", "done"})

_COMMAND_LINE = re.compile(r"^[#＃]\s?(\S+)(?:[ \t\u3000]+(.*))?$")


@dataclass(frozen=True)
class Command:
    name: str  # canonical name, or "" when the word is not a command
    argument: str
    line: str  # as written, for receipts

    @property
    def known(self) -> bool:
        return bool(self.name)


@dataclass(frozen=True)
class CommandBlock:
    """The commands at the top of a mail and the text that follows them."""

    commands: tuple[Command, ...]
    body: str

    def __bool__(self) -> bool:
        return bool(self.commands)

    def named(self, name: str) -> Command | None:
        return next((command for command in self.commands if command.name == name), None)


def read_commands(text: str) -> CommandBlock:
    """The command block at the top of ``text`` (leading blank lines skipped)."""
    lines = text.replace("\r\n", "\n").split("\n")
    index = 0
    while index < len(lines) and not lines[index].strip():
        index += 1
    commands: list[Command] = []
    while index < len(lines):
        command = _read_line(lines[index])
        if command is None:
            break
        commands.append(command)
        index += 1
    body = "\n".join(lines[index:]).strip()
    return CommandBlock(_with_body(commands, body), body)


def _read_line(line: str) -> Command | None:
    stripped = line.strip()
    found = _COMMAND_LINE.match(stripped)
    if not found:
        return None
    word = unicodedata.normalize("NFKC", found.group(1)).lower().rstrip(":：")
    if not word or word[0].isdigit():
        return None  # "#1" is a list item or an issue number, not a command
    argument = (found.group(2) or "").strip()
    return Command(_BY_WORD.get(word, ""), argument, stripped)


def _with_body(commands: list[Command], body: str) -> tuple[Command, ...]:
    """A text command written alone takes the text below the block (the last one does)."""
    if not body:
        return tuple(commands)
    for position in range(len(commands) - 1, -1, -1):
        command = commands[position]
        if command.name in TEXT_COMMANDS and command.name != "done" and not command.argument:
            commands[position] = Command(command.name, body, command.line)
            break
    return tuple(commands)


def known_commands() -> str:
    """The command words for a receipt that refuses an unknown one."""
    return ", ".join(f"#{name}" for name in ALIASES)
