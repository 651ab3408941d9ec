"""Scratch directories of the benchmarks, and why bench/run.py removes them only at the end.

On ext4 without a journal (the root file system of the VMs these benchmarks run on), the
inode allocator skips every inode freed in the last 60 s — 360 s once its inode-table block
is dirty again — and looks each one up to know: after one benchmark removes the 8,000 files
of its scratch tree, each file the next one creates (raw mail, attachments, the sent/
Maildir) costs ~0.5 ms instead of ~0.05 ms. That would measure the previous benchmark's
clean-up, not mailflow, so under bench/run.py (which sets ``MAILFLOW_BENCH_SCRATCH``) every
scratch directory is made under one root that run.py removes after the last benchmark; a
benchmark run alone removes its own.

What ran before the benchmarks matters as much: right after a test run removed ~30,000
files, creating files cost 600–900 µs each, and 35 µs after ``sync`` and a minute's wait
(measured on this VM). So the benchmarks that create files first let the file system
forget recent deletions (``settle``): once per ``make bench``, or per benchmark run alone.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT_VARIABLE = "MAILFLOW_BENCH_SCRATCH"
SETTLED_VARIABLE = "MAILFLOW_BENCH_SETTLED"
# How long ext4 without a journal treats a deleted inode (whose table block is written
# back: hence the sync) as recently deleted, and a second more.
RECENTLY_DELETED_S = 61


def settle() -> None:
    """Sync, then wait until no inode counts as recently deleted (once per process tree:
    bench/run.py settles before the first benchmark, for all of them)."""
    if os.environ.get(SETTLED_VARIABLE):
        return
    print(f"letting the file system forget recent deletions ({RECENTLY_DELETED_S} s) …", flush=True)
    os.sync()
    time.sleep(RECENTLY_DELETED_S)
    os.environ[SETTLED_VARIABLE] = "1"


def scratch_dir(prefix: str = "mailflow-bench-", within: Path | None = None) -> Path:
    root = within or os.environ.get(ROOT_VARIABLE) or None
    return Path(tempfile.mkdtemp(prefix=prefix, dir=root))


def remove(*paths: Path) -> None:
    """Remove now, or leave to bench/run.py when it owns the scratch root."""
    if os.environ.get(ROOT_VARIABLE):
        return
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)


@contextmanager
def scratch(prefix: str = "mailflow-bench-") -> Iterator[Path]:
    directory = scratch_dir(prefix)
    try:
        yield directory
    finally:
        remove(directory)
