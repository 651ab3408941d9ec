"""The systemd unit is valid and hardened as the README promises."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[1] / "systemd" / "mailflow.service"


def test_unit_is_notify_with_watchdog_restart_and_hardening() -> None:
    text = UNIT.read_text(encoding="utf-8")
    for line in (
        "Type=notify",
        "WatchdogSec=",
        "Restart=on-failure",
        "User=mailflow",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/mailflow",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "ProtectHome=yes",
        "ExecReload=/bin/kill -HUP $MAINPID",
    ):
        assert line in text


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_systemd_analyze_verify_passes(tmp_path: Path) -> None:
    # The installed path is replaced by this checkout's executable, which exists here.
    executable = Path(sys.executable).parent / "mailflow"
    unit = tmp_path / "mailflow.service"
    unit.write_text(
        UNIT.read_text(encoding="utf-8").replace(
            "/opt/mailflow/.venv/bin/mailflow", str(executable)
        ),
        encoding="utf-8",
    )
    done = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "mailflow.service" not in done.stderr, done.stderr
