"""The first path end to end: a client's mail in, a confirmation out, on both stores."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Relay
from mails import client_mail, english_mail

from mailflow.errors import StoreError
from mailflow.service import Service


@pytest.fixture
def service(any_home: Path) -> Iterator[Service]:
    running = Service(any_home)
    yield running
    running.store.close()


def _ingest(service: Service, tmp_path: Path, *raws: bytes) -> None:
    paths = []
    for index, raw in enumerate(raws):
        path = tmp_path / f"mail{index}.eml"
        path.write_bytes(raw)
        paths.append(str(path))
    service.ingest(paths)


def _outbox(service: Service) -> list[dict]:  # type: ignore[type-arg]
    return service.store.list_outbox()


def test_director_model_client_gets_confirmation_director_gets_new_request(
    service: Service, tmp_path: Path
) -> None:
    _ingest(service, tmp_path, client_mail(message_id="<first@acme.example>"))
    [request] = service.store.list_requests()
    assert request["ref"] == "MF-0001"
    assert request["state"] == "new" and request["model"] == "director"
    assert request["client"] == "acme" and request["director"] == "tanaka"
    assert request["subject"] == "競合調査のお願い"
    kinds = {row["kind"]: row for row in _outbox(service)}
    assert set(kinds) == {"confirmation", "new_request"}
    confirmation = kinds["confirmation"]
    assert confirmation["to"] == ["yamada@acme.example"]
    assert "[MF-0001]" in confirmation["subject"]
    assert "承りました" in confirmation["body_text"] or "受け付け" in confirmation["body_text"]
    assert kinds["new_request"]["to"] == ["tanaka@secretary.example"]
    assert "競合3社" in kinds["new_request"]["body_text"]


def test_outgoing_mail_threads_back_to_the_client(service: Service, tmp_path: Path) -> None:
    _ingest(service, tmp_path, client_mail(message_id="<first@acme.example>"))
    confirmation = next(r for r in _outbox(service) if r["kind"] == "confirmation")
    service.sender.flush()
    sent = [
        email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        for path in (service.config.settings.sent_dir / "new").iterdir()
    ]
    assert len(sent) == 2
    [message] = [m for m in sent if m["Message-ID"] == confirmation["message_id"]]
    assert message["Message-ID"] == confirmation["message_id"]
    assert message["Message-ID"].endswith("@secretary.example>")
    assert message["In-Reply-To"] == "<first@acme.example>"
    assert "<first@acme.example>" in message["References"]
    assert message["Reply-To"].startswith("desk+MF-0001.")
    assert message["Auto-Submitted"] == "auto-generated"
    assert "[MF-0001]" in message["Subject"]


def test_direct_model_goes_to_the_dedicated_member_in_english(
    service: Service, tmp_path: Path
) -> None:
    _ingest(service, tmp_path, english_mail())
    [request] = service.store.list_requests()
    assert request["model"] == "direct" and request["assignee"] == "suzuki"
    assert request["state"] == "assigned"
    kinds = {row["kind"]: row for row in _outbox(service)}
    assert set(kinds) == {"confirmation", "assignment"}
    assert kinds["assignment"]["to"] == ["suzuki@members.example"]
    assert "Translate our product sheet" in kinds["confirmation"]["subject"]
    assert "request" in kinds["confirmation"]["body_text"].lower()


def test_same_message_twice_is_one_request_and_one_confirmation(
    service: Service, tmp_path: Path
) -> None:
    raw = client_mail(message_id="<twice@acme.example>")
    _ingest(service, tmp_path, raw)
    _ingest(service, tmp_path, raw)
    assert len(service.store.list_requests()) == 1
    assert [r["kind"] for r in _outbox(service)].count("confirmation") == 1


def test_reused_message_id_with_new_content_is_a_new_request(
    service: Service, tmp_path: Path
) -> None:
    _ingest(service, tmp_path, client_mail(message_id="<reuse@acme.example>", subject="一件目"))
    _ingest(service, tmp_path, client_mail(message_id="<reuse@acme.example>", subject="二件目"))
    assert [r["subject"] for r in service.store.list_requests()] == ["一件目", "二件目"]


def test_unknown_sender_is_kept_for_the_director_without_a_request(
    service: Service, tmp_path: Path
) -> None:
    _ingest(service, tmp_path, client_mail(sender="stranger@unknown.example"))
    assert service.store.list_requests() == []
    [held] = service.store.list_quarantine()
    assert held["state"] == "held"
    assert "unknown sender stranger@unknown.example" in held["reason"]
    # The reason's phrase, which the director's digest says in the director's language.
    assert held["reason_code"] == "unknown_sender_held"
    assert held["reason_facts"] == {"sender": "stranger@unknown.example"}


def test_a_reply_to_our_mail_joins_its_request(service: Service, tmp_path: Path) -> None:
    _ingest(service, tmp_path, client_mail(message_id="<first@acme.example>"))
    confirmation = next(r for r in _outbox(service) if r["kind"] == "confirmation")
    reply = client_mail(
        subject="Re: [MF-0001] 競合調査のお願い",
        body="追加で1社お願いします。\n",
        in_reply_to=confirmation["message_id"],
        to=confirmation["reply_to"],
    )
    _ingest(service, tmp_path, reply)
    assert len(service.store.list_requests()) == 1
    shown = service.store.show_request("MF-0001")
    assert shown is not None
    assert [e["kind"] for e in shown["events"]] == ["created", "client_message"]
    # In: the request and the reply; out: confirmation, new_request, the relayed message.
    assert len(shown["messages"]) == 5


def test_another_clients_ref_does_not_thread(service: Service, tmp_path: Path) -> None:
    _ingest(service, tmp_path, client_mail(message_id="<first@acme.example>"))
    _ingest(service, tmp_path, english_mail(subject="Re: [MF-0001] let me in"))
    assert len(service.store.list_requests()) == 2


def test_a_malformed_mail_is_quarantined_and_the_batch_goes_on(
    service: Service, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mailflow.pipeline as pipeline

    real_parse = pipeline.parse_mail

    def fragile(raw: bytes):  # type: ignore[no-untyped-def]
        if b"POISON" in raw:
            raise ValueError("cannot parse this")
        return real_parse(raw)

    monkeypatch.setattr(pipeline, "parse_mail", fragile)
    _ingest(
        service,
        tmp_path,
        client_mail(subject="一"),
        client_mail(body="POISON\n"),
        client_mail(subject="三"),
    )
    assert len(service.store.list_requests()) == 2
    [bad] = service.store.list_quarantine()
    assert bad["state"] == "quarantined" and "ValueError: cannot parse this" in bad["reason"]
    [told] = [row for row in service.store.list_outbox() if row["kind"] == "quarantined"]
    assert told["to"] == ["tanaka@secretary.example"]
    assert f"mailflow quarantine replay {bad['id']}" in told["body_text"]
    monkeypatch.setattr(pipeline, "parse_mail", real_parse)
    assert service.store.replay(bad["id"])
    service.desk.process_pending()
    assert len(service.store.list_requests()) == 3


def test_auto_replies_get_no_answer(service: Service, tmp_path: Path) -> None:
    _ingest(
        service,
        tmp_path,
        client_mail(subject="自動応答: 不在", extra_headers="Auto-Submitted: auto-replied\r\n"),
    )
    assert service.store.list_requests() == []
    assert _outbox(service) == []


def test_attachments_are_kept_with_the_request(service: Service, tmp_path: Path) -> None:
    raw = (
        b"From: yamada@acme.example\r\nTo: desk@secretary.example\r\nSubject: data\r\n"
        b"Message-ID: <att@acme.example>\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n\r\nPlease enter this.\r\n--B\r\n"
        b"Content-Type: application/vnd.ms-excel\r\n"
        b"Content-Disposition: attachment; filename*=UTF-8''%E9%A1%A7%E5%AE%A2.xlsx\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\nUEsDBA==\r\n--B--\r\n"
    )
    _ingest(service, tmp_path, raw)
    [request] = service.store.list_requests()
    [attachment] = request["attachments"]
    assert attachment["filename"] == "顧客.xlsx"
    assert (service.config.settings.files_dir / attachment["sha256"]).read_bytes() == b"PK\x03\x04"


def _with_file(subject: str, message_id: str) -> bytes:
    return (
        f"From: yamada@acme.example\r\nTo: desk@secretary.example\r\nSubject: {subject}\r\n"
        f"Message-ID: {message_id}\r\nMIME-Version: 1.0\r\n"
        "Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\nPlease enter this.\r\n--B\r\n"
        "Content-Type: application/pdf\r\n"
        f'Content-Disposition: attachment; filename="{subject}.pdf"\r\n'
        "Content-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n--B--\r\n"
    ).encode()


def test_files_that_cannot_be_kept_stop_the_group_and_leave_it_accepted(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The group's files are written while its letters are rendered; a failure there
    (disk full) writes nothing of the group, and the next round does it all."""
    service = Service(home)
    try:
        store = service.store
        for number in range(3):
            store.accept(_with_file(f"file{number}", f"<file-{number}@acme.example>"), "ingest")
        real_put_many = store.files.put_many

        def full(items: object) -> None:
            raise StoreError("cannot store in files: No space left on device")

        monkeypatch.setattr(store.files, "put_many", full)
        with pytest.raises(StoreError, match="No space left"):
            service.desk.process_group(store.pending())
        assert store.count_pending() == 3
        assert store.list_requests() == [] and store.list_outbox() == []

        monkeypatch.setattr(store.files, "put_many", real_put_many)
        done = service.desk.process_group(store.pending())
        requests = store.list_requests()
    finally:
        service.store.close()
    assert [result.state for result in done] == ["done"] * 3
    kept = [file for request in requests for file in request["attachments"]]
    assert sorted(file["filename"] for file in kept) == ["file0.pdf", "file1.pdf", "file2.pdf"]
    assert all((service.config.settings.files_dir / f["sha256"]).exists() for f in kept)


def test_with_a_relay_configured_mail_goes_out_by_smtp(home: Path, relay: Relay) -> None:
    toml = home / "mailflow.toml"
    toml.write_text(
        toml.read_text(encoding="utf-8").replace('smtp = ""', f'smtp = "{relay.url}"', 1),
        encoding="utf-8",
    )
    service = Service(home)
    try:
        service.store.accept(client_mail(message_id="<relay@acme.example>"), "smtp", "")
        report = service.run_once()
    finally:
        service.store.close()
    assert report.outbox.sent == 2
    recipients = sorted(rcpt for _, rcpts, _ in relay.messages for rcpt in rcpts)
    assert recipients == ["tanaka@secretary.example", "yamada@acme.example"]
    assert all(sender == "desk@secretary.example" for sender, _, _ in relay.messages)
    assert not (home / "data" / "sent" / "new").exists() or not any(
        (home / "data" / "sent" / "new").iterdir()
    )


def _client_mails(folder: Path, count: int, subject: str) -> Path:
    """``count`` .eml files from Delta's contacts, subjects "<subject> <n>"."""
    folder.mkdir()
    for index in range(count):
        (folder / f"{index:04d}.eml").write_bytes(
            client_mail(
                sender=f"staff{index}@delta-trading.example",
                subject=f"{subject} {index}",
                message_id=f"<{folder.name}-{index}@client.example>",
            )
        )
    return folder


def test_a_large_backlog_is_shared_among_workers_exactly_once(home: Path, tmp_path: Path) -> None:
    from mailflow.pipeline import WORKERS_FROM

    count = WORKERS_FROM + 50
    folder = _client_mails(tmp_path / "backlog", count, "依頼")
    service = Service(home)
    try:
        service.store.accept_many([(p.read_bytes(), "ingest", p.name) for p in folder.iterdir()])
        processed = service.desk.process_pending(workers=2)
        requests = service.store.list_requests()
        kinds = [row["kind"] for row in service.store.list_outbox()]
    finally:
        service.store.close()
    assert len(processed) == count
    assert sorted(r["subject"] for r in requests) == sorted(f"依頼 {i}" for i in range(count))
    assert len({r["ref"] for r in requests}) == count
    assert kinds.count("confirmation") == count and kinds.count("new_request") == count


def test_ingest_processes_while_it_accepts_each_mail_exactly_once(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More than a batch: worker processes take mail while the rest is still accepted."""
    import mailflow.service
    from mailflow.service import INGEST_BATCH

    monkeypatch.setattr(mailflow.service, "backlog_workers", lambda: 2)
    count = 2 * INGEST_BATCH + 30
    folder = _client_mails(tmp_path / "many", count, "件名")
    service = Service(home)
    try:
        accepted = service.ingest([str(folder)])
        requests = service.store.list_requests()
        pending = service.store.count_pending()
        kinds = [row["kind"] for row in service.store.list_outbox()]
    finally:
        service.store.close()
    assert len(accepted) == count and not any(item.duplicate for item in accepted)
    assert sorted(r["subject"] for r in requests) == sorted(f"件名 {i}" for i in range(count))
    assert len({r["ref"] for r in requests}) == count
    assert pending == 0
    assert kinds.count("new_request") == count


def test_a_group_is_written_in_one_transaction_and_a_bad_mail_fails_alone(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Crew workers write several mails per commit; each still rolls back alone."""
    service = Service(home)
    try:
        store = service.store
        good, empty, refused = (
            store.accept(raw, "ingest", "")
            for raw in (
                client_mail(subject="一件目", message_id="<group-1@client.example>"),
                b"\r\n\r\n",
                client_mail(subject="三件目", message_id="<group-3@client.example>"),
            )
        )
        finish = store.finish

        def failing_finish(inbox_id: int, **fields: object) -> None:
            if inbox_id == refused.inbox_id:
                raise ValueError("a fault while writing this one mail")
            finish(inbox_id, **fields)  # type: ignore[arg-type]

        monkeypatch.setattr(store, "finish", failing_finish)
        done = service.desk.process_group(store.pending())
        states = {result.inbox_id: result.state for result in done}
        subjects = [row["subject"] for row in store.list_requests()]
        quarantined = store.list_quarantine()
        pending = store.count_pending()
    finally:
        service.store.close()
    assert states == {
        good.inbox_id: "done",
        empty.inbox_id: "quarantined",
        refused.inbox_id: "quarantined",
    }
    assert subjects == ["一件目"], "the failed mail's request was rolled back with it"
    assert len(quarantined) == 2 and pending == 0
    assert any("a fault while writing" in str(row) for row in quarantined)


def test_a_crew_left_by_an_error_leaves_the_rest_accepted_for_the_next_run(
    home: Path, tmp_path: Path
) -> None:
    """Ctrl-C or a failing source while a crew works: what was handed out is processed,
    what was not stays accepted (nothing lost), and the error is not swallowed."""
    service = Service(home)
    try:
        backlog = _client_mails(tmp_path / "before", 3, "先")
        service.store.accept_many([(p.read_bytes(), "ingest", p.name) for p in backlog.iterdir()])
        later = _client_mails(tmp_path / "after", 2, "後")
        with pytest.raises(RuntimeError, match="source failed"):
            with service.desk.crew(2) as crew:
                service.store.accept_many(
                    [(p.read_bytes(), "ingest", p.name) for p in later.iterdir()]
                )
                raise RuntimeError("source failed")
        pending = service.store.count_pending()
        subjects = sorted(r["subject"] for r in service.store.list_requests())
    finally:
        service.store.close()
    assert sorted(result.state for result in crew.processed) == ["done"] * 3
    assert subjects == ["先 0", "先 1", "先 2"]
    assert pending == 2


def test_warm_up_builds_what_the_first_mail_would(service: Service) -> None:
    """What a crew's workers build while they wait for their first mail."""
    from mailflow.parse.charsets import _pair_table

    _pair_table.cache_clear()
    service.desk.warm_up()
    assert "skill_index" in vars(service.desk.config.rules)
    assert _pair_table.cache_info().currsize == 1
