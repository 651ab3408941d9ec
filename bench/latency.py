"""Benchmark: mail appended → confirmation at the relay, with the daemon idling on IDLE.

    .venv/bin/python bench/latency.py [--mails 50] [--timeout 10]

Starts a private Dovecot 2.3 (tests/dovecot.py), an aiosmtpd sink as the ``[outbound]``
relay, and `mailflow run` (a subprocess on a fresh `mailflow init --demo` instance with an
``[[imap]]`` table; its SMTP listener off). One warm-up mail is answered first, then
``--mails`` mails from distinct contacts of the demo client Delta are appended one at a
time, each waiting for its confirmation before the next. The clock runs from the moment
Dovecot answers the APPEND to the moment the relay has the confirmation's DATA.

In the same run, the bare limit on a second mailbox: one imapclient connection idling
on IDLE that, on EXISTS, fetches the new mail, parses it with ``policy.default`` and sends
a one-line answer to the sender through smtplib to the same relay. Dovecot wakes an IDLE
~0.5 s after an APPEND (FIELD-NOTES), so that is the floor for both. Prints p50, p95 and
max for both and the p95 ratio, and writes bench/out/latency.json. Target: p95 ≤ 1.5 s.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import math
import signal
import smtplib
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(HERE), str(ROOT / "tests")]

from aiosmtpd.controller import Controller  # noqa: E402
from dovecot import Dovecot, free_port  # noqa: E402
from imap_drain import MAILFLOW, add_imap, make_instance, measure_on_dovecot  # noqa: E402
from imapclient import IMAPClient  # noqa: E402
from mails import client_mail, english_mail  # noqa: E402

OUT = HERE / "out" / "latency.json"
TARGET_P95 = 1.5


@dataclass
class Relay:
    """What the aiosmtpd sink received: arrival time by recipient."""

    arrived: dict[str, float] = field(default_factory=dict)
    changed: threading.Condition = field(default_factory=threading.Condition)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        now = time.monotonic()
        with self.changed:
            for recipient in envelope.rcpt_tos:
                self.arrived.setdefault(recipient.lower(), now)
            self.changed.notify_all()
        return "250 OK"

    def wait_for(self, recipient: str, timeout: float) -> float | None:
        with self.changed:
            self.changed.wait_for(lambda: recipient in self.arrived, timeout)
            return self.arrived.get(recipient)


def sample_mail(tag: str, index: int) -> tuple[str, bytes]:
    """A mail from a contact nobody has written from before (no per-recipient limit)."""
    sender = f"{tag}{index}@delta-trading.example"
    make = client_mail if index % 3 else english_mail
    raw = make(
        sender=sender,
        subject=f"依頼 {tag} {index}",
        message_id=f"<latency-{tag}-{index}-{time.time_ns()}@client.example>",
    )
    return sender, raw


class BareResponder(threading.Thread):
    """The least an IDLE-driven responder does: wake, fetch, parse, send one answer."""

    def __init__(self, server: Dovecot, user: str, relay_port: int) -> None:
        super().__init__(name="bare-responder", daemon=True)
        self.client = IMAPClient(server.host, port=server.port, ssl=False, timeout=30)
        self.client.login(user, server.passwords[user])
        self.client.select_folder("INBOX")
        self.relay_port = relay_port
        self.stop = threading.Event()
        self.seen: set[int] = set(self.client.search("ALL"))

    def run(self) -> None:
        client = self.client
        client.idle()
        while not self.stop.is_set():
            responses = client.idle_check(timeout=0.5)
            if not any(isinstance(r, tuple) and b"EXISTS" in r for r in responses):
                continue
            client.idle_done()
            self.answer_new()
            client.idle()
        client.idle_done()
        client.logout()

    def answer_new(self) -> None:
        uids = [uid for uid in self.client.search("ALL") if uid not in self.seen]
        for uid, data in self.client.fetch(uids, ["BODY.PEEK[]"]).items():
            message = email.message_from_bytes(bytes(data[b"BODY[]"]), policy=email.policy.default)
            reply = EmailMessage()
            reply["From"] = "desk@secretary.example"
            reply["To"] = message["From"].addresses[0].addr_spec
            reply["Subject"] = f"Re: {message['Subject']}"
            reply.set_content("受け付けました。\n")
            with smtplib.SMTP("127.0.0.1", self.relay_port, timeout=10) as smtp:
                smtp.send_message(reply)
            self.seen.add(uid)


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def timed_append(client: IMAPClient, relay: Relay, tag: str, index: int, timeout: float) -> Any:
    sender, raw = sample_mail(tag, index)
    client.append("INBOX", raw)
    appended = time.monotonic()
    arrived = relay.wait_for(sender, timeout)
    return None if arrived is None else arrived - appended


def summary(values: list[float | None]) -> dict[str, Any]:
    got = [v for v in values if v is not None]
    if not got:
        return {"received": 0, "missed": len(values)}
    return {
        "received": len(got),
        "missed": len(values) - len(got),
        "p50_s": round(percentile(got, 0.50), 3),
        "p95_s": round(percentile(got, 0.95), 3),
        "max_s": round(max(got), 3),
        "min_s": round(min(got), 3),
    }


def start_daemon(home: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as stderr:
        return subprocess.Popen(
            [*MAILFLOW, "--home", str(home), "run"],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )


def stop_daemon(daemon: subprocess.Popen[bytes]) -> None:
    if daemon.poll() is None:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(timeout=15)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()


def measure(args: argparse.Namespace, work: Path, server: Dovecot) -> dict[str, Any]:
    relay = Relay()
    port = free_port()
    controller = Controller(relay, hostname="127.0.0.1", port=port)
    controller.start()
    ours_user, bare_user = server.add_user("ours"), server.add_user("bare")
    home = make_instance(work / "instance", smtp=f"smtp://127.0.0.1:{port}")
    add_imap(home, server, ours_user)
    daemon = start_daemon(home, work / "daemon.log")
    bare = BareResponder(server, bare_user, port)
    bare.start()
    appender = server.client(ours_user)
    bare_appender = server.client(bare_user)
    try:
        # The first answer waits for the daemon to start, connect and enter IDLE.
        warm_up = timed_append(appender, relay, "warm", 0, 60)
        if warm_up is None:
            raise RuntimeError(f"no confirmation for the warm-up mail:\n{daemon_log(work)}")
        ours: list[float | None] = []
        bares: list[float | None] = []
        for index in range(args.mails):
            ours.append(timed_append(appender, relay, "lat", index, args.timeout))
            bares.append(timed_append(bare_appender, relay, "bare", index, args.timeout))
        alive = daemon.poll() is None
    finally:
        appender.logout()
        bare_appender.logout()
        stop_daemon(daemon)
        bare.stop.set()
        bare.join(timeout=5)
        controller.stop()
    return {
        "mails": args.mails,
        "timeout_s": args.timeout,
        "warm_up_s": round(warm_up, 3),
        "mailflow": summary(ours),
        "bare": summary(bares),
        "ratio_p95": round(summary(ours)["p95_s"] / summary(bares)["p95_s"], 3)
        if ours and bares and all(v is not None for v in ours + bares)
        else None,
        "target_p95_s": TARGET_P95,
        "daemon_alive_until_stopped": alive,
        "samples_s": [None if v is None else round(v, 4) for v in ours],
    }


def daemon_log(work: Path) -> str:
    path = work / "daemon.log"
    return path.read_text(errors="replace")[-3000:] if path.exists() else ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--mails", type=int, default=50, help="timed mails (50)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per mail (10)")
    args = parser.parse_args()
    result = measure_on_dovecot(measure, args, OUT)
    print(f"| appended → confirmation at the relay ({args.mails} mails) | p50 s | p95 s | max s |")
    print("|---|---:|---:|---:|")
    for label, key in (
        ("`mailflow run` on IDLE", "mailflow"),
        ("bare IDLE + parse + smtplib", "bare"),
    ):
        row = result[key]
        if row["received"]:
            print(f"| {label} | {row['p50_s']} | {row['p95_s']} | {row['max_s']} |")
        print(f"| {label}: missed (> {args.timeout:g} s) | {row['missed']} | | |")
    print(f"| ratio of p95 | | {result['ratio_p95']} | |")
    print(
        f"\ntarget p95 ≤ {TARGET_P95} s; warm-up (start-up + first answer) {result['warm_up_s']} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
