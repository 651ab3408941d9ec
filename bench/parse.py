"""Benchmark: parse_mail + classify against the bare stdlib, on the same bytes, same run.

    .venv/bin/python bench/parse.py [--mix N] [--rounds R] [--profile]

Prints a markdown table (messages per second for the shared corpus and for a generated
mix, next to ``email.message_from_bytes(policy=default)`` + ``get_body`` + ``get_content``
+ every attachment's ``get_content``) and the peak memory of parsing one 25 MB message,
and writes the figures to ``bench/out/parse.json``. A benchmark, not a timed test.
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import csv
import email
import email.policy
import gc
import json
import platform
import pstats
import re
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(HERE)]

from mixgen import generate  # noqa: E402

from mailflow.classify import classify  # noqa: E402
from mailflow.errors import ProcessingError  # noqa: E402
from mailflow.parse import parse_mail  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpus"
OUT = HERE / "out" / "parse.json"
_MBOX_SPLIT = re.compile(rb"(?m)^(?=From )")


def ours(raw: bytes) -> None:
    try:
        mail = parse_mail(raw)
    except ProcessingError:
        return
    classify(mail, desk_domain="secretary.example", desk_address="desk@secretary.example")


def stdlib(raw: bytes) -> None:
    """What a straightforward help desk does with the standard library."""
    try:
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        body = msg.get_body(("plain", "html"))
        if body is not None:
            body.get_content()
        for part in msg.iter_attachments():
            part.get_content()
    except Exception:  # noqa: BLE001 - the stdlib raises anything on hostile mail
        return


def corpus_messages() -> list[bytes]:
    manifest = CORPUS / "MANIFEST.tsv"
    if not manifest.is_file():
        return []
    found: list[bytes] = []
    with manifest.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            if row["format"] == "body-only":
                continue
            raw = (CORPUS / row["path"]).read_bytes()
            if row["format"] == "mbox":
                found += [part for part in _MBOX_SPLIT.split(raw) if part.strip()]
            elif raw.strip():
                found.append(raw)
    return found


def rate(function: Callable[[bytes], None], messages: list[bytes], rounds: int) -> float:
    """Best of ``rounds`` passes, in messages per second."""
    best = float("inf")
    for _ in range(rounds):
        gc.collect()
        started = time.perf_counter()
        for raw in messages:
            function(raw)
        best = min(best, time.perf_counter() - started)
    return len(messages) / best


def big_message(size: int = 25 * 1024 * 1024) -> bytes:
    """One mail whose base64 attachment makes it ``size`` bytes in total."""
    payload = bytes(range(256)) * ((size * 3 // 4) // 256)
    encoded = base64.encodebytes(payload).replace(b"\n", b"\r\n")
    head = (
        b"From: yamada@acme.example\r\nTo: desk@secretary.example\r\nSubject: big\r\n"
        b"Message-ID: <big@acme.example>\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="B"\r\n\r\n--B\r\n'
        b"Content-Type: text/plain; charset=utf-8\r\n\r\nsee attached\r\n--B\r\n"
        b'Content-Type: application/pdf\r\nContent-Disposition: attachment; filename="big.pdf"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\n"
    )
    return head + encoded + b"\r\n--B--\r\n"


def peak_memory(raw: bytes) -> int:
    """Peak bytes allocated while parsing ``raw`` (the input itself not counted)."""
    gc.collect()
    tracemalloc.start()
    tracemalloc.reset_peak()
    mail = parse_mail(raw)
    _current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del mail
    return peak


def profile(messages: list[bytes]) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    for raw in messages:
        ours(raw)
    profiler.disable()
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--mix", type=int, default=2000, help="generated messages (2000)")
    parser.add_argument("--rounds", type=int, default=3, help="passes, best one counts (3)")
    parser.add_argument("--profile", action="store_true", help="cProfile ours on the mix")
    args = parser.parse_args()

    mix = generate(args.mix, seed=1)
    if args.profile:
        profile(mix)
        return 0
    sets = {"generated mix": mix, "shared corpus": corpus_messages()}
    rows: list[dict[str, Any]] = []
    for name, messages in sets.items():
        if not messages:
            continue
        ours_rate = rate(ours, messages, args.rounds)
        stdlib_rate = rate(stdlib, messages, args.rounds)
        rows.append(
            {
                "set": name,
                "messages": len(messages),
                "megabytes": round(sum(map(len, messages)) / 1e6, 1),
                "ours_msgs_per_s": round(ours_rate),
                "stdlib_msgs_per_s": round(stdlib_rate),
                "ratio": round(ours_rate / stdlib_rate, 2),
            }
        )
    big = big_message()
    peak = peak_memory(big)
    memory = {
        "message_bytes": len(big),
        "peak_bytes": peak,
        "peak_ratio": round(peak / len(big), 2),
    }

    print("| set | messages | MB | parse+classify msgs/s | stdlib msgs/s | ratio |")
    print("|---|---:|---:|---:|---:|---:|")
    for row in rows:
        print(
            f"| {row['set']} | {row['messages']} | {row['megabytes']} | {row['ours_msgs_per_s']} "
            f"| {row['stdlib_msgs_per_s']} | {row['ratio']}× |"
        )
    print(
        f"\nPeak memory parsing one {len(big) / 2**20:.1f} MiB message: "
        f"{peak / 2**20:.1f} MiB ({memory['peak_ratio']}× its size; target < 4×)"
    )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    result = {"python": platform.python_version(), "rates": rows, "memory": memory}
    OUT.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
