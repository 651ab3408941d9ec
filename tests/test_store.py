"""The store on SQLite and PostgreSQL: dedup, claims, migrations, outbox bookkeeping."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from mails import client_mail

from mailflow.model import Decision, EventDraft, NewRequest, ServiceModel, State
from mailflow.store import AlreadyProcessed, OutboxDraft, Store, header_message_id, utcnow


@pytest.fixture
def store(database_url: str, tmp_path: Path) -> Store:
    opened = Store(database_url, tmp_path / "data").open()
    yield opened
    opened.close()


def _draft(**changes: Any) -> OutboxDraft:
    """A plain outgoing letter, with ``changes``."""
    fields: dict[str, Any] = {
        "kind": "confirmation",
        "request_ref": None,
        "recipients": ("a@x",),
        "cc": (),
        "subject": "s",
        "body_text": "b",
        "reply_to": "desk@x",
        "message_id": "<mf.1@x>",
        "raw": b"raw",
        "attachments": (),
        "inbox_id": None,
    }
    return OutboxDraft(**{**fields, **changes})


def _new_request() -> NewRequest:
    return NewRequest(
        client_id="acme",
        model=ServiceModel.DIRECTOR,
        subject="調査",
        text="本文",
        language="ja",
        director="tanaka",
        assignee=None,
        state=State.NEW,
        decision=Decision(rule="default", route="director", reasons=("why",)),
    )


def test_same_raw_message_is_accepted_once(store: Store) -> None:
    raw = client_mail(message_id="<same@x>")
    first, second = store.accept(raw, "ingest"), store.accept(raw, "smtp")
    assert not first.duplicate and second.duplicate
    assert first.inbox_id == second.inbox_id
    assert store.counts()["inbox"] == 1
    assert store.raw.get(store.pending()[0].sha256) == raw


def test_reused_message_id_with_other_bytes_is_a_new_message(store: Store) -> None:
    one = store.accept(client_mail(message_id="<reused@x>", body="一\n"), "ingest")
    two = store.accept(client_mail(message_id="<reused@x>", body="二\n"), "ingest")
    assert one.inbox_id != two.inbox_id and not two.duplicate


def test_message_id_is_read_from_folded_headers() -> None:
    raw = b"Subject: x\r\nMessage-ID:\r\n <folded@example>\r\n\r\nMessage-ID: <body@x>\r\n"
    assert header_message_id(raw) == "<folded@example>"
    assert header_message_id(b"Subject: none\r\n\r\nbody") == ""


def test_a_finished_message_cannot_be_finished_again(store: Store) -> None:
    accepted = store.accept(client_mail(), "ingest")
    with store.transaction():
        store.finish(accepted.inbox_id, state="done")
    with pytest.raises(AlreadyProcessed), store.transaction():
        ref = store.create_request(_new_request(), store.reserve_ref(lambda n: f"MF-{n:04d}"))
        store.finish(accepted.inbox_id, state="done", request_ref=ref)
    assert store.pending() == []
    # What the second attempt wrote before finding the mail taken was undone with it.
    assert store.counts()["requests"] == 0
    assert store.show_inbox(accepted.inbox_id)["attempts"] == 1  # type: ignore[index]


def test_a_rolled_back_commit_leaves_the_message_accepted(store: Store) -> None:
    accepted = store.accept(client_mail(), "ingest")
    with pytest.raises(RuntimeError), store.transaction():
        store.create_request(_new_request(), store.reserve_ref(lambda n: f"MF-{n:04d}"))
        raise RuntimeError("crash in the middle")
    assert [p.inbox_id for p in store.pending()] == [accepted.inbox_id]
    assert store.counts()["requests"] == 0


def test_requests_get_short_refs_and_events(store: Store) -> None:
    with store.transaction():
        ref = store.create_request(_new_request(), store.reserve_ref(lambda n: f"MF-{n:04d}"))
        store.add_event(ref, EventDraft(kind="created", actor="yamada", to_state=State.NEW), None)
    shown = store.show_request(ref.lower())
    assert ref == "MF-0001" and shown is not None
    assert shown["state"] == "new" and shown["model"] == "director"
    assert [e["kind"] for e in shown["events"]] == ["created"]
    assert shown["decision"]["rule"] == "default"


def test_quarantine_and_replay(store: Store) -> None:
    accepted = store.accept(client_mail(), "ingest")
    store.quarantine(accepted.inbox_id, "ValueError: broken")
    assert store.list_quarantine()[0]["reason"] == "ValueError: broken"
    assert store.replay(accepted.inbox_id)
    assert store.pending()[0].inbox_id == accepted.inbox_id
    assert not store.replay(accepted.inbox_id)


def test_outbox_rows_move_from_pending_to_sent_or_retry(store: Store) -> None:
    with store.transaction():
        row_id = store.add_outbox(_draft())
    now = utcnow()
    assert [r.id for r in store.due_outbox(now)] == [row_id]
    store.mark_retry(row_id, "relay down", now + timedelta(minutes=1))
    assert store.due_outbox(now) == []
    assert store.due_outbox(now + timedelta(minutes=2))[0].attempts == 1
    store.mark_sent(row_id)
    assert store.list_outbox()[0]["state"] == "sent"


def test_migrations_are_recorded_once(store: Store) -> None:
    assert store.migrate() == []


def test_refs_are_reserved_once_and_never_reused(store: Store) -> None:
    refs = [store.reserve_ref(lambda n: f"MF-{n:04d}") for _ in range(3)]
    assert refs == ["MF-0001", "MF-0002", "MF-0003"]
    with store.transaction():
        store.create_request(_new_request(), refs[2])
    # A reservation whose mail failed leaves a gap; the next ref is still new.
    assert store.reserve_ref(lambda n: f"MF-{n:04d}") == "MF-0004"


def test_migrations_upgrade_an_older_schema(database_url: str, tmp_path: Path) -> None:
    """A database made before columns were added gets them, once, with data kept."""
    from mailflow.store import MIGRATIONS, OUTBOX_INDEXES, Migration, OutboxItem

    store = Store(database_url, tmp_path / "data").open()
    with store.transaction():
        store.add_outbox(
            OutboxDraft(
                kind="confirmation",
                request_ref=None,
                recipients=("A@x.example",),
                cc=(),
                subject="s",
                body_text="b",
                reply_to="desk@x",
                message_id="<mf.old@x>",
                raw=b"r",
                attachments=(),
                inbox_id=None,
            )
        )
    # The schema of before 0009: single-column indexes instead of the covering ones.
    for columns, _ in OUTBOX_INDEXES:
        store.database.execute_sql(f"DROP INDEX {'_'.join(('outbox_item', *columns))}")
    store.database.execute_sql("CREATE INDEX outbox_item_state ON outbox_item (state)")
    [accepted] = store.accept_many([(b"Message-ID: <old@x>\r\n\r\nold\r\n", "ingest", "")])
    for table, column in (
        ("outbox_item", "cause"),
        ("outbox_item", "recipient"),
        ("outbox_item", "automatic"),
        ("request", "data"),
        ("inbox_item", "reason_phrase"),
    ):
        store.database.execute_sql(f"ALTER TABLE {table} DROP COLUMN {column}")
    # Before 0010 each row held its letter.
    blob = "BLOB" if store.is_sqlite else "BYTEA"
    store.database.execute_sql(f"ALTER TABLE outbox_item ADD COLUMN content {blob}")
    store.database.execute_sql(
        "UPDATE outbox_item SET content = (SELECT content FROM outbox_letter"
        " WHERE outbox_letter.id = outbox_item.id)"
    )
    store.database.execute_sql("DROP TABLE outbox_letter")
    Migration.delete().where(Migration.name != MIGRATIONS[0][0]).execute()
    store.close()

    upgraded = Store(database_url, tmp_path / "data").open()
    try:
        assert upgraded.migrate() == []
        row = OutboxItem.get(OutboxItem.message_id == "<mf.old@x>")
        assert row.recipient == "a@x.example" and row.cause == ""
        (due,) = upgraded.due_outbox(utcnow())
        assert due.raw == b"r" and due.recipients == ("a@x.example",)
        assert "content" not in {c.name for c in upgraded.database.get_columns("outbox_item")}
        assert upgraded.reserve_ref(lambda n: f"MF-{n:04d}") == "MF-0001"
        # 0011: an inbox row of before has no phrase for its reason; a new one can have one.
        old = upgraded.show_inbox(accepted.inbox_id)
        assert old is not None and (old["reason_code"], old["reason_facts"]) == (None, {})
        with upgraded.transaction():
            upgraded.finish(
                accepted.inbox_id, state="held", reason="r", reason_phrase='{"code": "x"}'
            )
        assert upgraded.list_quarantine()[0]["reason_code"] == "x"
        indexes = upgraded.database.get_indexes("outbox_item")
        indexed = {tuple(index.columns) for index in indexes} - {("id",)}  # (PostgreSQL's key)
        assert indexed == {("request_ref",), ("message_id",)} | {c for c, _ in OUTBOX_INDEXES}
    finally:
        upgraded.close()


def test_a_blob_gets_its_name_only_once_its_bytes_are_synced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash between naming and syncing would leave a name with a hollow file, which a
    later put of the same bytes would then trust: a failed sync must leave no name."""
    import hashlib
    import os

    from mailflow.errors import StoreError
    from mailflow.store import BlobStore

    blobs = BlobStore(tmp_path / "raw")
    items = [(hashlib.sha256(data).hexdigest(), data) for data in (b"one", b"two")]

    def failing_fsync(descriptor: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(StoreError, match="Input/output error"):
        blobs.put_many(items)
    assert list((tmp_path / "raw").iterdir()) == []
    monkeypatch.undo()
    blobs.put_many(items)
    assert [blobs.get(sha256) for sha256, _ in items] == [b"one", b"two"]
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == sorted(s for s, _ in items)


def test_a_large_batch_of_blobs_is_synced_at_once_before_it_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hashlib

    import mailflow.store as store_module
    from mailflow.errors import StoreError
    from mailflow.store import SYNCFS_FROM, BlobStore

    blobs = BlobStore(tmp_path / "raw")
    datas = [f"mail {n}".encode() for n in range(SYNCFS_FROM + 4)]
    items = [(hashlib.sha256(data).hexdigest(), data) for data in datas]
    synced: list[Path] = []
    real = store_module._sync_file_system

    def failing(directory: Path) -> bool:
        synced.append(directory)
        raise StoreError(f"cannot sync {directory}: Input/output error")

    monkeypatch.setattr(store_module, "_sync_file_system", failing)
    with pytest.raises(StoreError, match="Input/output error"):
        blobs.put_many(items)
    assert synced == [tmp_path / "raw"]  # one call for the batch, not one per file
    assert list((tmp_path / "raw").iterdir()) == []
    monkeypatch.setattr(store_module, "_sync_file_system", real)
    blobs.put_many(items)
    assert [blobs.get(sha256) for sha256, _ in items] == datas
    assert len(list((tmp_path / "raw").iterdir())) == len(items)


def test_threads_of_one_process_take_write_turns_one_at_a_time(tmp_path: Path) -> None:
    """The turn is a flock on a descriptor the process's threads share: without a lock
    of their own, two threads would both hold it (an IMAP drain and an outbox flush)."""
    import threading
    import time

    store = Store(f"sqlite:///{tmp_path / 'mailflow.db'}", tmp_path / "data").open()
    store.share_between_processes()
    inside = 0
    most = 0
    counting = threading.Lock()

    def write() -> None:
        nonlocal inside, most
        for _ in range(5):
            with store._writer_turn():  # the turn alone: SQLite's own lock would hide it
                with counting:
                    inside += 1
                    most = max(most, inside)
                time.sleep(0.01)
                with counting:
                    inside -= 1
        store.database.close()

    threads = [threading.Thread(target=write) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    store.stop_sharing()
    store.close()
    assert most == 1


def test_rate_windows_are_counted_by_the_database(store: Store) -> None:
    def letter(number: int, *, automatic: bool) -> OutboxDraft:
        return _draft(
            recipients=("Robot@Example.com",),
            message_id=f"<mf.{number}@x>",
            automatic=automatic,
            cause="robot@example.com",
        )

    before = utcnow() - timedelta(minutes=1)
    with store.transaction():
        store.add_outbox(letter(1, automatic=True))
        store.add_outbox(letter(2, automatic=False))
    after = utcnow() + timedelta(minutes=1)
    assert store.caused_counts("ROBOT@example.com", [before, after]) == [2, 0]
    assert store.automatic_mail_counts("robot@example.com", [before, after]) == [1, 0]
    assert store.caused_counts("someone@else.example", [before]) == [0]
