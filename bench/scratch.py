"""Scratch directories of the benchmarks, and why bench/run.py removes them only at the end.

On ext4 without a journal (the root file system of the VMs these benchmarks run on), the
inode allocator skips every inode freed in the last 60 s — 360 s once its inode-table block
is dirty again — and looks each one up to know: after one benchmark removes the 8,000 files
of its scratch tree, each file the next one creates (raw mail, attachments, the sent/
Maildir) costs ~0.5 ms instead of ~0.05 ms. That would measure the previous benchmark's
clean-up, not mailflow, so under bench/run.py (which sets ``MAILFLOW_BENCH_SCRATCH``) every
scratch directory is made under one root that run.py removes after the last benchmark; a
benchmark run alone removes its own.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT_VARIABLE = "MAILFLOW_BENCH_SCRATCH"


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
