"""mailflow.toml: what loads, and the exact text of each mistake."""

from __future__ import annotations

import os
from pathlib import Path
from textwrap import dedent

import pytest

from mailflow.errors import ConfigError
from mailflow.settings import TomlLines, load_settings, read_secret, settings_from_text

DESIGN_TOML = """\
[desk]
address = "desk@secretary.example"      # the one inbound address
name = "Example オンライン秘書"
timezone = "Asia/Tokyo"
language = "ja"

[security]
trusted_authserv_ids = ["mx.secretary.example"]

[outbound]
smtp = "smtp://127.0.0.1:8025"

[[imap]]
host = "127.0.0.1"
port = 10143
tls = "none"
username = "desk"
password = "secret"
folder = "INBOX"
processed_folder = "mailflow/processed"
"""

MINIMAL = '[desk]\naddress = "desk@secretary.example"\n'


def write(home: Path, text: str) -> Path:
    (home / "mailflow.toml").write_text(dedent(text), encoding="utf-8")
    return home


def problems(home: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(home, text))
    return [str(problem) for problem in caught.value.problems]


def test_design_example_loads(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, DESIGN_TOML))
    assert settings.desk.address == "desk@secretary.example"
    assert settings.desk.local_part == "desk" and settings.desk.domain == "secretary.example"
    assert settings.desk.name == "Example オンライン秘書"
    assert settings.trusted_authserv_ids == ("mx.secretary.example",)
    assert settings.outbound_smtp == "smtp://127.0.0.1:8025"
    [imap] = settings.imap
    assert (imap.host, imap.port, imap.tls, imap.username) == ("127.0.0.1", 10143, "none", "desk")
    assert imap.password == "secret" and "secret" not in repr(imap)
    assert imap.processed_folder == "mailflow/processed"
    assert str(settings.tz) == "Asia/Tokyo"


def test_defaults_of_a_minimal_file(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, MINIMAL))
    assert settings.outbound_smtp is None
    assert settings.smtp_listen == ("127.0.0.1", 2525)
    assert settings.lmtp_listen is None
    assert settings.max_message_bytes == 25_000_000
    assert settings.database_url is None
    assert settings.imap == ()
    assert settings.secret_file == tmp_path / "secret.key"
    assert settings.db_path == tmp_path / "data" / "mailflow.db"
    assert settings.sent_dir == tmp_path / "data" / "sent"
    assert settings.raw_dir == tmp_path / "data" / "raw"
    assert settings.files_dir == tmp_path / "data" / "files"
    assert settings.desk.language == "ja" and settings.desk.timezone == "Asia/Tokyo"


def test_listeners_sizes_and_database(tmp_path: Path) -> None:
    settings = load_settings(
        write(
            tmp_path,
            MINIMAL
            + dedent("""\
        [inbound]
        max_message_size = "10MiB"
        [inbound.smtp]
        listen = ""
        [inbound.lmtp]
        listen = "[::1]:24"
        [database]
        url = "postgresql://mailflow@db.example/mailflow"
        [outbound]
        smtp = "smtp+starttls://user:pa55@relay.example:587"
        """),
        )
    )
    assert settings.max_message_bytes == 10 * 1024 * 1024
    assert settings.smtp_listen is None
    assert settings.lmtp_listen == ("::1", 24)
    assert settings.database_url == "postgresql://mailflow@db.example/mailflow"
    assert settings.outbound_smtp == "smtp+starttls://user:pa55@relay.example:587"


def test_imap_defaults(tmp_path: Path) -> None:
    settings = load_settings(
        write(
            tmp_path,
            MINIMAL
            + dedent("""\
        [[imap]]
        host = "imap.example"
        username = "desk"
        password_file = "imap.pw"
        """),
        )
    )
    [imap] = settings.imap
    assert (imap.port, imap.tls, imap.folder) == (993, "ssl", "INBOX")
    assert imap.name == "desk@imap.example"
    assert imap.password is None and imap.password_file == tmp_path / "imap.pw"


def test_unknown_section_and_key(tmp_path: Path) -> None:
    assert problems(tmp_path, MINIMAL + "adress = 'x'\n[outbund]\nsmtp = ''\n") == [
        "mailflow.toml:3: desk.adress: unknown key — fix: remove it or check the spelling; "
        "known keys: address, name, timezone, language",
        "mailflow.toml:4: outbund: unknown section — fix: remove it or check the spelling; "
        "known keys: desk, security, outbound, inbound, database, imap, schedule",
    ]


def test_desk_mistakes_are_all_reported(tmp_path: Path) -> None:
    assert problems(
        tmp_path,
        """\
        [desk]
        address = "desk"
        timezone = "Asia/Tokio"
        language = "fr"
        """,
    ) == [
        "mailflow.toml:2: desk.address: 'desk' is not an email address — fix: write a bare "
        'address such as "desk@secretary.example"',
        "mailflow.toml:3: desk.timezone: unknown time zone 'Asia/Tokio' — fix: use an IANA name "
        'such as "Asia/Tokyo"',
        "mailflow.toml:4: desk.language: unknown language 'fr' — fix: use one of: ja, en",
    ]


def test_missing_desk_and_address(tmp_path: Path) -> None:
    assert problems(tmp_path, "[desk]\nname = 'x'\n") == [
        'mailflow.toml:1: desk.address: required key is missing — fix: add `address = "…"` '
        "under [desk]"
    ]
    assert problems(tmp_path, "") == [
        "mailflow.toml: desk: required section is missing — fix: add a [desk] section with "
        'address = "desk@your-domain.example"'
    ]


def test_plus_in_desk_address(tmp_path: Path) -> None:
    [problem] = problems(tmp_path, '[desk]\naddress = "desk+x@secretary.example"\n')
    assert problem.startswith("mailflow.toml:2: desk.address: 'desk+x@secretary.example' has a '+'")


def test_imap_mistakes_name_the_mailbox(tmp_path: Path) -> None:
    assert problems(
        tmp_path,
        MINIMAL
        + dedent("""\
        [[imap]]
        host = "a.example"
        username = "desk"
        password = "x"

        [[imap]]
        host = "b.example"
        port = 70000
        tls = "tls"
        username = "desk"
        """),
    ) == [
        'mailflow.toml:8: imap[1].password: no password — fix: add password = "…" or '
        'password_file = "path/to/file"',
        "mailflow.toml:10: imap[1].port: port 70000 is out of range — fix: use a number from "
        "1 to 65535",
        "mailflow.toml:11: imap[1].tls: unknown TLS mode 'tls' — fix: use one of: ssl, starttls, "
        "none",
    ]


def test_url_mistakes_hide_passwords(tmp_path: Path) -> None:
    assert problems(
        tmp_path,
        MINIMAL
        + dedent("""\
        [outbound]
        smtp = "http://user:hunter2@relay.example"
        [database]
        url = "mysql://u:hunter2@db/x"
        """),
    ) == [
        "mailflow.toml:4: outbound.smtp: unknown scheme in 'http://user:***@relay.example' — "
        "fix: start it with smtp://, smtps:// or smtp+starttls://, or leave it empty to write "
        "mail to data/sent/",
        "mailflow.toml:6: database.url: unsupported database URL 'mysql://u:***@db/x' — fix: "
        'use "sqlite:///path/to/mailflow.db" or "postgresql://user:password@host/db", or remove '
        "it for SQLite in data/",
    ]


def test_listen_and_size_mistakes(tmp_path: Path) -> None:
    assert problems(
        tmp_path,
        MINIMAL
        + dedent("""\
        [inbound]
        max_message_size = "lots"
        [inbound.lmtp]
        listen = "2525"
        """),
    ) == [
        "mailflow.toml:4: inbound.max_message_size: 'lots' is not a size — fix: write a number "
        'of bytes or a size such as "25MB" or "10MiB"',
        "mailflow.toml:6: inbound.lmtp.listen: '2525' is not host:port — fix: write it as "
        '"127.0.0.1:2525", or "" to turn this listener off',
    ]


def test_toml_syntax_error_has_its_line(tmp_path: Path) -> None:
    assert problems(tmp_path, '[desk]\naddress = "desk@secretary.example"\nname = \n') == [
        "mailflow.toml:3: (syntax): Invalid value — fix: correct the TOML near column 8"
    ]


def test_missing_file_says_run_init(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path)
    assert str(caught.value) == (
        f"mailflow.toml: (file): not found at {tmp_path / 'mailflow.toml'} — fix: run "
        "`mailflow init`"
    )


def test_key_lines_follow_tables_and_arrays() -> None:
    lines = TomlLines('a = 1\n[x.y]\nb = 2\n[[m]]\nc = 3\n[[m]]\ns = """\nd = 4\n"""\nc = 5\n')
    assert lines.line_of("a") == 1
    assert lines.line_of("x.y.b") == 3
    assert lines.line_of("m[0].c") == 5
    assert lines.line_of("m[1].c") == 10
    assert lines.line_of("m[1].d") == 6  # inside a string: falls back to the table
    assert lines.line_of("nowhere") is None


def test_read_secret(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, MINIMAL))
    with pytest.raises(ConfigError, match="run `mailflow init`"):
        read_secret(settings)
    secret = tmp_path / "secret.key"
    secret.write_text("ab" * 32 + "\n")
    secret.chmod(0o644)
    with pytest.raises(ConfigError) as caught:
        read_secret(settings)
    assert str(caught.value) == (
        f"secret.key: (file): other users can access it (mode 644) — fix: run `chmod 600 {secret}`"
    )
    os.chmod(secret, 0o600)
    assert read_secret(settings) == bytes.fromhex("ab" * 32)


def test_imap_oauth2_idle_and_poll_interval(tmp_path: Path) -> None:
    settings = load_settings(
        write(
            tmp_path,
            MINIMAL
            + dedent("""\
        [[imap]]
        host = "outlook.office365.com"
        username = "desk@secretary.example"
        idle = false
        poll_interval = 15
        oauth2_token_endpoint = "https://login.microsoftonline.com/common/oauth2/v2.0/token"
        oauth2_client_id = "client-1"
        oauth2_client_secret_file = "client.secret"
        oauth2_refresh_token_file = "refresh.token"
        oauth2_scope = "https://outlook.office.com/IMAP.AccessAsUser.All offline_access"
        """),
        )
    )
    [imap] = settings.imap
    assert (imap.idle, imap.poll_interval, imap.password) == (False, 15.0, None)
    assert imap.oauth2 is not None
    assert imap.oauth2.client_id == "client-1" and imap.oauth2.client_secret is None
    assert imap.oauth2.client_secret_file == tmp_path / "client.secret"
    assert imap.oauth2.refresh_token_file == tmp_path / "refresh.token"
    assert imap.oauth2.scope == "https://outlook.office.com/IMAP.AccessAsUser.All offline_access"


def test_imap_defaults_for_waiting(tmp_path: Path) -> None:
    [imap] = load_settings(write(tmp_path, DESIGN_TOML)).imap
    assert (imap.idle, imap.poll_interval, imap.oauth2) == (True, 60.0, None)


def test_imap_oauth2_mistakes(tmp_path: Path) -> None:
    assert problems(
        tmp_path,
        MINIMAL
        + dedent("""\
        [[imap]]
        host = "imap.gmail.com"
        username = "desk@secretary.example"
        password = "x"
        idle = "yes"
        poll_interval = 0
        oauth2_token_endpoint = "http://oauth2.example/token"
        oauth2_client_secret = "a"
        oauth2_client_secret_file = "b"
        """),
    ) == [
        "mailflow.toml:3: imap[0].oauth2_refresh_token_file: required key is missing — fix: add "
        '`oauth2_refresh_token_file = "…"` under [imap[0]]',
        "mailflow.toml:3: imap[0].oauth2_client_id: required key is missing — fix: add "
        '`oauth2_client_id = "…"` under [imap[0]]',
        "mailflow.toml:6: imap[0].password: both a password and oauth2 settings are set — fix: "
        "keep either the password or the oauth2_* keys",
        "mailflow.toml:7: imap[0].idle: expected true or false, got 'yes' (text) — fix: write "
        "true or false",
        "mailflow.toml:8: imap[0].poll_interval: expected a number of seconds above 0, got 0 "
        "(a number) — fix: write a number without quotes, e.g. 60",
        "mailflow.toml:9: imap[0].oauth2_token_endpoint: 'http://oauth2.example/token' is not an "
        "https:// URL — fix: use the provider's token URL, e.g. "
        '"https://oauth2.googleapis.com/token" or '
        '"https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token"',
        "mailflow.toml:11: imap[0].oauth2_client_secret_file: both oauth2_client_secret and "
        "oauth2_client_secret_file are set — fix: keep only one of them",
    ]


def test_digest_time_is_read_and_checked(tmp_path: Path) -> None:
    base = '[desk]\naddress = "desk@secretary.example"\n'
    settings = settings_from_text(tmp_path, base + '[schedule]\ndigest_time = "07:45"\n')
    assert settings.digest_time.hour == 7 and settings.digest_time.minute == 45
    with pytest.raises(ConfigError) as caught:
        settings_from_text(tmp_path, base + '[schedule]\ndigest_time = "25:00"\n')
    assert "mailflow.toml:4: schedule.digest_time: '25:00' is not a time of day" in str(
        caught.value
    )
