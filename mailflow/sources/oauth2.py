"""XOAUTH2 access tokens for IMAP (Gmail, Microsoft 365) from a stored refresh token.

``TokenSource.access_token()`` returns a cached access token, or exchanges the refresh token
at the configured token endpoint (RFC 6749 §6, an HTTP POST with urllib). Providers that
rotate refresh tokens (Microsoft always, Google sometimes) answer with a new one; it is
written back to ``refresh_token_file`` atomically with mode 0600 before it is used, so a
crash never leaves the only valid refresh token in memory.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
import urllib.error
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mailflow.errors import MailflowError
from mailflow.settings import OAuth2Settings

log = logging.getLogger("mailflow.imap")

# An access token this close to its expiry is refreshed rather than used.
EXPIRY_MARGIN = 60.0
DEFAULT_LIFETIME = 3600.0
REQUEST_TIMEOUT = 30.0


class OAuth2Error(MailflowError):
    """The token endpoint refused or could not be reached; ``transient`` says retry later."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


Post = Callable[[str, bytes], dict[str, Any]]


def post_form(url: str, body: bytes) -> dict[str, Any]:
    """POST a form to the token endpoint and return its JSON answer."""
    # Imported here: urllib.request (http.client) would cost every start-up, and only an
    # XOAUTH2 mailbox refreshing its token needs it.
    import urllib.request

    request = urllib.request.Request(
        url,
        data=body,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
        },
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT) as response:
            return _json(response.read(), url)
    except urllib.error.HTTPError as error:
        answer = _json(error.read(), url, strict=False)
        reason = answer.get("error_description") or answer.get("error") or error.reason
        # 4xx (invalid_grant, invalid_client) needs a person; 5xx and 429 pass.
        transient = error.code >= 500 or error.code == 429
        raise OAuth2Error(
            f"token endpoint {url} answered {error.code}: {reason}", transient=transient
        ) from None
    except (urllib.error.URLError, OSError) as error:
        raise OAuth2Error(f"token endpoint {url} unreachable: {error}", transient=True) from None


def _json(body: bytes, url: str, *, strict: bool = True) -> dict[str, Any]:
    try:
        answer = json.loads(body)
    except ValueError:
        answer = None
    if isinstance(answer, dict):
        return answer
    if strict:
        raise OAuth2Error(f"token endpoint {url} did not answer with JSON", transient=True)
    return {}


def write_private(path: Path, text: str) -> None:
    """Replace ``path`` atomically with ``text``, readable by the owner only."""
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), 0o600)
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def read_secret_file(path: Path, what: str) -> str:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError as error:
        raise OAuth2Error(f"cannot read the {what} {path}: {error}", transient=False) from None
    if not text:
        raise OAuth2Error(f"the {what} {path} is empty", transient=False)
    return text


class TokenSource:
    """Access tokens for one mailbox; thread-compatible (one per IMAP source)."""

    def __init__(
        self,
        settings: OAuth2Settings,
        *,
        post: Post = post_form,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self._post = post
        self._clock = clock
        self._token: str | None = None
        self._expires_at = 0.0

    def access_token(self) -> str:
        """A token valid for at least ``EXPIRY_MARGIN`` seconds, refreshed if needed."""
        if self._token is None or self._clock() >= self._expires_at - EXPIRY_MARGIN:
            self.refresh()
        assert self._token is not None
        return self._token

    def invalidate(self) -> None:
        """Forget the cached token (the server refused it); the next call refreshes."""
        self._token = None

    def refresh(self) -> None:
        settings = self.settings
        refresh_token = read_secret_file(settings.refresh_token_file, "refresh token file")
        answer = self._post(settings.token_endpoint, self._form(refresh_token))
        token = answer.get("access_token")
        if not isinstance(token, str) or not token:
            raise OAuth2Error(
                f"token endpoint {settings.token_endpoint} gave no access_token", transient=True
            )
        rotated = answer.get("refresh_token")
        if isinstance(rotated, str) and rotated and rotated != refresh_token:
            write_private(settings.refresh_token_file, rotated + "\n")
            log.info("stored the rotated refresh token in %s", settings.refresh_token_file)
        self._token = token
        self._expires_at = self._clock() + _lifetime(answer.get("expires_in"))

    def _form(self, refresh_token: str) -> bytes:
        settings = self.settings
        fields = {
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": settings.client_id,
        }
        secret = settings.client_secret
        if settings.client_secret_file is not None:
            secret = read_secret_file(settings.client_secret_file, "client secret file")
        if secret:
            fields["client_secret"] = secret
        if settings.scope:
            fields["scope"] = settings.scope
        return urllib.parse.urlencode(fields).encode("ascii")


def _lifetime(value: object) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    if isinstance(value, str) and value.isdigit():
        return float(value)
    return DEFAULT_LIFETIME
