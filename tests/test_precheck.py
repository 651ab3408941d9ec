"""Pre-checks on a delivery before review: files, format, other clients, deadline."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from mailflow.instance import init_instance, load_config
from mailflow.model import FileRef, ServiceModel, State
from mailflow.precheck import pre_checks
from mailflow.situation import RequestView

DUE = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


def _view(fmt: str | None) -> RequestView:
    return RequestView(
        ref="MF-0001",
        state=State.IN_PROGRESS,
        model=ServiceModel.DIRECTOR,
        client="acme",
        director="tanaka",
        assignee="sato",
        subject="s",
        text="t",
        language="ja",
        due=DUE,
        data={"format": fmt} if fmt else {},
    )


def _checks(
    tmp_path: Path, files: list[str], text: str, fmt: str | None, now: datetime = DUE
) -> dict[str, dict[str, object]]:
    init_instance(tmp_path / "i", demo=True, force=False)
    directory = load_config(tmp_path / "i").directory
    refs = [FileRef("0" * 64, name, "application/octet-stream", 10) for name in files]
    found = pre_checks(_view(fmt), refs, text, directory.clients["acme"], directory, now)
    return {check["name"]: check for check in found}


def test_a_good_delivery_passes_every_check(tmp_path: Path) -> None:
    checks = _checks(tmp_path, ["競合調査.xlsx"], "納品します。", "excel")
    assert all(check["ok"] for check in checks.values())


def test_wrong_format_missing_files_and_lateness_are_flagged(tmp_path: Path) -> None:
    late = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    checks = _checks(tmp_path, ["report.pdf"], "", "excel", now=late)
    assert not checks["format"]["ok"] and "xlsx" in str(checks["format"]["detail"])
    assert not checks["deadline"]["ok"] and "3.0 h late" in str(checks["deadline"]["detail"])
    assert not _checks(tmp_path / "b", [], "", None)["files"]["ok"]


def test_a_file_named_for_another_client_is_caught(tmp_path: Path) -> None:
    checks = _checks(tmp_path, ["ガンマ様_経費一覧.xlsx"], "", None)
    assert not checks["other_clients"]["ok"]
    assert "合同会社ガンマ" in str(checks["other_clients"]["detail"])
