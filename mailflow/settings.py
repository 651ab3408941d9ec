"""``mailflow.toml`` → validated ``Settings``.

Every problem names the file, the line, the key and a fix, and all problems of the file
are raised together in one ``ConfigError``. ``tomllib`` gives no positions for keys, so
``TomlLines`` finds them in the source text by the same dotted path a Problem shows
(``desk.address``, ``inbound.smtp.listen``, ``imap[1].port``).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import time as dt_time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mailflow.errors import ConfigError, Problem
from mailflow.yamlfile import INIT_FIX, UNKNOWN_KEY_FIX, describe, is_address, read_config_text

SETTINGS_FILE = "mailflow.toml"
LANGUAGES = ("ja", "en")
TLS_MODES = ("ssl", "starttls", "none")
SMTP_SCHEMES = ("smtp", "smtps", "smtp+starttls")
DEFAULT_SMTP_LISTEN = "127.0.0.1:2525"
DEFAULT_MAX_MESSAGE_BYTES = 25_000_000

_SECTIONS = ("desk", "security", "outbound", "inbound", "database", "imap", "schedule")
_DESK_KEYS = ("address", "name", "timezone", "language")
_SECURITY_KEYS = ("trusted_authserv_ids", "secret_file")
_INBOUND_KEYS = ("max_message_size", "smtp", "lmtp")
_IMAP_KEYS = (
    "name",
    "host",
    "port",
    "tls",
    "username",
    "password",
    "password_file",
    "folder",
    "processed_folder",
    "idle",
    "poll_interval",
    "oauth2_token_endpoint",
    "oauth2_client_id",
    "oauth2_client_secret",
    "oauth2_client_secret_file",
    "oauth2_refresh_token_file",
    "oauth2_scope",
)
_OAUTH2_KEYS = tuple(key for key in _IMAP_KEYS if key.startswith("oauth2_"))
_LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")
DEFAULT_POLL_INTERVAL = 60.0
_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
}


@dataclass(frozen=True)
class DeskSettings:
    address: str
    name: str
    timezone: str
    language: str

    @property
    def local_part(self) -> str:
        return self.address.rpartition("@")[0]

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2].lower()


@dataclass(frozen=True)
class OAuth2Settings:
    """XOAUTH2 login (Gmail, Microsoft 365): an access token from a refresh token.

    The refresh token lives in ``refresh_token_file``; a provider that rotates it gets the
    new one written back there (atomically, mode 0600).
    """

    token_endpoint: str
    client_id: str
    client_secret: str | None = field(repr=False)
    client_secret_file: Path | None
    refresh_token_file: Path
    scope: str | None = None


@dataclass(frozen=True)
class ImapSettings:
    """One polled mailbox; ``name`` identifies it in the store (UIDVALIDITY, UIDs).

    ``idle`` waits with IMAP IDLE where the server offers it; otherwise, or with
    ``idle = false``, the mailbox is checked every ``poll_interval`` seconds.
    """

    name: str
    host: str
    port: int
    tls: str
    username: str
    password: str | None = field(repr=False)
    password_file: Path | None
    folder: str
    processed_folder: str
    idle: bool = True
    poll_interval: float = DEFAULT_POLL_INTERVAL
    oauth2: OAuth2Settings | None = None


@dataclass(frozen=True)
class Settings:
    home: Path
    desk: DeskSettings
    trusted_authserv_ids: tuple[str, ...]
    outbound_smtp: str | None
    smtp_listen: tuple[str, int] | None
    lmtp_listen: tuple[str, int] | None
    max_message_bytes: int
    database_url: str | None
    imap: tuple[ImapSettings, ...]
    secret_file: Path
    # Local time (desk time zone) when the daily digests go out.
    digest_time: dt_time = dt_time(8, 0)

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def raw_dir(self) -> Path:
        return self.data_dir / "raw"

    @property
    def files_dir(self) -> Path:
        return self.data_dir / "files"

    @property
    def sent_dir(self) -> Path:
        return self.data_dir / "sent"

    @property
    def template_cache_dir(self) -> Path:
        return self.data_dir / "cache" / "templates"

    @property
    def db_path(self) -> Path:
        return self.data_dir / "mailflow.db"

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.desk.timezone)


# -- where keys are written ---------------------------------------------------------------

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(
    r"""^\s*((?:"[^"]*"|'[^']*'|[A-Za-z0-9_-]+)"""
    r"""(?:\s*\.\s*(?:"[^"]*"|'[^']*'|[A-Za-z0-9_-]+))*)\s*="""
)


def _dotted(text: str) -> str:
    parts = re.split(r"\s*\.\s*(?=(?:[^\"']|\"[^\"]*\"|'[^']*')*$)", text.strip())
    return ".".join(part.strip("\"'") for part in parts)


class TomlLines:
    """The line of each table and key of a TOML text, by dotted path.

    ``[[imap]]`` tables are numbered in order (``imap[0]``, ``imap[1]``), so a key of the
    second mailbox is ``imap[1].port``. Lines inside multi-line strings are skipped.
    """

    def __init__(self, source: str) -> None:
        self.lines: dict[str, int] = {}
        arrays: dict[str, int] = {}
        table = ""
        in_string = False
        for number, line in enumerate(source.splitlines(), start=1):
            quotes = line.count('"""') + line.count("'''")
            if in_string:
                in_string = quotes % 2 == 0
                continue
            in_string = quotes % 2 == 1
            table = self._visit(line, number, table, arrays)

    def _visit(self, line: str, number: int, table: str, arrays: dict[str, int]) -> str:
        header = _HEADER.match(line)
        if header:
            name = _dotted(header.group(2))
            if header.group(1) == "[[":
                index = arrays.get(name, -1) + 1
                arrays[name] = index
                name = f"{name}[{index}]"
            self.lines.setdefault(name, number)
            return name
        key = _KEY.match(line)
        if key:
            path = _dotted(key.group(1))
            self.lines.setdefault(f"{table}.{path}" if table else path, number)
        return table

    def line_of(self, path: str) -> int | None:
        """The line of ``path``, else of the nearest enclosing table that is written."""
        while path:
            if path in self.lines:
                return self.lines[path]
            path = re.sub(r"(\.[^.\[\]]+|\[\d+\])$", "", path) if re.search(r"[.\[]", path) else ""
        return None


# -- reading values ------------------------------------------------------------------------


class _Checker:
    """Collects the problems of ``mailflow.toml``, each placed on its line."""

    def __init__(self, source: str) -> None:
        self.lines = TomlLines(source)
        self.problems: list[Problem] = []

    def report(self, path: str, message: str, fix: str) -> None:
        self.problems.append(Problem(SETTINGS_FILE, self.lines.line_of(path), path, message, fix))


@dataclass
class _Table:
    """One TOML table being read: typed getters that report instead of raising."""

    checker: _Checker
    path: str
    data: Mapping[str, Any]

    def key(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def report(self, key: str, message: str, fix: str) -> None:
        self.checker.report(self.key(key), message, fix)

    def check_known(self, known: Sequence[str]) -> None:
        for key, value in self.data.items():
            if key not in known:
                what = "unknown section" if isinstance(value, dict | list) else "unknown key"
                self.report(key, what, UNKNOWN_KEY_FIX + ", ".join(known))

    def table(self, key: str, known: Sequence[str]) -> _Table:
        value = self.data.get(key, {})
        if not isinstance(value, dict):
            self.report(
                key,
                f"expected a table, got {describe(value)}",
                f"write it as a [{self.key(key)}] section",
            )
            value = {}
        child = _Table(self.checker, self.key(key), value)
        child.check_known(known)
        return child

    def text(self, key: str, default: str, *, required: bool = False) -> str:
        value = self.data.get(key)
        if value is None:
            if required:
                self.report(
                    key, "required key is missing", f'add `{key} = "…"` under [{self.path}]'
                )
            return default
        if not isinstance(value, str):
            self.report(key, f"expected text, got {describe(value)}", "put the value in quotes")
            return default
        return value.strip()

    def choice(self, key: str, options: Sequence[str], default: str, noun: str) -> str:
        value = self.text(key, default)
        if value in options:
            return value
        self.report(key, f"unknown {noun} '{value}'", "use one of: " + ", ".join(options))
        return default

    def port(self, key: str, default: int) -> int:
        value = self.data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            self.report(
                key,
                f"expected a port number, got {describe(value)}",
                "write a number without quotes, e.g. 993",
            )
            return default
        if not 1 <= value <= 65535:
            self.report(key, f"port {value} is out of range", "use a number from 1 to 65535")
            return default
        return value

    def flag(self, key: str, default: bool) -> bool:
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            self.report(
                key, f"expected true or false, got {describe(value)}", "write true or false"
            )
            return default
        return value

    def seconds(self, key: str, default: float) -> float:
        value = self.data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            self.report(
                key,
                f"expected a number of seconds above 0, got {describe(value)}",
                "write a number without quotes, e.g. 60",
            )
            return default
        return float(value)

    def texts(self, key: str) -> tuple[str, ...]:
        value = self.data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            self.report(
                key,
                f"expected a list of texts, got {describe(value)}",
                f'write it as {key} = ["…", "…"]',
            )
            return ()
        return tuple(item.strip() for item in value if item.strip())


# -- sections ------------------------------------------------------------------------------


def _check_timezone(desk: _Table, name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        desk.report(
            "timezone", f"unknown time zone '{name}'", 'use an IANA name such as "Asia/Tokyo"'
        )
        return "Asia/Tokyo"
    return name


def _read_desk(root: _Table) -> DeskSettings:
    if "desk" not in root.data:
        root.report(
            "desk",
            "required section is missing",
            'add a [desk] section with address = "desk@your-domain.example"',
        )
    desk = root.table("desk", _DESK_KEYS)
    address = desk.text("address", "", required="desk" in root.data)
    if address and not is_address(address):
        desk.report(
            "address",
            f"'{address}' is not an email address",
            'write a bare address such as "desk@secretary.example"',
        )
    elif "+" in address.partition("@")[0]:
        desk.report(
            "address",
            f"'{address}' has a '+' in its local part",
            "use the plain address; mailflow adds +<ref>.<tag> to it for replies",
        )
    return DeskSettings(
        address=address,
        name=desk.text("name", "mailflow"),
        timezone=_check_timezone(desk, desk.text("timezone", "Asia/Tokyo")),
        language=desk.choice("language", LANGUAGES, "ja", "language"),
    )


def _redact(url: str) -> str:
    """The URL without its password, for error messages that may end up in logs."""
    return re.sub(r"(//[^:/@]*:)[^@/]*@", r"\1***@", url)


def _read_outbound(root: _Table) -> str | None:
    outbound = root.table("outbound", ("smtp",))
    url = outbound.text("smtp", "")
    if not url:
        return None
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if parts.scheme not in SMTP_SCHEMES:
        outbound.report(
            "smtp",
            f"unknown scheme in '{_redact(url)}'",
            "start it with smtp://, smtps:// or smtp+starttls://, "
            "or leave it empty to write mail to data/sent/",
        )
    elif not parts.hostname:
        outbound.report(
            "smtp",
            f"no host in '{_redact(url)}'",
            'write it as "smtp://host:port" (user:password@ is optional)',
        )
    elif port == -1 or port == 0:
        outbound.report("smtp", f"bad port in '{_redact(url)}'", "use a number from 1 to 65535")
    return url


def _parse_listen(text: str) -> tuple[str, int] | None:
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        return None
    return host, int(port)


def _read_listen(inbound: _Table, key: str, default: str) -> tuple[str, int] | None:
    table = inbound.table(key, ("listen",))
    text = table.text("listen", default)
    if not text:
        return None
    listen = _parse_listen(text)
    if listen is None:
        table.report(
            "listen",
            f"'{text}' is not host:port",
            'write it as "127.0.0.1:2525", or "" to turn this listener off',
        )
    return listen


def _parse_size(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    if not isinstance(value, str):
        return None
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", value)
    if not match or match.group(2).lower() not in _SIZE_UNITS:
        return None
    size = int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])
    return size if size > 0 else None


def _read_inbound(root: _Table) -> tuple[int, tuple[str, int] | None, tuple[str, int] | None]:
    inbound = root.table("inbound", _INBOUND_KEYS)
    value = inbound.data.get("max_message_size", DEFAULT_MAX_MESSAGE_BYTES)
    size = _parse_size(value)
    if size is None:
        inbound.report(
            "max_message_size",
            f"'{value}' is not a size",
            'write a number of bytes or a size such as "25MB" or "10MiB"',
        )
    smtp = _read_listen(inbound, "smtp", DEFAULT_SMTP_LISTEN)
    lmtp = _read_listen(inbound, "lmtp", "")
    return size or DEFAULT_MAX_MESSAGE_BYTES, smtp, lmtp


def _read_schedule(root: _Table) -> dt_time:
    schedule = root.table("schedule", ("digest_time",))
    value = schedule.text("digest_time", "08:00")
    match = re.fullmatch(r"(\d{1,2}):(\d{2})", value.strip())
    if match and int(match.group(1)) < 24 and int(match.group(2)) < 60:
        return dt_time(int(match.group(1)), int(match.group(2)))
    schedule.report("digest_time", f"'{value}' is not a time of day", 'write it as "08:30"')
    return dt_time(8, 0)


def _read_database(root: _Table) -> str | None:
    database = root.table("database", ("url",))
    url = database.text("url", "")
    if not url:
        return None
    scheme = url.partition("://")[0]
    if scheme == "sqlite" and url.startswith("sqlite:///") and len(url) > len("sqlite:///"):
        return url
    if scheme == "postgresql" and len(url) > len("postgresql://"):
        return url
    database.report(
        "url",
        f"unsupported database URL '{_redact(url)}'",
        'use "sqlite:///path/to/mailflow.db" or "postgresql://user:password@host/db", '
        "or remove it for SQLite in data/",
    )
    return None


def _read_security(root: _Table, home: Path) -> tuple[tuple[str, ...], Path]:
    security = root.table("security", _SECURITY_KEYS)
    ids = security.texts("trusted_authserv_ids")
    secret = security.text("secret_file", "secret.key") or "secret.key"
    return ids, home / secret


def _check_token_endpoint(table: _Table, url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and parts.hostname in _LOOPBACK_HOSTS:
        return
    table.report(
        "oauth2_token_endpoint",
        f"'{url}' is not an https:// URL",
        'use the provider\'s token URL, e.g. "https://oauth2.googleapis.com/token" or '
        '"https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token"',
    )


def _read_oauth2(table: _Table, home: Path) -> OAuth2Settings | None:
    if not any(key in table.data for key in _OAUTH2_KEYS):
        return None
    endpoint = table.text("oauth2_token_endpoint", "", required=True)
    if endpoint:
        _check_token_endpoint(table, endpoint)
    secret = table.text("oauth2_client_secret", "") or None
    secret_file = table.text("oauth2_client_secret_file", "") or None
    if secret and secret_file:
        table.report(
            "oauth2_client_secret_file",
            "both oauth2_client_secret and oauth2_client_secret_file are set",
            "keep only one of them",
        )
    token_file = table.text("oauth2_refresh_token_file", "", required=True)
    return OAuth2Settings(
        token_endpoint=endpoint,
        client_id=table.text("oauth2_client_id", "", required=True),
        client_secret=secret,
        client_secret_file=home / secret_file if secret_file else None,
        refresh_token_file=home / token_file,
        scope=table.text("oauth2_scope", "") or None,
    )


def _check_credentials(
    table: _Table, password: str | None, password_file: str | None, oauth2: bool
) -> None:
    if password and password_file:
        table.report(
            "password_file", "both password and password_file are set", "keep only one of them"
        )
    elif oauth2 and (password or password_file):
        table.report(
            "password_file" if password_file else "password",
            "both a password and oauth2 settings are set",
            "keep either the password or the oauth2_* keys",
        )
    elif not password and not password_file and not oauth2:
        table.report(
            "password", "no password", 'add password = "…" or password_file = "path/to/file"'
        )


def _read_imap(table: _Table, home: Path) -> ImapSettings:
    tls = table.choice("tls", TLS_MODES, "ssl", "TLS mode")
    host = table.text("host", "", required=True)
    username = table.text("username", "", required=True)
    password = table.text("password", "") or None
    password_file = table.text("password_file", "") or None
    oauth2 = _read_oauth2(table, home)
    _check_credentials(table, password, password_file, oauth2 is not None)
    return ImapSettings(
        name=table.text("name", f"{username}@{host}"),
        host=host,
        port=table.port("port", 993 if tls == "ssl" else 143),
        tls=tls,
        username=username,
        password=password,
        password_file=home / password_file if password_file else None,
        folder=table.text("folder", "INBOX"),
        processed_folder=table.text("processed_folder", "mailflow/processed"),
        idle=table.flag("idle", True),
        poll_interval=table.seconds("poll_interval", DEFAULT_POLL_INTERVAL),
        oauth2=oauth2,
    )


def _read_imaps(root: _Table, home: Path) -> tuple[ImapSettings, ...]:
    entries = root.data.get("imap", [])
    if not isinstance(entries, list) or not all(isinstance(item, dict) for item in entries):
        root.report(
            "imap",
            f"expected [[imap]] tables, got {describe(entries)}",
            "write each mailbox as an [[imap]] section",
        )
        return ()
    mailboxes: list[ImapSettings] = []
    for index, entry in enumerate(entries):
        table = _Table(root.checker, f"imap[{index}]", entry)
        table.check_known(_IMAP_KEYS)
        mailbox = _read_imap(table, home)
        if any(other.name == mailbox.name for other in mailboxes):
            table.report(
                "name",
                f"another [[imap]] is also named '{mailbox.name}'",
                'give each mailbox its own name = "…"',
            )
        mailboxes.append(mailbox)
    return tuple(mailboxes)


# -- entry points --------------------------------------------------------------------------


def _parse_toml(source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(source)
    except tomllib.TOMLDecodeError as error:
        text = str(error)
        where = re.search(r"\s*\(at line (\d+), column (\d+)\)", text)
        line = int(where.group(1)) if where else None
        message = text[: where.start()] if where else re.sub(r"\s*\(at end of document\)", "", text)
        fix = f"correct the TOML near column {where.group(2)}" if where else "correct the TOML"
        raise ConfigError([Problem(SETTINGS_FILE, line, "(syntax)", message, fix)]) from None


def settings_from_text(home: Path, source: str) -> Settings:
    """Validate the text of ``mailflow.toml``; raise one ConfigError with every problem."""
    checker = _Checker(source)
    root = _Table(checker, "", _parse_toml(source))
    root.check_known(_SECTIONS)
    desk = _read_desk(root)
    trusted, secret_file = _read_security(root, home)
    max_bytes, smtp_listen, lmtp_listen = _read_inbound(root)
    settings = Settings(
        home=home,
        desk=desk,
        trusted_authserv_ids=trusted,
        outbound_smtp=_read_outbound(root),
        smtp_listen=smtp_listen,
        lmtp_listen=lmtp_listen,
        max_message_bytes=max_bytes,
        database_url=_read_database(root),
        imap=_read_imaps(root, home),
        secret_file=secret_file,
        digest_time=_read_schedule(root),
    )
    if checker.problems:
        raise ConfigError(sorted(checker.problems, key=lambda problem: problem.line or 0))
    return settings


def load_settings(home: Path) -> Settings:
    """Read and validate ``home/mailflow.toml``."""
    return settings_from_text(home, read_config_text(home / SETTINGS_FILE, SETTINGS_FILE))


def _secret_problem(settings: Settings, message: str, fix: str) -> ConfigError:
    path = settings.secret_file
    name = str(path.relative_to(settings.home)) if path.is_relative_to(settings.home) else str(path)
    return ConfigError([Problem(name, None, "(file)", message, fix)])


def read_secret(settings: Settings) -> bytes:
    """The server secret that signs reply addresses (the hex in ``secret.key``, decoded)."""
    path = settings.secret_file
    try:
        mode = path.stat().st_mode
        text = path.read_text("ascii", errors="replace").strip()
    except FileNotFoundError:
        raise _secret_problem(settings, f"not found at {path}", INIT_FIX) from None
    # A readable secret lets anyone forge reply addresses, so refuse rather than warn.
    if mode & 0o077:
        raise _secret_problem(
            settings,
            f"other users can access it (mode {mode & 0o777:o})",
            f"run `chmod 600 {path}`",
        )
    try:
        secret = bytes.fromhex(text)
    except ValueError:
        secret = b""
    if len(secret) < 16:
        raise _secret_problem(
            settings,
            "not a key of at least 32 hex digits",
            "write 64 hex digits, e.g. the output of "
            "`python3 -c 'import secrets; print(secrets.token_hex(32))'`",
        )
    return secret
