"""Random hex for Message-IDs and MIME boundaries: the kernel's random bytes, read ahead.

Each ``os.urandom`` call lets go of the GIL. With another thread of the process busy (a
crew worker's file thread, the queue feeder of the process that accepts), taking it back
cost more than the token: ~3 % of a worker's time for two letters a mail. The bytes are
the same (getrandom), read 4 KB at a time; a forked child drops what its parent read
ahead, so no two processes ever hand out the same bytes.
"""

from __future__ import annotations

import os
import threading

READ_AHEAD = 4096


class _ReadAhead:
    def __init__(self) -> None:
        self._forget()

    def _forget(self) -> None:
        # (A new lock too: a thread of the parent may have held the old one at the fork.)
        self._lock = threading.Lock()
        self._bytes = b""
        self._taken = 0

    def take(self, count: int) -> bytes:
        with self._lock:
            if self._taken + count > len(self._bytes):
                self._bytes = os.urandom(max(READ_AHEAD, count))
                self._taken = 0
            start = self._taken
            self._taken += count
            return self._bytes[start : self._taken]


_AHEAD = _ReadAhead()
os.register_at_fork(after_in_child=_AHEAD._forget)


def token_hex(count: int) -> str:
    """``count`` random bytes as hex (like ``secrets.token_hex``)."""
    return _AHEAD.take(count).hex()
