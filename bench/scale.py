"""Benchmark: a 20,000-mail backlog, digests over 10,000 open requests, two daemons on PostgreSQL.

    .venv/bin/python bench/scale.py [--quick] [--parts abc] [--backlog 20000]
                                    [--open-requests 10000] [--pg-backlog 3000]

(a) **Backlog**: the bench/mixgen.py mix (Delta's contacts, as in bench/ingest.py) with the
    200 KB attachments shrunk to ``--attachment-kb`` (2 KB by default, to keep disk use
    small; every tenth mail is still multipart with an attachment), drained by one
    `mailflow ingest DIR` process on SQLite. Its RSS is read from /proc/<pid>/status
    (VmRSS, VmHWM) every 50 ms; the store is read from outside to time when half and all
    of the mail was accepted and processed. Targets: peak RSS ≤ 200 MB (summed over the
    process and its workers); processing the second half of the mail takes about as long
    as the first (ratio ≤ 1.25, timed from the first processed mail).
(b) **Digests**: an instance with ``--open-requests`` open requests (the same mix through
    `mailflow ingest`), then in-process ``Service(home).scheduler.digest_preview(director)``
    and a full ``scheduler.tick(at)`` at the next business day's digest time, which renders
    and queues every digest. Target: the director's digest in ≤ 2 s.
(c) **PostgreSQL**: ``--pg-backlog`` accepted mails on a private database (created and
    dropped here), processed by one `mailflow run --once`, then, after a reset, by two
    concurrent ones. Target: speed-up ≥ 1.5×.

``--quick`` makes every part about ten times smaller. Prints markdown tables and writes
bench/out/scale.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(HERE), str(ROOT / "tests")]

import mixgen  # noqa: E402
from imap_drain import MAILFLOW, delta_mix, mailflow, make_instance  # noqa: E402
from scratch import remove, scratch_dir, settle  # noqa: E402

OUT = HERE / "out" / "scale.json"
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
DIRECTOR = "ito@secretary.example"  # Delta's director: every generated request is theirs.
TARGETS = {"peak_rss_mb": 200, "time_ratio": 1.25, "digest_s": 2.0, "speedup": 1.5}


def write_backlog(directory: Path, count: int, seed: int, attachment_kb: int) -> float:
    """The mix as .eml files; returns megabytes written."""
    mixgen.ATTACHMENT_SIZE = attachment_kb * 1024
    directory.mkdir(parents=True)
    size = 0
    for index, raw in enumerate(delta_mix(count, seed)):
        (directory / f"{index:05d}.eml").write_bytes(raw)
        size += len(raw)
    return size / 1e6


# -- (a) the backlog --------------------------------------------------------------------


class Watcher(threading.Thread):
    """Samples the memory of a process and its children (mailflow may fork workers) and
    the store's progress until the process ends."""

    def __init__(self, pid: int, db: Path, count: int) -> None:
        super().__init__(name="watcher", daemon=True)
        self.pid, self.db, self.count = pid, db, count
        self.started = time.monotonic()
        self.peak_kb = 0  # the highest VmHWM of any one process of the tree
        self.peak_total_kb = 0  # the highest sampled sum of VmRSS over the tree
        self.processes = 0
        self.last_kb = 0
        self.marks: dict[str, float] = {}
        self.rss_at: dict[str, int] = {}

    def run(self) -> None:
        last_db = 0.0
        seen: set[int] = set()
        while (main := read_status(self.pid)) is not None:
            now = time.monotonic() - self.started
            tree = [main, *filter(None, map(read_status, children(self.pid)))]
            seen.update(status["pid"] for status in tree)
            total = sum(status.get("VmRSS", 0) for status in tree)
            self.peak_kb = max(self.peak_kb, *(status.get("VmHWM", 0) for status in tree))
            self.peak_total_kb = max(self.peak_total_kb, total)
            self.last_kb = total
            if now - last_db >= 0.2:
                last_db = now
                self.progress(now, total)
            time.sleep(0.05)
        self.processes = len(seen)

    def progress(self, now: float, rss: int) -> None:
        accepted, processed = store_progress(self.db)
        half = self.count // 2
        for name, value, goal in (
            ("accepted_first", accepted, 1),
            ("accepted_half", accepted, half),
            ("accepted_all", accepted, self.count),
            ("processed_first", processed, 1),
            ("processed_half", processed, half),
            ("processed_all", processed, self.count),
        ):
            if value >= goal and name not in self.marks:
                self.marks[name] = now
                self.rss_at[name] = rss


def read_status(pid: int) -> dict[str, int] | None:
    """pid, VmRSS and VmHWM (kB) from /proc/<pid>/status; None once the process is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    found = dict(re.findall(r"^(VmRSS|VmHWM):\s+(\d+) kB", text, re.M))
    if not found:  # a zombie: exited, not yet reaped
        return None
    return {"pid": pid, **{key: int(value) for key, value in found.items()}}


def children(pid: int) -> list[int]:
    """Every descendant of ``pid``, from /proc/<pid>/task/*/children."""
    found: list[int] = []
    for listing in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found += [int(child) for child in listing.read_text().split()]
        except OSError:
            continue
    return [descendant for child in found for descendant in (child, *children(child))]


def store_progress(db: Path) -> tuple[int, int]:
    """(accepted, processed) rows of the inbox, read-only from another process."""
    if not db.exists():
        return 0, 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as connection:
            row = connection.execute(
                "SELECT count(*), coalesce(sum(state != 'accepted'), 0) FROM inbox_item"
            ).fetchone()
        connection.close()
        return int(row[0]), int(row[1])
    except sqlite3.Error:
        return 0, 0


def backlog(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    mail_dir = work / "backlog-mail"
    megabytes = write_backlog(mail_dir, args.backlog, args.seed, args.attachment_kb)
    home = make_instance(work / "backlog")
    started = time.monotonic()
    process = subprocess.Popen(
        [*MAILFLOW, "--home", str(home), "ingest", str(mail_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    watcher = Watcher(process.pid, home / "data" / "mailflow.db", args.backlog)
    watcher.started = started
    watcher.start()
    out, err = process.communicate()
    total = time.monotonic() - started
    watcher.join()
    if process.returncode != 0:
        raise RuntimeError(f"mailflow ingest exited {process.returncode}:\n{err[-3000:]}")
    marks = watcher.marks
    marks.setdefault("processed_all", total)
    watcher.rss_at.setdefault("processed_all", watcher.last_kb)
    # Accepting is timed from the first stored mail, so start-up does not count.
    accept = (
        marks["accepted_half"] - marks["accepted_first"],
        marks["accepted_all"] - marks["accepted_half"],
    )
    # Processing is timed from the first processed mail: workers process while the rest
    # is still being accepted, so the halves are of the processed mail, not of the run.
    process_ = (
        marks["processed_half"] - marks["processed_first"],
        marks["processed_all"] - marks["processed_half"],
    )
    return {
        "messages": args.backlog,
        "megabytes": round(megabytes, 1),
        "attachment_kb": args.attachment_kb,
        "seconds": round(total, 1),
        "per_s": round(args.backlog / total),
        "startup_s": round(marks["accepted_first"], 2),
        "peak_rss_mb": round(max(watcher.peak_kb, watcher.peak_total_kb) / 1024, 1),
        "peak_rss_one_process_mb": round(watcher.peak_kb / 1024, 1),
        "peak_rss_all_processes_mb": round(watcher.peak_total_kb / 1024, 1),
        "processes": watcher.processes,
        "rss_mb_at": {name: round(kb / 1024, 1) for name, kb in watcher.rss_at.items()},
        "accept_first_half_s": round(accept[0], 1),
        "accept_second_half_s": round(accept[1], 1),
        "process_first_half_s": round(process_[0], 1),
        "process_second_half_s": round(process_[1], 1),
        "process_time_ratio": round(process_[1] / process_[0], 3),
        "accept_time_ratio": round(accept[1] / accept[0], 3),
        "output": out.strip(),
    }


# -- (b) digests ------------------------------------------------------------------------


def digest_moment(service: Any) -> datetime:
    """The next business day at digest time + 5 minutes, in the desk's zone."""
    settings = service.config.settings
    day = datetime.now(settings.tz).date() + timedelta(days=1)
    while not service.desk.calendar.is_business_day(day):
        day += timedelta(days=1)
    at = datetime.combine(day, settings.digest_time, tzinfo=settings.tz)
    return at + timedelta(minutes=5)


def digests(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from mailflow.service import Service

    mail_dir = work / "digest-mail"
    write_backlog(mail_dir, args.open_requests, args.seed + 1, args.attachment_kb)
    home = make_instance(work / "digests")
    started = time.perf_counter()
    mailflow(home, "ingest", str(mail_dir))
    build_s = time.perf_counter() - started
    remove(mail_dir)

    service = Service(home)
    try:
        at = digest_moment(service)
        open_count = len(service.store.open_request_rows())
        times = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            rendered = service.scheduler.digest_preview(DIRECTOR, at)
            times.append(time.perf_counter() - started)
        if rendered is None:
            raise RuntimeError(f"no digest for {DIRECTOR} at {at}")
        before = {row["id"] for row in service.store.list_outbox()}
        started = time.perf_counter()
        ran = service.scheduler.tick(at)
        tick_s = time.perf_counter() - started
        queued = [row for row in service.store.list_outbox() if row["id"] not in before]
    finally:
        service.store.close()
    return {
        "open_requests": open_count,
        "build_by_ingest_s": round(build_s, 1),
        "at": at.isoformat(),
        "director": DIRECTOR,
        "digest_preview_first_s": round(times[0], 3),
        "digest_preview_best_s": round(min(times), 3),
        "digest_text_lines": rendered.text.count("\n") + 1,
        "digest_html_kb": round(len(rendered.html or "") / 1024, 1),
        "tick_s": round(tick_s, 3),
        "tick_items": len(ran),
        "tick_keys": sorted({key.split(":")[0] for key in ran}),
        "tick_outbox_rows": len(queued),
        "tick_outbox_kinds": dict(Counter(row["kind"] for row in queued)),
    }


# -- (c) two daemons on PostgreSQL --------------------------------------------------------


def pg_admin(url: str) -> Any:
    import psycopg2

    connection = psycopg2.connect(url, connect_timeout=3)
    connection.autocommit = True
    return connection


def server_start_time(admin: Any) -> Any:
    with admin.cursor() as cursor:
        cursor.execute("SELECT pg_postmaster_start_time()")
        return cursor.fetchone()[0]


def reset_schema(url: str) -> None:
    connection = pg_admin(url)
    with connection.cursor() as cursor:
        cursor.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    connection.close()


def pg_trial(url: str, home: Path, mails: list[bytes], daemons: int) -> dict[str, Any]:
    """Accept ``mails`` in-process, then time ``daemons`` concurrent `run --once`."""
    from mailflow.service import Service

    reset_schema(url)
    make_instance(home)
    toml = home / "mailflow.toml"
    text = toml.read_text(encoding="utf-8")
    toml.write_text(text.replace("\n[database]\n", f'\n[database]\nurl = "{url}"\n', 1))
    service = Service(home)
    try:
        for start in range(0, len(mails), 200):
            service.store.accept_many(
                [(raw, "smtp", f"bench-{start + k}") for k, raw in enumerate(mails[start:][:200])]
            )
    finally:
        service.store.close()
    started = time.perf_counter()
    outcomes = [Daemon(home, home.parent / f"{home.name}-{k}") for k in range(daemons)]
    while any(daemon.running() for daemon in outcomes):
        time.sleep(0.05)
    seconds = time.perf_counter() - started
    processed = [daemon.processed() for daemon in outcomes]
    if sum(processed) != len(mails):
        said = [daemon.last_words() for daemon in outcomes]
        raise RuntimeError(f"processed {processed} of {len(mails)}; daemons said {said}")
    return {
        "seconds": round(seconds, 2),
        "per_s": round(len(mails) / seconds),
        "split": processed,
        "restarts": [error for daemon in outcomes for error in daemon.failures],
    }


class Daemon:
    """One `mailflow run --once`, started again (as systemd's Restart=on-failure would)
    when it fails; each failure's last line is kept for the report."""

    def __init__(self, home: Path, log: Path, restarts: int = 3) -> None:
        self.home, self.log, self.restarts = home, log, restarts
        self.failures: list[str] = []
        self.outputs: list[str] = []
        self._start()

    def _start(self) -> None:
        self.out = self.log.with_suffix(f".{len(self.failures)}.out")
        with self.out.open("w") as out, self.out.with_suffix(".err").open("w") as err:
            self.process = subprocess.Popen(
                [*MAILFLOW, "--home", str(self.home), "run", "--once"], stdout=out, stderr=err
            )

    def running(self) -> bool:
        code = self.process.poll()
        if code is None:
            return True
        if code == 0:
            return False
        lines = self.out.with_suffix(".err").read_text(errors="replace").strip().splitlines()
        self.failures.append(f"exit {code}: {lines[-1] if lines else ''}"[:300])
        if len(self.failures) > self.restarts:
            raise RuntimeError(f"mailflow run --once failed {len(self.failures)} times")
        self._start()
        return True

    def last_words(self) -> str:
        text = self.out.read_text() + self.out.with_suffix(".err").read_text(errors="replace")
        return " | ".join(text.strip().splitlines()[-2:])[:300]

    def processed(self) -> int:
        """Messages processed by every start that finished (\"processed N message(s)\")."""
        total = 0
        for k in range(len(self.failures) + 1):
            text = self.log.with_suffix(f".{k}.out").read_text()
            found = re.search(r"processed (\d+) message", text)
            total += int(found.group(1)) if found else 0
        return total


def postgres(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    admin_url = os.environ.get("MAILFLOW_BENCH_PG", DEFAULT_PG)
    name = f"mailflow_bench_{uuid.uuid4().hex[:10]}"
    admin = pg_admin(admin_url)
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    server_started = server_start_time(admin)
    admin.close()
    url = f"{admin_url.rsplit('/', 1)[0]}/{name}"
    try:
        mixgen.ATTACHMENT_SIZE = args.attachment_kb * 1024
        mails = delta_mix(args.pg_backlog, args.seed + 2)
        one = pg_trial(url, work / "pg-one", mails, 1)
        two = pg_trial(url, work / "pg-two", mails, 2)
    finally:
        # A fresh connection: the shared server may have been restarted meanwhile.
        admin = pg_admin(admin_url)
        restarted = server_start_time(admin) != server_started
        with admin.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.close()
    return {
        "messages": args.pg_backlog,
        "one_daemon": one,
        "two_daemons": two,
        "speedup": round(one["seconds"] / two["seconds"], 3),
        # Someone restarting the shared server during the run would spoil the figures.
        "server_restarted_during_run": restarted,
        "cores": os.cpu_count(),
    }


# -- output -----------------------------------------------------------------------------


def print_tables(result: dict[str, Any]) -> None:
    if "backlog" in result:
        b = result["backlog"]
        print(f"| backlog of {b['messages']:,} mails ({b['megabytes']} MB) | value | target |")
        print("|---|---:|---:|")
        print(f"| `mailflow ingest` end to end | {b['seconds']} s ({b['per_s']}/s) | |")
        print(
            f"| peak RSS: one process (VmHWM) / sum over its {b['processes']} processes | "
            f"{b['peak_rss_one_process_mb']} / {b['peak_rss_all_processes_mb']} MB "
            f"| ≤ {TARGETS['peak_rss_mb']} MB |"
        )
        print(
            f"| RSS at half / all processed | {b['rss_mb_at'].get('processed_half')} / "
            f"{b['rss_mb_at'].get('processed_all')} MB | flat |"
        )
        print(
            f"| accept: first / second half | {b['accept_first_half_s']} / "
            f"{b['accept_second_half_s']} s | |"
        )
        print(
            f"| process: first / second half | {b['process_first_half_s']} / "
            f"{b['process_second_half_s']} s | |"
        )
        print(
            f"| process time ratio second / first | {b['process_time_ratio']} "
            f"| ≤ {TARGETS['time_ratio']} |\n"
        )
    if "digests" in result:
        d = result["digests"]
        print(f"| digests over {d['open_requests']:,} open requests | value | target |")
        print("|---|---:|---:|")
        print(
            f"| `digest_preview({d['director']})` first / best | {d['digest_preview_first_s']}"
            f" / {d['digest_preview_best_s']} s | ≤ {TARGETS['digest_s']} s |"
        )
        print(f"| its text | {d['digest_text_lines']:,} lines | |")
        print(
            f"| full `scheduler.tick(at)` | {d['tick_s']} s ({d['tick_items']} items, "
            f"{d['tick_outbox_rows']} mails queued) | |\n"
        )
    if "postgres" in result:
        p = result["postgres"]
        print(f"| PostgreSQL, {p['messages']:,} mails | seconds | msgs/s |")
        print("|---|---:|---:|")
        print(f"| one `run --once` | {p['one_daemon']['seconds']} | {p['one_daemon']['per_s']} |")
        print(
            f"| two concurrent `run --once` (split {p['two_daemons']['split']}) | "
            f"{p['two_daemons']['seconds']} | {p['two_daemons']['per_s']} |"
        )
        print(
            f"| speed-up (target ≥ {TARGETS['speedup']}×, {p['cores']} cores) | | "
            f"{p['speedup']}× |\n"
        )
        for error in p["one_daemon"]["restarts"] + p["two_daemons"]["restarts"]:
            print(f"a daemon failed and was started again: {error}")
    for part, error in result.get("errors", {}).items():
        print(f"part {part} failed: {error}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="every part ~10x smaller")
    parser.add_argument("--parts", default="abc", help="which parts to run (abc)")
    parser.add_argument("--backlog", type=int, help="(a) messages (20000; quick 2000)")
    parser.add_argument("--open-requests", type=int, help="(b) open requests (10000; 1000)")
    parser.add_argument("--pg-backlog", type=int, help="(c) messages (3000; quick 300)")
    parser.add_argument("--attachment-kb", type=int, default=2, help="attachment size (2)")
    parser.add_argument("--repeat", type=int, default=3, help="(b) digest previews (3)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    settle()  # files created right after many were removed cost ~20× more
    scale = 10 if args.quick else 1
    args.backlog = args.backlog or 20_000 // scale
    args.open_requests = args.open_requests or 10_000 // scale
    args.pg_backlog = args.pg_backlog or 3_000 // scale

    parts = {"a": ("backlog", backlog), "b": ("digests", digests), "c": ("postgres", postgres)}
    result: dict[str, Any] = {"targets": TARGETS, "quick": args.quick}
    work = scratch_dir()
    try:
        for letter in args.parts:
            name, run = parts[letter]
            try:
                result[name] = run(args, work)
            except Exception as error:  # noqa: BLE001 - report it and go on with the others
                result.setdefault("errors", {})[name] = f"{type(error).__name__}: {error}"
    finally:
        remove(work)
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print_tables(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
