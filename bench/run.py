"""Run every benchmark and write bench/out/REPORT.md: `make bench`.

    .venv/bin/python bench/run.py [--quick] [--only parse,ingest] [--timeout 1800]

Runs bench/parse.py, route.py, ingest.py, imap_drain.py, latency.py and scale.py one after
the other, each as a subprocess with its defaults (``--quick``: smaller sizes), and goes
on when one fails. Each writes bench/out/<name>.json; this collects them into
bench/out/REPORT.md: one markdown table per benchmark with its targets and pass/fail, the
machine it ran on, and the tail of the output of any benchmark that failed. Exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from scratch import ROOT_VARIABLE, SETTLED_VARIABLE, settle  # noqa: E402

OUT = HERE / "out"
REPORT = OUT / "REPORT.md"

# name → (arguments by default, arguments with --quick)
BENCHMARKS: dict[str, tuple[list[str], list[str]]] = {
    "parse": ([], ["--mix", "500", "--rounds", "1"]),
    "route": ([], ["--requests", "2000"]),
    "ingest": ([], ["--count", "300"]),
    "imap_drain": ([], ["--count", "300"]),
    "latency": ([], ["--mails", "10"]),
    "scale": ([], ["--quick"]),
}

Row = tuple[str, str, str, bool | None]  # measure, value, target, passed (None: no target)


def at_least(value: float, goal: float) -> bool:
    return value >= goal


def at_most(value: float, goal: float) -> bool:
    return value <= goal


def check(label: str, value: Any, unit: str, goal: float | None, compare: Any = None) -> Row:
    shown = f"{value:,}{unit}" if isinstance(value, int | float) else str(value)
    if goal is None or value is None:
        return (label, shown, "", None)
    sign = "≥" if compare is at_least else "≤"
    return (label, shown, f"{sign} {goal:,}{unit}", bool(compare(value, goal)))


def parse_rows(data: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    for rate in data["rates"]:
        name = f"{rate['set']} ({rate['messages']:,} mails)"
        rows.append(check(f"parse+classify, {name}", rate["ours_msgs_per_s"], " /s", None))
        rows.append(check(f"bare stdlib, {name}", rate["stdlib_msgs_per_s"], " /s", None))
        rows.append(check(f"ratio, {name}", rate["ratio"], "×", 1.0, at_least))
    memory = data["memory"]
    rows.append(check("peak memory / size, 25 MB mail", memory["peak_ratio"], "×", 4, at_most))
    return rows


def route_rows(data: dict[str, Any]) -> list[Row]:
    return [
        check("routing decisions", data["route_per_s"], " /s", 10_000, at_least),
        check("member choice", data["choose_member_per_s"], " /s", None),
        check("route + assign", data["route_and_assign_per_s"], " /s", None),
        check("bare keyword scan", data["bare_keyword_scan_per_s"], " /s", None),
        check("ratio routing / bare scan", data["ratio_route_to_bare"], "×", None),
    ]


def ingest_rows(data: dict[str, Any]) -> list[Row]:
    return [
        check(
            f"`mailflow ingest`, {data['messages']:,} mails",
            data["ingest_per_s"],
            " /s",
            300,
            at_least,
        ),
        check("bare stdlib parse", data["stdlib_parse_per_s"], " /s", None),
        check("ratio", data["ratio"], "×", 1.0, at_least),
        *round_rows(data, "ingest_per_s", "stdlib_per_s", " /s"),
    ]


def round_rows(data: dict[str, Any], ours: str, bare: str, unit: str) -> list[Row]:
    """Each side's rounds, in the order they ran (the best of each is compared above)."""
    rounds = data.get("rounds")
    if not rounds:
        return []
    shown = [", ".join(f"{value:,}" for value in rounds[key]) + unit for key in (ours, bare)]
    return [("rounds: mailflow", shown[0], "", None), ("rounds: bare", shown[1], "", None)]


def imap_drain_rows(data: dict[str, Any]) -> list[Row]:
    return [
        check(
            f"`mailflow run --once`, {data['messages']:,} mails",
            data["mailflow_per_s"],
            " /s",
            None,
        ),
        check("bare imapclient fetch + stdlib parse", data["bare_per_s"], " /s", None),
        check("ratio", data["ratio"], "×", 1.0, at_least),
        *round_rows(data, "mailflow_seconds", "bare_seconds", " s"),
        check("requests opened", data["requests"], "", data["messages"], at_least),
        check("left in INBOX", data["left_in_inbox"], "", 0, at_most),
    ]


def latency_rows(data: dict[str, Any]) -> list[Row]:
    ours, bare = data["mailflow"], data["bare"]
    return [
        check("p50", ours.get("p50_s"), " s", None),
        check(
            f"p95 over {data['mails']} mails",
            ours.get("p95_s"),
            " s",
            data["target_p95_s"],
            at_most,
        ),
        check("max", ours.get("max_s"), " s", None),
        check(f"missed (> {data['timeout_s']:g} s)", ours["missed"], "", 0, at_most),
        check(
            "bare IDLE + parse + smtplib: p50 / p95",
            f"{bare.get('p50_s')} / {bare.get('p95_s')} s",
            "",
            None,
        ),
        check("ratio of p95 to bare", data["ratio_p95"], "×", None),
    ]


def scale_rows(data: dict[str, Any]) -> list[Row]:
    targets = data["targets"]
    rows: list[Row] = []
    if "backlog" in data:
        b = data["backlog"]
        rows += [
            check(
                f"backlog of {b['messages']:,} mails (attachments {b['attachment_kb']} KB)",
                f"{b['seconds']} s ({b['per_s']} /s)",
                "",
                None,
            ),
            check(
                "peak RSS (sum over the process tree)",
                b["peak_rss_mb"],
                " MB",
                targets["peak_rss_mb"],
                at_most,
            ),
            check(
                "process time, second half / first",
                b["process_time_ratio"],
                "×",
                targets["time_ratio"],
                at_most,
            ),
        ]
    if "digests" in data:
        d = data["digests"]
        rows += [
            check(
                f"director's digest, {d['open_requests']:,} open requests (first call)",
                d["digest_preview_first_s"],
                " s",
                targets["digest_s"],
                at_most,
            ),
            check(f"full tick ({d['tick_outbox_rows']} mails queued)", d["tick_s"], " s", None),
        ]
    if "postgres" in data:
        p = data["postgres"]
        rows += [
            check(
                f"PostgreSQL, one daemon, {p['messages']:,} mails",
                p["one_daemon"]["per_s"],
                " /s",
                None,
            ),
            check("PostgreSQL, two daemons", p["two_daemons"]["per_s"], " /s", None),
            check("speed-up", p["speedup"], "×", targets["speedup"], at_least),
            check(
                "daemons that failed and were started again",
                len(p["one_daemon"]["restarts"]) + len(p["two_daemons"]["restarts"]),
                "",
                0,
                at_most,
            ),
        ]
        for error in p["one_daemon"]["restarts"] + p["two_daemons"]["restarts"]:
            rows.append(("failed daemon", f"`{error}`", "", None))
    for part, error in data.get("errors", {}).items():
        first = error.strip().splitlines()[0] if error.strip() else error
        rows.append((f"part {part}", f"failed: `{first[:300]}`", "", False))
    return rows


TABLES: dict[str, Callable[[dict[str, Any]], list[Row]]] = {
    "parse": parse_rows,
    "route": route_rows,
    "ingest": ingest_rows,
    "imap_drain": imap_drain_rows,
    "latency": latency_rows,
    "scale": scale_rows,
}


def run_one(name: str, arguments: list[str], timeout: float, env: dict[str, str]) -> dict[str, Any]:
    """Run bench/<name>.py; return its JSON or what went wrong."""
    target = OUT / f"{name}.json"
    target.unlink(missing_ok=True)
    command = [sys.executable, str(HERE / f"{name}.py"), *arguments]
    started = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
        code, output = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired as expired:
        code, output = -1, f"timed out after {timeout:g} s\n{expired.stdout or ''}"
    seconds = time.perf_counter() - started
    (OUT / f"{name}.txt").write_text(output, encoding="utf-8")
    outcome: dict[str, Any] = {
        "name": name,
        "command": command[1:],
        "exit": code,
        "seconds": round(seconds, 1),
        "output": output,
    }
    if code == 0 and target.exists():
        outcome["data"] = json.loads(target.read_text(encoding="utf-8"))
    return outcome


def machine() -> list[str]:
    def first_line(command: list[str]) -> str:
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=10)
            return (done.stdout or done.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.SubprocessError):
            return "not found"

    cpu = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        models = [
            ln.split(":", 1)[1].strip()
            for ln in cpuinfo.read_text().splitlines()
            if ln.startswith("model name")
        ]
        cpu = models[0] if models else cpu
    return [
        f"- date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- nproc: {os.cpu_count()} ({cpu})",
        f"- python: {platform.python_version()} ({platform.platform()})",
        f"- dovecot: {first_line(['dovecot', '--version'])}",
        f"- postgresql client: {first_line(['psql', '--version'])}",
    ]


def table(outcome: dict[str, Any]) -> list[str]:
    name = outcome["name"]
    lines = [f"## {name}", "", f"`{' '.join(outcome['command'])}` — {outcome['seconds']} s", ""]
    if "data" not in outcome:
        tail = "\n".join(outcome["output"].strip().splitlines()[-25:])
        return [*lines, f"**failed** (exit {outcome['exit']}):", "", "```", tail, "```", ""]
    try:
        rows = TABLES[name](outcome["data"])
    except (KeyError, TypeError) as error:
        rows = [("report", f"unexpected JSON: {error!r}", "", False)]
    lines += ["| measure | value | target | result |", "|---|---:|---:|---|"]
    for label, value, goal, passed in rows:
        verdict = "—" if passed is None else ("pass" if passed else "**FAIL**")
        lines.append(f"| {label} | {value} | {goal} | {verdict} |")
    return [*lines, ""]


def report(outcomes: list[dict[str, Any]], quick: bool) -> str:
    verdicts = []
    for outcome in outcomes:
        rows = TABLES[outcome["name"]](outcome["data"]) if "data" in outcome else []
        failed = "data" not in outcome or any(passed is False for *_, passed in rows)
        verdicts.append(f"{outcome['name']}: {'FAIL' if failed else 'pass'}")
    lines = [
        "# mailflow benchmarks",
        "",
        "Written by `make bench` (bench/run.py)"
        + (" with --quick (small sizes)." if quick else "."),
        "Each figure is measured next to its bare limit in the same run; see each script's",
        "docstring for what is measured.",
        "",
        *machine(),
        "",
        "Summary: " + "; ".join(verdicts),
        "",
    ]
    for outcome in outcomes:
        lines += table(outcome)
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, a few minutes")
    parser.add_argument("--only", default="", help="comma-separated names (all)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per benchmark")
    args = parser.parse_args()
    names = [n for n in args.only.split(",") if n] or list(BENCHMARKS)
    unknown = set(names) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    OUT.mkdir(exist_ok=True)
    # Compiled as an installed package is (pip compiles on install): start-up then does
    # not include compiling mailflow/ again in each `mailflow` process measured.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(HERE.parent / "mailflow")])
    outcomes = []
    # One scratch root for all, removed after the last benchmark (why: bench/scratch.py).
    root = tempfile.mkdtemp(prefix="mfb-")
    os.chmod(root, 0o755)  # Dovecot's unprivileged processes reach their files through it
    settle()  # (why: bench/scratch.py)
    env = {**os.environ, ROOT_VARIABLE: root, "TMPDIR": root, SETTLED_VARIABLE: "1"}
    try:
        for name in names:
            default, quick = BENCHMARKS[name]
            print(f"running {name} …", flush=True)
            outcome = run_one(name, quick if args.quick else default, args.timeout, env)
            print(f"  exit {outcome['exit']} after {outcome['seconds']} s", flush=True)
            outcomes.append(outcome)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    text = report(outcomes, args.quick)
    REPORT.write_text(text + "\n", encoding="utf-8")
    print(f"\n{text}\nwrote {REPORT.relative_to(HERE.parent)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
