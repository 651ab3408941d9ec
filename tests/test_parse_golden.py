"""Golden tests: the new text the quote splitter keeps for the corpus's reply samples.

Each body-only sample of the shared corpus (email_reply_trimmer, github/email_reply_parser,
mail-parser-reply, and talon's HTML bodies) has its expected new text stored in
``tests/golden/<folder>/<file>.txt``. The files were generated once with the parser and then
read one by one; where the output was wrong the parser was fixed, not the file.

Regenerate after a deliberate change with
``MAILFLOW_UPDATE_GOLDEN=1 pytest tests/test_parse_golden.py`` and read the diff
before committing it.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

from mailflow.parse import decode_bytes, html_to_text, split_quoted

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
GOLDEN = Path(__file__).resolve().parent / "golden"
UPDATE = os.environ.get("MAILFLOW_UPDATE_GOLDEN") == "1"


def _samples() -> list[str]:
    manifest = CORPUS / "MANIFEST.tsv"
    if not manifest.is_file():
        return []
    with manifest.open(encoding="utf-8", newline="") as handle:
        rows = csv.DictReader(handle, delimiter="\t")
        return [row["path"] for row in rows if row["format"] == "body-only"]


def new_text(raw: bytes, path: str) -> str:
    """What the pipeline would take as the sender's new words in this body."""
    text = decode_bytes(raw, None)
    if path.endswith(".html"):
        text = html_to_text(text)
    return split_quoted(text)[0]


SAMPLES = _samples()


@pytest.mark.skipif(not SAMPLES, reason=f"shared corpus not found at {CORPUS} (CI has it)")
@pytest.mark.parametrize("path", SAMPLES or ["-"])
def test_reply_sample_new_text(path: str) -> None:
    got = new_text((CORPUS / path).read_bytes(), path)
    golden = GOLDEN / f"{path}.txt"
    if UPDATE:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(got + "\n", encoding="utf-8")
    assert golden.is_file(), f"no golden file {golden}: run with MAILFLOW_UPDATE_GOLDEN=1"
    assert got == golden.read_text(encoding="utf-8").removesuffix("\n")


def test_every_sample_has_a_golden_file() -> None:
    if not SAMPLES:
        pytest.skip(f"shared corpus not found at {CORPUS} (CI has it)")
    stored = {p.relative_to(GOLDEN).as_posix().removesuffix(".txt") for p in GOLDEN.rglob("*.txt")}
    assert stored == set(SAMPLES)
