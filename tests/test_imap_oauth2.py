"""XOAUTH2: the refresh-token exchange against a loopback token endpoint, and the login."""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from imapclient.exceptions import LoginError

from mailflow.settings import ImapSettings, OAuth2Settings
from mailflow.sources.imap import ImapSource, Tuning
from mailflow.sources.oauth2 import OAuth2Error, TokenSource


@dataclass
class TokenEndpoint:
    url: str
    forms: list[dict[str, str]] = field(default_factory=list)
    answers: list[tuple[int, dict[str, Any]]] = field(default_factory=list)


@pytest.fixture
def endpoint() -> Iterator[TokenEndpoint]:
    """A token endpoint on loopback that answers from ``answers`` and records each form."""
    state = TokenEndpoint("")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            length = int(self.headers["Content-Length"])
            form = urllib.parse.parse_qs(self.rfile.read(length).decode())
            state.forms.append({key: values[0] for key, values in form.items()})
            status, answer = state.answers.pop(0)
            body = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/token"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def oauth2(endpoint: TokenEndpoint, tmp_path: Path, **changes: Any) -> OAuth2Settings:
    token_file = tmp_path / "refresh.token"
    token_file.write_text("rt-1\n")
    token_file.chmod(0o600)
    values: dict[str, Any] = {
        "token_endpoint": endpoint.url,
        "client_id": "client-1",
        "client_secret": "s3cret",
        "client_secret_file": None,
        "refresh_token_file": token_file,
        "scope": "https://outlook.office.com/IMAP.AccessAsUser.All offline_access",
    }
    values.update(changes)
    return OAuth2Settings(**values)


def test_refresh_exchanges_and_persists_a_rotated_token(
    endpoint: TokenEndpoint, tmp_path: Path
) -> None:
    settings = oauth2(endpoint, tmp_path)
    endpoint.answers += [
        (200, {"access_token": "at-1", "expires_in": 3600, "refresh_token": "rt-2"}),
        (200, {"access_token": "at-2", "expires_in": 3600}),
    ]
    tokens = TokenSource(settings)

    assert tokens.access_token() == "at-1"
    assert tokens.access_token() == "at-1"  # cached: no second request
    assert endpoint.forms == [
        {
            "grant_type": "refresh_token",
            "refresh_token": "rt-1",
            "client_id": "client-1",
            "client_secret": "s3cret",
            "scope": "https://outlook.office.com/IMAP.AccessAsUser.All offline_access",
        }
    ]
    token_file = settings.refresh_token_file
    assert token_file.read_text() == "rt-2\n"
    assert token_file.stat().st_mode & 0o777 == 0o600
    assert [path.name for path in tmp_path.iterdir()] == ["refresh.token"]  # no temp left

    tokens.invalidate()
    assert tokens.access_token() == "at-2"
    assert endpoint.forms[1]["refresh_token"] == "rt-2"
    assert token_file.read_text() == "rt-2\n"


def test_an_expiring_token_is_refreshed(endpoint: TokenEndpoint, tmp_path: Path) -> None:
    now = [1000.0]
    endpoint.answers += [
        (200, {"access_token": "at-1", "expires_in": 120}),
        (200, {"access_token": "at-2", "expires_in": "3600"}),
    ]
    tokens = TokenSource(oauth2(endpoint, tmp_path), clock=lambda: now[0])
    assert tokens.access_token() == "at-1"
    now[0] += 59
    assert tokens.access_token() == "at-1"
    now[0] += 2  # within a minute of expiry
    assert tokens.access_token() == "at-2"


def test_client_secret_file_and_public_clients(endpoint: TokenEndpoint, tmp_path: Path) -> None:
    secret = tmp_path / "client.secret"
    secret.write_text("from-file\n")
    endpoint.answers += [(200, {"access_token": "a"}), (200, {"access_token": "b"})]
    TokenSource(
        oauth2(endpoint, tmp_path, client_secret=None, client_secret_file=secret, scope=None)
    ).refresh()
    TokenSource(oauth2(endpoint, tmp_path, client_secret=None)).refresh()
    assert endpoint.forms[0]["client_secret"] == "from-file" and "scope" not in endpoint.forms[0]
    assert "client_secret" not in endpoint.forms[1]


def test_refusals_say_why_and_whether_to_retry(endpoint: TokenEndpoint, tmp_path: Path) -> None:
    endpoint.answers += [
        (400, {"error": "invalid_grant", "error_description": "AADSTS70008: token expired"}),
        (503, {}),
        (200, {"token_type": "Bearer"}),
    ]
    tokens = TokenSource(oauth2(endpoint, tmp_path))
    with pytest.raises(OAuth2Error, match="answered 400: AADSTS70008: token expired") as refused:
        tokens.refresh()
    assert refused.value.transient is False
    with pytest.raises(OAuth2Error, match="answered 503") as unavailable:
        tokens.refresh()
    assert unavailable.value.transient is True
    with pytest.raises(OAuth2Error, match="gave no access_token"):
        tokens.refresh()
    assert (tmp_path / "refresh.token").read_text() == "rt-1\n"


def test_unreachable_endpoint_and_missing_token_file(tmp_path: Path) -> None:
    from conftest import free_port

    settings = OAuth2Settings(
        token_endpoint=f"http://127.0.0.1:{free_port()}/token",
        client_id="c",
        client_secret=None,
        client_secret_file=None,
        refresh_token_file=tmp_path / "missing.token",
    )
    with pytest.raises(OAuth2Error, match="cannot read the refresh token file"):
        TokenSource(settings).refresh()
    (tmp_path / "missing.token").write_text("rt")
    with pytest.raises(OAuth2Error, match="unreachable") as caught:
        TokenSource(settings).refresh()
    assert caught.value.transient


class FakeImap:
    """Just enough of IMAPClient for a login and the processed-folder check."""

    def __init__(self, log: list[tuple[str, str]], refuse: bool) -> None:
        self.log = log
        self.refuse = refuse

    def oauth2_login(self, user: str, token: str) -> None:
        self.log.append((user, token))
        if self.refuse:
            raise LoginError("[AUTHENTICATIONFAILED] Invalid credentials")

    def has_capability(self, name: str) -> bool:
        return False

    def list_folders(self, directory: str, pattern: str) -> list[tuple[Any, bytes, str]]:
        return [((), b"/", "")]

    def folder_exists(self, name: str) -> bool:
        return True

    def logout(self) -> None:
        pass

    def shutdown(self) -> None:
        pass


def test_xoauth2_login_uses_the_access_token_and_retries_with_a_new_one(
    endpoint: TokenEndpoint, tmp_path: Path
) -> None:
    settings = ImapSettings(
        name="m365",
        host="outlook.office365.com",
        port=993,
        tls="ssl",
        username="desk@secretary.example",
        password=None,
        password_file=None,
        folder="INBOX",
        processed_folder="mailflow/processed",
        oauth2=oauth2(endpoint, tmp_path),
    )
    endpoint.answers += [(200, {"access_token": "at-1"}), (200, {"access_token": "at-2"})]
    logins: list[tuple[str, str]] = []
    refuse = [True]

    def factory(mailbox: ImapSettings, timeout: float) -> FakeImap:
        return FakeImap(logins, refuse.pop(0) if refuse else False)

    source = ImapSource(settings, tuning=Tuning(), client_factory=factory)
    with pytest.raises(Exception, match="AUTHENTICATIONFAILED"):
        source.connect()
    source.connect()
    assert logins == [("desk@secretary.example", "at-1"), ("desk@secretary.example", "at-2")]
    source.close()
