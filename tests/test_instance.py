"""mailflow init and load_config: a new instance loads, problems of all files come together."""

from __future__ import annotations

import stat
import tomllib
from pathlib import Path

import pytest

from mailflow.errors import ConfigError, MailflowError
from mailflow.instance import InstanceExistsError, default_rules_path, init_instance, load_config
from mailflow.settings import read_secret


def test_demo_instance_loads_without_problems(tmp_path: Path) -> None:
    home = tmp_path / "instance"
    written = init_instance(home, demo=True, force=False)
    assert {path.name for path in written} >= {
        "mailflow.toml",
        "rules.yaml",
        "people.yaml",
        "data",
        "raw",
        "files",
        "sent",
        "secret.key",
    }
    config = load_config(home)
    directory = config.directory
    assert 1 <= len(directory.directors) <= 2
    assert 3 <= len(directory.members) <= 4
    assert {client.plan.value for client in directory.clients.values()} == {"director", "direct"}
    assert {client.language for client in directory.clients.values()} == {"ja", "en"}
    assert {"acme", "beta"} <= set(directory.clients)
    yamada = directory.identify("yamada@acme.example")
    assert yamada is not None and yamada.client_id == "acme"
    assert config.settings.outbound_smtp is None  # mail goes to data/sent/
    assert config.settings.smtp_listen == ("127.0.0.1", 2525)
    assert config.settings.imap == ()
    assert tuple(config.rules.skills)[:2] == ("research", "data_entry")
    for name in ("raw", "files", "sent"):
        assert (home / "data" / name).is_dir()


def test_plain_instance_has_an_empty_but_documented_people_file(tmp_path: Path) -> None:
    init_instance(tmp_path, demo=False, force=False)
    config = load_config(tmp_path)
    assert not config.directory.clients and not list(config.directory.people())
    text = (tmp_path / "people.yaml").read_text(encoding="utf-8")
    assert "plan: direct" in text and "monthly_hours" in text


def test_settings_template_documents_every_key(tmp_path: Path) -> None:
    init_instance(tmp_path, demo=False, force=False)
    text = (tmp_path / "mailflow.toml").read_text(encoding="utf-8")
    data = tomllib.loads(text)
    assert data["outbound"]["smtp"] == ""
    assert data["inbound"]["smtp"]["listen"] == "127.0.0.1:2525"
    assert "imap" not in data
    for key in (
        "trusted_authserv_ids",
        "secret_file",
        "max_message_size",
        "# [[imap]]",
        "password_file",
        "processed_folder",
        "tls",
        "# url",
        "timezone",
        "language",
    ):
        assert key in text


def test_rules_are_a_copy_of_the_default(tmp_path: Path) -> None:
    init_instance(tmp_path, demo=True, force=False)
    assert (tmp_path / "rules.yaml").read_bytes() == default_rules_path().read_bytes()


def test_secret_is_private_and_usable(tmp_path: Path) -> None:
    init_instance(tmp_path, demo=True, force=False)
    secret = tmp_path / "secret.key"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert len(secret.read_text().strip()) == 64
    assert len(read_secret(load_config(tmp_path).settings)) == 32


def test_existing_instance_needs_force(tmp_path: Path) -> None:
    init_instance(tmp_path, demo=False, force=False)
    key = (tmp_path / "secret.key").read_text()
    (tmp_path / "data" / "raw" / "kept").write_text("x")
    with pytest.raises(InstanceExistsError) as caught:
        init_instance(tmp_path, demo=True, force=False)
    assert isinstance(caught.value, MailflowError)
    assert "--force" in str(caught.value)
    written = init_instance(tmp_path, demo=True, force=True)
    assert tmp_path / "secret.key" not in written
    assert (tmp_path / "secret.key").read_text() == key  # reply addresses stay valid
    assert (tmp_path / "data" / "raw" / "kept").exists()
    assert load_config(tmp_path).directory.members


def test_an_empty_directory_is_fine(tmp_path: Path) -> None:
    init_instance(tmp_path, demo=True, force=False)
    assert load_config(tmp_path).settings.home == tmp_path


def test_missing_files_are_reported_together(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path)
    assert [str(problem) for problem in caught.value.problems] == [
        f"{name}: (file): not found at {tmp_path / name} — fix: run `mailflow init`"
        for name in ("mailflow.toml", "rules.yaml", "people.yaml")
    ]


def test_problems_of_all_files_come_in_one_error(tmp_path: Path) -> None:
    init_instance(tmp_path, demo=True, force=False)
    toml = tmp_path / "mailflow.toml"
    toml.write_text(toml.read_text(encoding="utf-8").replace('"ja"', '"fr"'), encoding="utf-8")
    people = tmp_path / "people.yaml"
    people.write_text(
        people.read_text(encoding="utf-8").replace(
            "skills: [research, data_entry], capacity: 5", "skills: [reserch], capacity: 5"
        ),
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path)
    found = [str(problem) for problem in caught.value.problems]
    assert len(found) == 2
    assert found[0].startswith("mailflow.toml:13: desk.language: unknown language 'fr'")
    assert found[1].startswith("people.yaml:10: members[0].skills[0]: unknown skill 'reserch'")


def test_route_assigning_an_unknown_member(tmp_path: Path) -> None:
    init_instance(tmp_path, demo=True, force=False)
    rules = tmp_path / "rules.yaml"
    text = rules.read_text(encoding="utf-8").replace(
        "then: {route: member}", "then: {assign: satoo}"
    )
    rules.write_text(text, encoding="utf-8")
    line = text.splitlines().index("    then: {assign: satoo}") + 1
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path)
    [problem] = caught.value.problems
    assert str(problem).startswith(
        f"rules.yaml:{line}: routes[2].then.assign: unknown member 'satoo' — fix: use one of the "
        "members in people.yaml: sato, suzuki"
    )
