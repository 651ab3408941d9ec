"""The #tag grammar: aliases, several per mail, text bodies, what is not a command."""

from __future__ import annotations

import pytest

from mailflow.commands import read_commands


@pytest.mark.parametrize(
    ("text", "name", "argument"),
    [
        ("#assign sato", "assign", "sato"),
        ("#担当 sato", "assign", "sato"),
        ("＃担当　sato", "assign", "sato"),
        ("#納期 来週金曜", "due", "来週金曜"),
        ("#due 12/3 15:00", "due", "12/3 15:00"),
        ("#承認 いい出来です", "approve", "いい出来です"),
        ("#修正 表の列を直してください", "revise", "表の列を直してください"),
        ("#質問 対象は何社ですか", "ask", "対象は何社ですか"),
        ("#見積 1時間30分", "estimate", "1時間30分"),
        ("#完了 1.5h", "done", "1.5h"),
        ("#DONE", "done", ""),
        ("#hold", "hold", ""),
        ("#再開", "resume", ""),
        ("#close", "close", ""),
        ("#reject 対応範囲外のため", "reject", "対応範囲外のため"),
        ("#priority high", "priority", "high"),
        ("#skill translation", "skill", "translation"),
        ("#メモ 先方は午前中のみ連絡可", "note", "先方は午前中のみ連絡可"),
    ],
)
def test_each_command_and_alias(text: str, name: str, argument: str) -> None:
    [command] = read_commands(text).commands
    assert (command.name, command.argument) == (name, argument)


def test_several_commands_then_the_body() -> None:
    block = read_commands("\n\n#担当 sato\n#納期 12/3\n#priority high\n\nよろしくお願いします。\n")
    assert [c.name for c in block.commands] == ["assign", "due", "priority"]
    assert block.body == "よろしくお願いします。"


def test_a_text_command_alone_takes_the_text_below() -> None:
    block = read_commands("#修正\n1. 列の順番を変える\n2. 合計行を足す\n")
    [command] = block.commands
    assert command.name == "revise"
    assert command.argument == "1. 列の順番を変える\n2. 合計行を足す"


def test_done_keeps_its_hours_and_the_body_is_the_delivery_note() -> None:
    block = read_commands("#完了 2h\n納品します。ご確認ください。")
    assert block.commands[0].argument == "2h"
    assert block.body == "納品します。ご確認ください。"


def test_only_the_top_counts_and_numbers_are_not_commands() -> None:
    assert not read_commands("お疲れ様です。\n#承認\n")
    assert not read_commands("#1 の件ですが")
    unknown = read_commands("#frobnicate now").commands[0]
    assert not unknown.known and unknown.line == "#frobnicate now"
