"""A private Dovecot 2.3 for IMAP tests: plain IMAP on a free loopback port.

``start_dovecot()`` writes a config into a fresh ``tempfile.mkdtemp()`` directory (pytest's
``tmp_path`` sits under a 0700 directory that the mail user ``nobody`` cannot enter), starts
``dovecot -F`` tied to this process (PR_SET_PDEATHSIG), and returns a ``Dovecot`` handle.
Users are added on the fly with unique names, so one server serves a whole session while
every test gets its own empty mailbox.

The server listens on three addresses with the same mailboxes: ``host`` (127.0.0.1) with
Dovecot's full capability list, ``UIDPLUS_HOST`` (127.0.0.3) without MOVE, and
``LEGACY_HOST`` (127.0.0.2) with neither MOVE nor UIDPLUS, so every path of moving mail
(UID MOVE; COPY + \\Deleted + UID EXPUNGE; COPY + \\Deleted + EXPUNGE) runs for real.
"""

from __future__ import annotations

import ctypes
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from imapclient import IMAPClient

LEGACY_HOST = "127.0.0.2"
UIDPLUS_HOST = "127.0.0.3"
_BASE_CAPABILITIES = "IMAP4rev1 LITERAL+ SASL-IR LOGIN-REFERRALS ID ENABLE IDLE NAMESPACE"
_CAPABILITIES_BY_HOST = {
    LEGACY_HOST: _BASE_CAPABILITIES,
    UIDPLUS_HOST: _BASE_CAPABILITIES + " UIDPLUS",
}
_LOCAL_BLOCK = """\
local {host} {{
  protocol imap {{
    imap_capability = {capabilities}
  }}
}}
"""

_CONFIG = """\
instance_name = mailflow-test-{tag}
base_dir = {dir}/run
state_dir = {dir}/state
log_path = {dir}/dovecot.log
info_log_path = {dir}/dovecot.log
protocols = imap
listen = 127.0.0.1, {other_hosts}
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
mail_location = maildir:~/Maildir
mail_max_userip_connections = 200
# IDLE learns of new mail by inotify. With the user's inotify instances used up (128 by
# default, shared by every process of root), test_idle_wakes_within_two_seconds_of_new_mail
# failed with the default 30 s (measured with max_user_instances = 0) and passes with 1 s:
# a suspect for the reconnect test that failed now and then in full runs under load.
mailbox_idle_check_interval = 1 secs
{identity}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {dir}/users/%u
}}
userdb {{
  driver = static
  args = {userdb} home={dir}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
{login_chroot}}}
# Tests log in with wrong passwords on purpose: no brute-force penalty for 127.0.0.1.
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
{login_chroot}}}
{local_blocks}"""

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGTERM it when the test process dies, even by -9."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def dovecot_binary() -> str:
    """The dovecot executable; skip (or fail under MAILFLOW_TEST_IMAP) when it is missing."""
    found = shutil.which("dovecot") or next(
        (path for path in ("/usr/sbin/dovecot", "/usr/local/sbin/dovecot") if os.access(path, 1)),
        None,
    )
    if found:
        return found
    message = "dovecot is not installed (apt-get install -y dovecot-imapd)"
    if os.environ.get("MAILFLOW_TEST_IMAP"):
        pytest.fail(f"MAILFLOW_TEST_IMAP is set but {message}")
    pytest.skip(message)


class Dovecot:
    """One private Dovecot instance and the users it knows."""

    host = "127.0.0.1"

    def __init__(self, binary: str, directory: Path, port: int) -> None:
        self.binary = binary
        self.dir = directory
        self.port = port
        self.passwords: dict[str, str] = {}
        self.process: subprocess.Popen[bytes] | None = None

    # -- lifecycle -------------------------------------------------------------------

    def write_config(self) -> None:
        root = os.geteuid() == 0
        me = pwd.getpwuid(os.geteuid()).pw_name
        identity = (
            ""
            if root
            else f"default_login_user = {me}\ndefault_internal_user = {me}\n"
            f"default_internal_group = {me}\n"
        )
        (self.dir / "dovecot.conf").write_text(
            _CONFIG.format(
                tag=self.dir.name,
                dir=self.dir,
                port=self.port,
                other_hosts=", ".join(_CAPABILITIES_BY_HOST),
                local_blocks="".join(
                    _LOCAL_BLOCK.format(host=host, capabilities=capabilities)
                    for host, capabilities in _CAPABILITIES_BY_HOST.items()
                ),
                identity=identity,
                userdb="uid=nobody gid=nogroup" if root else f"uid={me} gid={os.getegid()}",
                login_chroot="" if root else "  chroot =\n",
            )
        )
        # One passwd-file per user: Dovecot notices a changed passwd-file only by its
        # mtime, so users added within the same second would go unseen in a shared file.
        (self.dir / "users").mkdir(exist_ok=True)
        home = self.dir / "home"
        home.mkdir(exist_ok=True)
        if root:
            # Dovecot refuses uid 0 for mail processes, so mail is owned by nobody.
            nobody = pwd.getpwnam("nobody")
            os.chown(home, nobody.pw_uid, nobody.pw_gid)

    def start(self) -> None:
        with open(self.dir / "stderr.log", "ab") as stderr:
            self.process = subprocess.Popen(
                [self.binary, "-F", "-c", str(self.dir / "dovecot.conf")],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                preexec_fn=_die_with_parent,
            )
        self._wait_until_listening()

    def _wait_until_listening(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"dovecot exited {self.process.returncode}:\n{self.log()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=1) as conn:
                    if conn.recv(100).startswith(b"* OK"):
                        return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"dovecot did not answer on port {self.port}:\n{self.log()}")

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def restart(self) -> None:
        """Stop and start again on the same port; every open connection is dropped.

        The master's SIGTERM leaves logged-in ``imap`` processes running (their clients
        would not notice the restart); systemd kills the whole control group at once, so
        do the same to them.
        """
        children = self._children()
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        for pid in children:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        self.stop()
        deadline = time.monotonic() + 5
        while any(Path(f"/proc/{pid}").exists() for pid in children):
            if time.monotonic() > deadline:
                raise RuntimeError(f"dovecot processes {children} outlived the restart")
            time.sleep(0.01)
        self.start()

    def _children(self) -> list[int]:
        """Processes the master started (Linux /proc; empty elsewhere)."""
        if self.process is None:
            return []
        master = self.process.pid
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[1]) == master:
                found.append(int(stat.parent.name))
        return found

    def log(self) -> str:
        texts = []
        for name in ("dovecot.log", "stderr.log"):
            path = self.dir / name
            if path.exists():
                texts.append(path.read_text(errors="replace")[-4000:])
        return "\n".join(texts)

    # -- users and mail -------------------------------------------------------------------

    def add_user(self, prefix: str = "desk", password: str | None = None) -> str:
        """A new user with an empty mailbox; its password is ``self.passwords[user]``."""
        user = f"{prefix}{uuid.uuid4().hex[:10]}"
        secret = password or f"pw-{uuid.uuid4().hex[:12]}"
        self.passwords[user] = secret
        (self.dir / "users" / user).write_text(f"{user}:{{PLAIN}}{secret}::::::\n")
        return user

    def client(self, user: str, host: str | None = None) -> IMAPClient:
        client = IMAPClient(host or self.host, port=self.port, ssl=False, timeout=10)
        client.login(user, self.passwords[user])
        return client

    def append(self, user: str, folder: str, raw: bytes, flags: Iterable[str] = ()) -> None:
        with self._session(user) as client:
            client.append(folder, raw, flags=tuple(flags))

    def append_many(self, user: str, folder: str, raws: Iterable[bytes]) -> None:
        """MULTIAPPEND in chunks: ~5x faster than one APPEND per message."""
        items = list(raws)
        with self._session(user) as client:
            for start in range(0, len(items), 100):
                client.multiappend(folder, items[start : start + 100])

    def list_uids(self, user: str, folder: str) -> list[int]:
        with self._session(user) as client:
            client.select_folder(folder, readonly=True)
            return sorted(int(uid) for uid in client.search("ALL"))

    def fetch_all(self, user: str, folder: str) -> dict[int, dict[bytes, Any]]:
        with self._session(user) as client:
            client.select_folder(folder, readonly=True)
            uids = client.search("ALL")
            return dict(client.fetch(uids, ["BODY.PEEK[]", "FLAGS"])) if uids else {}

    def folders(self, user: str) -> list[str]:
        with self._session(user) as client:
            return sorted(str(name) for _flags, _delimiter, name in client.list_folders())

    def _session(self, user: str) -> _Session:
        return _Session(self.client(user))


class _Session:
    def __init__(self, client: IMAPClient) -> None:
        self.client = client

    def __enter__(self) -> IMAPClient:
        return self.client

    def __exit__(self, *exc: object) -> None:
        try:
            self.client.logout()
        except Exception:  # noqa: BLE001 - the test already has what it needs
            pass


def start_dovecot() -> Dovecot:
    binary = dovecot_binary()
    directory = Path(tempfile.mkdtemp(prefix="mailflow-dovecot-"))
    directory.chmod(0o755)
    server = Dovecot(binary, directory, free_port())
    server.write_config()
    server.start()
    return server


def dovecot_session() -> Iterator[Dovecot]:
    """Body of a session fixture: start, yield, stop and remove the directory."""
    server = start_dovecot()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.dir, ignore_errors=True)
