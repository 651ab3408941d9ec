"""Random hex read ahead: never the same bytes twice, in one process or across a fork."""

from __future__ import annotations

import os

from mailflow.randomness import READ_AHEAD, token_hex


def test_tokens_are_hex_of_the_length_asked_and_never_repeat() -> None:
    tokens = [token_hex(16) for _ in range(3 * READ_AHEAD // 16)]  # past several refills
    assert all(len(token) == 32 and int(token, 16) >= 0 for token in tokens)
    assert len(set(tokens)) == len(tokens)
    assert len(token_hex(READ_AHEAD + 1)) == 2 * (READ_AHEAD + 1)


def test_a_forked_child_does_not_hand_out_its_parents_bytes() -> None:
    token_hex(10)  # the parent now holds bytes read ahead
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:
        try:
            os.write(writer, token_hex(10).encode())
        finally:
            os._exit(0)
    os.close(writer)
    from_child = os.read(reader, 100).decode()
    os.close(reader)
    os.waitpid(child, 0)
    assert len(from_child) == 20
    assert from_child != token_hex(10)
