"""The daemon's life: systemd notification, graceful stop, reload on SIGHUP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from conftest import listen_on_free_port


def _start(home: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "mailflow", "--home", str(home), "run"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, **env},
    )


def test_ready_and_watchdog_reach_systemd_and_sigterm_stops_quickly(home: Path) -> None:
    listen_on_free_port(home)
    folder = tempfile.mkdtemp()
    path = os.path.join(folder, "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as systemd:
        systemd.bind(path)
        systemd.settimeout(15)
        daemon = _start(home, {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000"})
        try:
            messages = [systemd.recv(4096).decode() for _ in range(3)]
        finally:
            started = time.monotonic()
            daemon.send_signal(signal.SIGTERM)
            code = daemon.wait(timeout=10)
            stderr = daemon.stderr.read().decode() if daemon.stderr else ""
            if daemon.stderr:
                daemon.stderr.close()
    assert messages[0].startswith("READY=1")
    assert "WATCHDOG=1" in messages[1:]
    assert code == 0, stderr
    assert time.monotonic() - started < 5
    assert "mailflow stopped" in stderr


def test_sighup_reloads_people_and_a_bad_edit_is_refused(home: Path) -> None:
    listen_on_free_port(home)
    daemon = _start(home, {})
    try:
        time.sleep(1.5)
        people = home / "people.yaml"
        good = people.read_text(encoding="utf-8")
        people.write_text(good.replace("member: suzuki", "member: nobody", 1), encoding="utf-8")
        daemon.send_signal(signal.SIGHUP)
        time.sleep(1.0)
        people.write_text(good, encoding="utf-8")
        daemon.send_signal(signal.SIGHUP)
        time.sleep(1.0)
        assert daemon.poll() is None, "a bad people.yaml must not stop the daemon"
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=10)
        stderr = daemon.stderr.read().decode() if daemon.stderr else ""
        if daemon.stderr:
            daemon.stderr.close()
    assert "reload refused" in stderr and "nobody" in stderr
    assert "reloaded people, rules and templates" in stderr
