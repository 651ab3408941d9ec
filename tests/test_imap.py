"""The IMAP source against a real, private Dovecot (tests/dovecot.py).

Every test gets a fresh user, so mailboxes start empty; the server lives for the session.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from dovecot import LEGACY_HOST, UIDPLUS_HOST, Dovecot
from mails import client_mail

from mailflow.errors import StoreError
from mailflow.settings import ImapSettings
from mailflow.sources.imap import (
    ImapPoller,
    ImapSource,
    MailboxError,
    Tuning,
    folder_path,
    open_client,
)
from mailflow.store import Accepted, Store

pytestmark = pytest.mark.imap

PROCESSED = "mailflow.processed"  # "mailflow/processed" with Dovecot's "." delimiter
FAST = Tuning(timeout=5, idle_slice=0.2, recheck=30, backoff_start=0.1, backoff_max=0.4)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store(f"sqlite:///{tmp_path}/m.db", tmp_path / "data").open()
    yield opened
    opened.close()


def mailbox(dovecot: Dovecot, name: str = "desk", **changes: object) -> ImapSettings:
    """Settings for a fresh user on the private server."""
    user = dovecot.add_user()
    settings = ImapSettings(
        name=name,
        host=dovecot.host,
        port=dovecot.port,
        tls="none",
        username=user,
        password=dovecot.passwords[user],
        password_file=None,
        folder="INBOX",
        processed_folder="mailflow/processed",
    )
    return replace(settings, **changes)  # type: ignore[arg-type]


class Recorder:
    """accept_many that records each batch before handing it to the real store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.batches: list[list[tuple[bytes, str, str]]] = []

    def __call__(self, messages: Sequence[tuple[bytes, str, str]]) -> list[Accepted]:
        self.batches.append(list(messages))
        return self.store.accept_many(messages)

    @property
    def refs(self) -> list[str]:
        return [ref for batch in self.batches for _raw, _source, ref in batch]


def mails(count: int) -> list[bytes]:
    return [client_mail(subject=f"依頼 {number}") for number in range(count)]


def unrecent(fetched: dict[int, dict[bytes, Any]]) -> dict[int, tuple[bytes, list[bytes]]]:
    """Bodies and flags without \\Recent, which only the first session to look gets."""
    return {
        uid: (item[b"BODY[]"], sorted(set(item[b"FLAGS"]) - {rb"\Recent"}))
        for uid, item in fetched.items()
    }


# -- drain ------------------------------------------------------------------------------


def test_drain_accepts_each_mail_once_and_moves_it(dovecot: Dovecot, store: Store) -> None:
    settings = mailbox(dovecot)
    user = settings.username
    raws = mails(5)
    dovecot.append(user, "INBOX", raws[0], flags=[r"\Seen"])  # read in a mail client
    dovecot.append_many(user, "INBOX", raws[1:])
    uids = dovecot.list_uids(user, "INBOX")
    source = ImapSource(settings, tuning=replace(FAST, batch_size=2))
    accept = Recorder(store)

    assert source.drain(accept) == 5

    assert [len(batch) for batch in accept.batches] == [2, 2, 1]
    assert {source_name for batch in accept.batches for _, source_name, _ in batch} == {"imap:desk"}
    uidvalidity = accept.refs[0].split(":")[0]
    assert accept.refs == [f"{uidvalidity}:{uid}" for uid in uids]
    assert dovecot.list_uids(user, "INBOX") == []
    assert PROCESSED in dovecot.folders(user)
    moved = dovecot.fetch_all(user, PROCESSED)
    assert sorted(bytes(item[b"BODY[]"]) for item in moved.values()) == sorted(raws)
    # BODY.PEEK: unread mail stays unread for the people who use the mailbox too.
    seen = [rb"\Seen" in item[b"FLAGS"] for item in moved.values()]
    assert sorted(seen) == [False, False, False, False, True]
    assert store.counts()["inbox"] == 5

    assert source.drain(accept) == 0
    assert len(accept.batches) == 3
    assert store.counts()["inbox"] == 5
    source.close()


def test_the_first_batches_of_a_drain_grow_to_the_batch_size(
    dovecot: Dovecot, store: Store
) -> None:
    """Small first batches: what processes the mail (a crew) has some at once."""
    settings = mailbox(dovecot)
    dovecot.append_many(settings.username, "INBOX", mails(15))
    source = ImapSource(settings, tuning=replace(FAST, batch_size=8, first_batch=2))
    accept = Recorder(store)

    assert source.drain(accept) == 15

    assert [len(batch) for batch in accept.batches] == [2, 4, 8, 1]
    source.close()


def test_the_first_batch_is_fetched_before_the_sizes_of_the_rest(
    dovecot: Dovecot, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What processes the mail waits for the first batch alone, not for every size."""
    settings = mailbox(dovecot)
    dovecot.append_many(settings.username, "INBOX", mails(15))
    source = ImapSource(settings, tuning=replace(FAST, batch_size=8, first_batch=2))
    client = source.connect()
    asked: list[tuple[int, str]] = []
    fetch = client.fetch

    def recording(uids: list[int], items: list[str | bytes]) -> Any:
        names = (item.decode() if isinstance(item, bytes) else item for item in items)
        asked.append((len(uids), " ".join(names)))
        return fetch(uids, items)

    monkeypatch.setattr(client, "fetch", recording)
    assert source.drain(store.accept_many) == 15
    assert asked[:3] == [(2, "RFC822.SIZE"), (2, "BODY.PEEK[]"), (13, "RFC822.SIZE")]
    source.close()


def test_a_failed_accept_moves_and_flags_nothing(dovecot: Dovecot, store: Store) -> None:
    settings = mailbox(dovecot)
    user = settings.username
    dovecot.append_many(user, "INBOX", mails(3))
    before = unrecent(dovecot.fetch_all(user, "INBOX"))

    def broken(messages: Sequence[tuple[bytes, str, str]]) -> list[Accepted]:
        raise StoreError("database is locked")

    source = ImapSource(settings, tuning=FAST)
    with pytest.raises(StoreError):
        source.drain(broken)
    assert unrecent(dovecot.fetch_all(user, "INBOX")) == before
    assert dovecot.list_uids(user, PROCESSED) == []

    # The same connection carries on once the store is back.
    assert source.drain(store.accept_many) == 3
    assert dovecot.list_uids(user, "INBOX") == []
    source.close()


def test_a_failed_accept_mid_drain_moves_only_the_batches_before_it(
    dovecot: Dovecot, store: Store
) -> None:
    settings = mailbox(dovecot)
    user = settings.username
    dovecot.append_many(user, "INBOX", mails(7))
    uids = dovecot.list_uids(user, "INBOX")
    batches = 0

    def second_batch_fails(messages: Sequence[tuple[bytes, str, str]]) -> list[Accepted]:
        # The third batch is being fetched meanwhile.
        nonlocal batches
        batches += 1
        if batches == 2:
            raise StoreError("database is locked")
        return store.accept_many(messages)

    source = ImapSource(settings, tuning=replace(FAST, batch_size=2))
    with pytest.raises(StoreError):
        source.drain(second_batch_fails)
    assert dovecot.list_uids(user, "INBOX") == uids[2:]
    assert store.counts()["inbox"] == 2

    # The fetch that ran beside the failed accept has ended: the connection carries on.
    assert source.drain(store.accept_many) == 5
    assert dovecot.list_uids(user, "INBOX") == []
    assert store.counts()["inbox"] == 7
    source.close()


@pytest.mark.parametrize("host", [UIDPLUS_HOST, LEGACY_HOST], ids=["uidplus", "expunge"])
def test_servers_without_move_get_copy_and_expunge(
    dovecot: Dovecot, store: Store, host: str
) -> None:
    settings = mailbox(dovecot, host=host)
    raws = mails(4)
    dovecot.append_many(settings.username, "INBOX", raws)
    source = ImapSource(settings, tuning=replace(FAST, batch_size=3))

    assert source.drain(store.accept_many) == 4

    assert dovecot.list_uids(settings.username, "INBOX") == []
    moved = dovecot.fetch_all(settings.username, PROCESSED)
    assert sorted(bytes(item[b"BODY[]"]) for item in moved.values()) == sorted(raws)
    assert not any(rb"\Deleted" in item[b"FLAGS"] for item in moved.values())
    source.close()


def test_the_same_mail_in_two_mailboxes_is_accepted_once(dovecot: Dovecot, store: Store) -> None:
    raw = client_mail()
    first, second = mailbox(dovecot, "first"), mailbox(dovecot, "second")
    for settings in (first, second):
        dovecot.append(settings.username, "INBOX", raw)

    poller = ImapPoller([first, second], tuning=FAST)
    assert poller.drain_all(store.accept_many) in (
        {"first": 1, "second": 0},
        {"first": 0, "second": 1},
    )

    assert store.counts()["inbox"] == 1
    for settings in (first, second):
        assert dovecot.list_uids(settings.username, "INBOX") == []
        assert len(dovecot.list_uids(settings.username, PROCESSED)) == 1


def test_processed_folder_follows_the_server_delimiter() -> None:
    assert folder_path("mailflow/processed", ".") == "mailflow.processed"
    assert folder_path("mailflow/processed", "/") == "mailflow/processed"
    assert folder_path("mailflow/processed", ".", "INBOX.") == "INBOX.mailflow.processed"
    assert folder_path("INBOX/done", ".", "INBOX.") == "INBOX.done"
    assert folder_path("a//b/", None) == "a_b"


# -- credentials --------------------------------------------------------------------------


def test_password_file_is_read_at_login(dovecot: Dovecot, store: Store, tmp_path: Path) -> None:
    settings = mailbox(dovecot)
    secret = tmp_path / "imap.pw"
    secret.write_text(f"{settings.password}\n")
    settings = replace(settings, password=None, password_file=secret)
    dovecot.append(settings.username, "INBOX", client_mail())

    with ImapSource(settings, tuning=FAST) as source:
        assert source.drain(store.accept_many) == 1

    missing = replace(settings, password_file=tmp_path / "nope.pw")
    with pytest.raises(MailboxError, match=r"imap:desk: cannot read password_file .*nope\.pw"):
        ImapSource(missing, tuning=FAST).drain(store.accept_many)


def test_one_wrong_password_does_not_stop_the_other_mailbox(dovecot: Dovecot, store: Store) -> None:
    good = mailbox(dovecot, "good")
    bad = replace(mailbox(dovecot, "bad"), password="wrong")
    dovecot.append_many(good.username, "INBOX", mails(3))

    results = ImapPoller([bad, good], tuning=FAST).drain_all(store.accept_many)

    assert results["good"] == 3
    assert isinstance(results["bad"], MailboxError)
    assert "imap:bad" in str(results["bad"]) and "wrong" not in str(results["bad"])


def test_threads_keep_draining_while_another_account_fails(
    dovecot: Dovecot, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    good = mailbox(dovecot, "good")
    bad = replace(mailbox(dovecot, "bad"), password="wrong")
    woken = threading.Event()
    stop = threading.Event()
    poller = ImapPoller([bad, good], tuning=FAST)
    caplog.set_level(logging.INFO, logger="mailflow.imap")

    poller.start(store.accept_many, woken.set, stop)
    try:
        dovecot.append(good.username, "INBOX", client_mail())
        assert woken.wait(5)
        time.sleep(1.0)  # several failed logins of the bad mailbox meanwhile
    finally:
        stop.set()
        assert poller.join(5)

    assert store.counts()["inbox"] == 1
    outages = [
        r
        for r in caplog.records
        if "imap:bad" in r.getMessage() and "unavailable" in r.getMessage()
    ]
    assert len(outages) == 1, "an outage is logged once, not once per attempt"


# -- waiting ------------------------------------------------------------------------------


def test_idle_wakes_within_two_seconds_of_new_mail(dovecot: Dovecot, store: Store) -> None:
    settings = mailbox(dovecot)
    source = ImapSource(settings, tuning=FAST)
    source.drain(store.accept_many)
    outcome: list[tuple[bool, float]] = []

    def waiter() -> None:
        arrived = source.wait(20, threading.Event())
        outcome.append((arrived, time.monotonic()))

    thread = threading.Thread(target=waiter)
    thread.start()
    time.sleep(0.3)
    appended = time.monotonic()
    dovecot.append(settings.username, "INBOX", client_mail())
    thread.join(5)

    [(arrived, woke)] = outcome
    assert arrived and woke - appended < 2.0
    assert source.drain(store.accept_many) == 1
    source.close()


def test_wait_ends_on_timeout_and_on_stop(dovecot: Dovecot) -> None:
    source = ImapSource(mailbox(dovecot), tuning=replace(FAST, max_idle=0.3))
    started = time.monotonic()
    assert source.wait(0.8, threading.Event()) is False  # re-issues IDLE twice meanwhile
    assert 0.7 < time.monotonic() - started < 2.0

    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    started = time.monotonic()
    assert source.wait(30, stop) is False
    assert time.monotonic() - started < 1.0
    source.close()


def test_polls_when_idle_is_off(dovecot: Dovecot) -> None:
    settings = mailbox(dovecot, idle=False, poll_interval=0.2)
    source = ImapSource(settings, tuning=FAST)
    started = time.monotonic()
    assert source.wait(5, threading.Event()) is False
    assert time.monotonic() - started < 1.0
    dovecot.append(settings.username, "INBOX", client_mail())
    assert source.wait(5, threading.Event()) is True
    source.close()


# -- faults -------------------------------------------------------------------------------


def test_reconnects_after_the_server_restarts(
    dovecot: Dovecot, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    settings = mailbox(dovecot)
    woken = threading.Semaphore(0)
    stop = threading.Event()
    poller = ImapPoller([settings], tuning=FAST)
    caplog.set_level(logging.INFO, logger="mailflow.imap")
    poller.start(store.accept_many, woken.release, stop)
    try:
        dovecot.append(settings.username, "INBOX", client_mail())
        assert woken.acquire(timeout=5)
        dovecot.restart()
        dovecot.append(settings.username, "INBOX", client_mail())
        assert woken.acquire(timeout=10)
    finally:
        stop.set()
        assert poller.join(5)

    assert store.counts()["inbox"] == 2
    assert dovecot.list_uids(settings.username, "INBOX") == []
    messages = [record.getMessage() for record in caplog.records]
    assert sum("unavailable" in message for message in messages) <= 1
    if any("unavailable" in message for message in messages):
        assert sum("available again" in message for message in messages) == 1


def test_an_unreachable_server_is_a_mailbox_error(store: Store) -> None:
    from conftest import free_port

    settings = ImapSettings(
        name="gone",
        host="127.0.0.1",
        port=free_port(),
        tls="none",
        username="desk",
        password="x",
        password_file=None,
        folder="INBOX",
        processed_folder="mailflow/processed",
    )
    with pytest.raises(MailboxError, match=r"imap:gone \(127\.0\.0\.1:\d+\): cannot connect"):
        ImapSource(settings, tuning=FAST).drain(store.accept_many)


def test_responses_are_formatted_for_the_log_only_when_it_prints_them(
    dovecot: Dovecot, caplog: pytest.LogCaptureFixture
) -> None:
    settings = mailbox(dovecot)
    quiet = open_client(settings, timeout=5)
    quiet.logout()
    assert quiet._imap.debug == 0

    with caplog.at_level(logging.DEBUG, logger="imapclient.imaplib"):
        chatty = open_client(settings, timeout=5)
        chatty.login(settings.username, settings.password)
        chatty.logout()
    assert chatty._imap.debug == 5
    assert any("LOGIN" in record.getMessage() for record in caplog.records)
    assert not any(settings.password in record.getMessage() for record in caplog.records)
