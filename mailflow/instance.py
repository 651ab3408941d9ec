"""An instance directory: loading its three configuration files, and creating one.

``load_config`` reads ``mailflow.toml``, ``rules.yaml`` and ``people.yaml`` and raises one
``ConfigError`` with the problems of all of them, so ``mailflow check`` shows everything
to fix at once. ``init_instance`` writes a new instance that loads without problems.
"""

from __future__ import annotations

import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

import jinja2

import mailflow
from mailflow.directory import PEOPLE_FILE, Directory, load_directory
from mailflow.errors import ConfigError, Problem
from mailflow.rules import RULES_FILE, RuleSet, check_against, load_rules
from mailflow.settings import SETTINGS_FILE, Settings, load_settings

SECRET_FILE = "secret.key"
DATA_DIRS = ("data", "data/raw", "data/files", "data/sent")


@dataclass(frozen=True)
class Config:
    """Everything an instance is configured with; replaced whole on reload (SIGHUP)."""

    settings: Settings
    directory: Directory
    rules: RuleSet


class InstanceExistsError(ConfigError):
    """``mailflow init`` was pointed at a directory that already holds an instance."""

    def __init__(self, path: Path, existing: str) -> None:
        super().__init__(
            [
                Problem(
                    existing,
                    None,
                    "(file)",
                    f"an instance already exists in {path}",
                    "use `mailflow init --force` to rewrite its configuration (data/ and the "
                    "secret are kept), or choose another directory",
                )
            ]
        )
        self.path = path


def default_rules_path() -> Path:
    """The rules.yaml shipped with mailflow: in the wheel's _data/, else the repository."""
    package = Path(mailflow.__file__).parent
    installed = package / "_data" / "rules.yaml"
    return installed if installed.exists() else package.parent / "rules.yaml"


# -- loading -------------------------------------------------------------------------------


def load_config(home: Path) -> Config:
    """Load and cross-check an instance's files; one ConfigError lists every problem."""
    problems: list[Problem] = []
    settings = rules = directory = None
    try:
        settings = load_settings(home)
    except ConfigError as error:
        problems.extend(error.problems)
    try:
        rules = load_rules(home / RULES_FILE)
    except ConfigError as error:
        problems.extend(error.problems)
    try:
        # Member skills are checked against the rules' skills when the rules loaded.
        directory = load_directory(
            home / PEOPLE_FILE,
            default_language=settings.desk.language if settings else "ja",
            known_skills=list(rules.skills) if rules else None,
        )
    except ConfigError as error:
        problems.extend(error.problems)
    if rules is not None and directory is not None:
        problems.extend(check_against(rules, directory))
    if problems or settings is None or rules is None or directory is None:
        raise ConfigError(problems)
    return Config(settings, directory, rules)


# -- creating ------------------------------------------------------------------------------

SETTINGS_TEMPLATE = """\
# mailflow.toml — settings of one mailflow instance. `mailflow check` validates this file.
# Paths are relative to this directory.

[desk]
# The one address clients write to. Replies come back to desk+<ref>.<tag>@<domain>, so the
# mail server must deliver plus-addresses to this mailbox (Postfix recipient_delimiter = +).
address = "desk@secretary.example"
# Shown as the sender name of every mail mailflow writes.
name = "Example オンライン秘書"
# Deadlines, reminders and digests are read and written in this IANA time zone.
timezone = "Asia/Tokyo"
# Language (ja | en) of mail to people who have none in people.yaml.
language = "ja"

[security]
# authserv-ids whose Authentication-Results header is believed (your own MX, which must
# remove such headers from incoming mail). Empty: only signed reply addresses count.
trusted_authserv_ids = []             # e.g. ["mx.secretary.example"]
# The key that signs reply addresses; keep it mode 0600. Written by `mailflow init`.
secret_file = "secret.key"

[outbound]
# SMTP relay for outgoing mail: "smtp://host:25", "smtps://user:pass@host:465" or
# "smtp+starttls://user:pass@host:587". Empty: mail is written to data/sent/ (a Maildir).
smtp = ""

[inbound]
# Larger messages are refused: a number of bytes, or "25MB", "10MiB".
max_message_size = "25MB"

[inbound.smtp]
# SMTP listener for mail your MX hands over. "" turns it off.
listen = "127.0.0.1:2525"

[inbound.lmtp]
# LMTP listener (Postfix lmtp:, Dovecot). "" turns it off.
listen = ""

[schedule]
# Daily digests go out at this local time (desk time zone) on business days; reminders
# and overdue notices are sent within rules.yaml's working hours.
digest_time = "08:00"

[database]
# Absent: SQLite in data/mailflow.db. PostgreSQL lets several daemons share the work.
# url = "postgresql://mailflow:password@db.secretary.example/mailflow"
# url = "sqlite:////var/lib/mailflow/mailflow.db"

# Zero or more IMAP mailboxes, each polled on its own. Mail is moved to processed_folder
# once accepted, never deleted.
# [[imap]]
# name = "desk"                             # names this mailbox in logs and the store
# host = "imap.secretary.example"
# port = 993                                # default: 993 with ssl, 143 otherwise
# tls = "ssl"                               # "ssl" | "starttls" | "none"
# username = "desk"
# password = "secret"                       # or password_file = "imap-password.txt"
# folder = "INBOX"
# processed_folder = "mailflow/processed"   # "/" separates levels, whatever the server uses
"""

PEOPLE_TEMPLATE = """\
# people.yaml — who works at the desk and whom it serves. `mailflow check` validates it.
# Ids are short names used in commands (#assign sato); each address belongs to one entry.
#
# directors:                  # triage, assign, review every delivery (director model)
#   - id: tanaka
#     name: 田中 花子
#     email: tanaka@secretary.example
#     language: ja            # ja | en; default: [desk] language of mailflow.toml
#
# members:                    # do the work
#   - id: sato
#     name: 佐藤 一郎
#     email: sato@members.example
#     skills: [research, data_entry]       # names from rules.yaml skills
#     capacity: 5             # open requests at once (default 5)
#     languages: [ja, en]     # languages they work in (default: their language)
#     away: ["2026-12-28/2027-01-04"]      # time off, first and last day
#     hours: "09:00-18:00"    # optional working hours
#
# coordinators:               # optional: only receive out-of-skill and over-hours alerts
#   - {id: kobayashi, name: 小林 直子, email: kobayashi@secretary.example}
#
# clients:
#   - id: acme
#     company: 株式会社アクメ
#     plan: director          # director: through a director | direct: a dedicated member
#     director: tanaka        # default: the first director
#     contacts: [yamada@acme.example]      # or "@acme.example" for the whole domain
#     language: ja
#     digest: true            # daily digest of open requests (default true)
#   - id: beta
#     company: Beta LLC
#     plan: direct
#     member: sato            # the dedicated member (required for plan: direct)
#     monthly_hours: 20       # contracted hours per month
#     coordinator: kobayashi
#     contacts: [kim@beta.example]
#     language: en
"""

DEMO_PEOPLE = """\
# people.yaml — demo people written by `mailflow init --demo`. `mailflow check` validates it.
# Ids are short names used in commands (#assign sato); each address belongs to one entry.

directors:
  - {id: tanaka, name: 田中 花子, email: tanaka@secretary.example}
  - {id: ito, name: 伊藤 健, email: ito@secretary.example, language: ja}

members:
  - {id: sato, name: 佐藤 一郎, email: sato@members.example,
     skills: [research, data_entry], capacity: 5}
  - {id: suzuki, name: 鈴木 美咲, email: suzuki@members.example,
     skills: [translation, writing], languages: [ja, en], away: ["2026-12-28/2027-01-04"]}
  - {id: takahashi, name: 高橋 健太, email: takahashi@members.example,
     skills: [accounting, data_entry, scheduling], capacity: 4, hours: "10:00-16:00"}
  - {id: emma, name: Emma Wilson, email: emma@members.example, language: en,
     skills: [research, writing, design], languages: [en, ja], capacity: 3}

clients:
  # Director model: requests go to the director, who assigns a member and reviews.
  - {id: acme, company: 株式会社アクメ, plan: director, director: tanaka,
     contacts: [yamada@acme.example], language: ja}
  - {id: delta, company: Delta Trading Inc., plan: director, director: ito,
     contacts: [lee@delta.example, "@delta-trading.example"], language: en, digest: false}
  # Direct model: a dedicated member estimates and delivers, against monthly hours.
  - {id: beta, company: Beta LLC, plan: direct, member: suzuki, monthly_hours: 20,
     contacts: [kim@beta.example], language: en, coordinator: tanaka}
  - {id: gamma, company: 合同会社ガンマ, plan: direct, member: takahashi, monthly_hours: 10,
     contacts: [kato@gamma.example, suzuki.keiri@gamma.example], language: ja, coordinator: ito}
"""


def _existing_file(path: Path) -> str | None:
    names = (SETTINGS_FILE, PEOPLE_FILE, RULES_FILE)
    return next((name for name in names if (path / name).exists()), None)


def _write_text(path: Path, text: str, written: list[Path]) -> None:
    path.write_text(text, encoding="utf-8")
    written.append(path)


def _write_secret(path: Path, written: list[Path]) -> None:
    # Created 0600 from the start (O_EXCL, explicit mode), so it is never readable by others.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="ascii") as secret:
        secret.write(secrets.token_hex(32) + "\n")
    os.chmod(path, 0o600)
    written.append(path)


def init_instance(path: Path, *, demo: bool, force: bool) -> list[Path]:
    """Create an instance in ``path`` and return the files and directories written.

    An existing instance is refused unless ``force``; with ``force`` its three
    configuration files are rewritten, while data/ and secret.key are kept (a new secret
    would break the reply addresses of every mail already sent).
    """
    existing = _existing_file(path) if path.is_dir() else None
    if existing is not None and not force:
        raise InstanceExistsError(path, existing)
    path.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    _write_text(path / SETTINGS_FILE, SETTINGS_TEMPLATE, written)
    shutil.copyfile(default_rules_path(), path / RULES_FILE)
    written.append(path / RULES_FILE)
    _write_text(path / PEOPLE_FILE, DEMO_PEOPLE if demo else PEOPLE_TEMPLATE, written)
    for name in DATA_DIRS:
        if not (path / name).is_dir():
            (path / name).mkdir()
            written.append(path / name)
    if not (path / SECRET_FILE).exists():
        _write_secret(path / SECRET_FILE, written)
    return written


def template_cache(directory: Path) -> jinja2.BytecodeCache | None:
    """Compiled templates on disk (``data/cache/templates``): compiling one costs ~6 ms,
    loading it ~0.2 ms, and every process (each crew worker, each command) would compile
    the templates it uses again. An entry is used only while its source is unchanged
    (Jinja compares a checksum) and is written whole (temporary file, then rename)."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None  # a read-only instance compiles in memory, as without a cache
    return _BytecodeCache(str(directory))


class _BytecodeCache(jinja2.FileSystemBytecodeCache):
    """A cache that cannot be read or written (a full disk, a folder made by another
    user's `mailflow check`) only makes a start slower: it never fails a render."""

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        try:
            super().load_bytecode(bucket)
        except OSError:
            bucket.reset()

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        try:
            super().dump_bytecode(bucket)
        except OSError:
            pass
