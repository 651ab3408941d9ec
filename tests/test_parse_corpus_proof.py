"""Proof on real mail no one here wrote (issue 3): the shared public corpus.

Three promises, each with a short allow-list of named exceptions and the reason for each:

* nothing but ProcessingError escapes ``parse_mail``, and nothing escapes ``classify``;
* every Japanese message decodes cleanly: no U+FFFD, no ESC byte, no raw ``=?…?=`` word in
  the subject, the From line or the text;
* the auto-replies and bounces the manifest labels are classified as such, and the bounces
  carry a readable report (failed recipient) for most of them.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from mailflow.classify import classify
from mailflow.errors import ProcessingError
from mailflow.model import Classification, ParsedMail
from mailflow.parse import parse_mail

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
_MBOX_SPLIT = re.compile(rb"(?m)^(?=From )")
_ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")

pytestmark = pytest.mark.skipif(
    not (CORPUS / "MANIFEST.tsv").is_file(),
    reason=f"shared corpus not found at {CORPUS} (CI has it; see ../shared/corpus/SOURCES.md)",
)

# Japanese-labelled files that cannot decode cleanly, by name, with the reason.
JAPANESE_BROKEN = {
    "spamscope-mail-parser/mail_outlook_1": (
        "not MIME at all: an Outlook .msg (OLE2 compound file) whose binary body holds ESC "
        "bytes; it is read as one text/plain part of binary noise"
    ),
}
# Files the manifest labels bounce/auto-reply that are rightly something else.
CLASSIFICATION_EXCEPTIONS = {
    "sisimai-set-of-emails/bsd/lhost-sendmail-14.eml": (
        'a person forwarding a bounce ("Fwd: Returned mail", Apple Mail): human mail'
    ),
    "sisimai-set-of-emails/mailbox/mbox-0#35": (
        'a person forwarding a bounce ("Fwd: Returned mail"): human mail'
    ),
}
# Files refused with ProcessingError: there is nothing to parse in them.
REFUSED = {"mikel-mail/sample_output_multipart": "an empty file"}


@dataclass(frozen=True)
class Sample:
    name: str
    raw: bytes
    japanese: bool
    auto_kind: str
    in_mbox: bool


def _samples() -> list[Sample]:
    found: list[Sample] = []
    if not (CORPUS / "MANIFEST.tsv").is_file():
        return found
    with (CORPUS / "MANIFEST.tsv").open(encoding="utf-8", newline="") as manifest:
        for row in csv.DictReader(manifest, delimiter="\t"):
            if row["format"] == "body-only":
                continue
            raw = (CORPUS / row["path"]).read_bytes()
            japanese = row["japanese"] == "yes"
            if row["format"] == "mbox":
                parts = [p for p in _MBOX_SPLIT.split(raw) if p.strip()]
                found += [
                    Sample(f"{row['path']}#{i}", p, japanese, row["auto_kind"], True)
                    for i, p in enumerate(parts)
                ]
            else:
                found.append(Sample(row["path"], raw, japanese, row["auto_kind"], False))
    return found


@pytest.fixture(scope="module")
def parsed() -> dict[str, tuple[Sample, ParsedMail | None]]:
    results: dict[str, tuple[Sample, ParsedMail | None]] = {}
    for sample in _samples():
        try:
            results[sample.name] = (sample, parse_mail(sample.raw))
        except ProcessingError:
            results[sample.name] = (sample, None)
    return results


def test_only_processing_error_escapes(parsed: dict[str, tuple[Sample, ParsedMail | None]]) -> None:
    assert len(parsed) > 1000
    refused = {name for name, (_s, mail) in parsed.items() if mail is None}
    assert refused == set(REFUSED)
    for mail in (mail for _s, mail in parsed.values() if mail is not None):
        classify(mail, desk_domain="secretary.example", desk_address="desk@secretary.example")


def _decoding_problems(mail: ParsedMail) -> list[str]:
    problems: list[str] = []
    fields = {"subject": mail.subject, "from": str(mail.sender or ""), "text": mail.text}
    for field, value in fields.items():
        if "\ufffd" in value:
            problems.append(f"{field}: U+FFFD")
        if "\x1b" in value:
            problems.append(f"{field}: ESC byte")
        if _ENCODED_WORD.search(value):
            problems.append(f"{field}: raw encoded word")
    return problems


def test_japanese_mail_decodes_cleanly(parsed: dict[str, tuple[Sample, ParsedMail | None]]) -> None:
    japanese = {name: mail for name, (s, mail) in parsed.items() if s.japanese and mail}
    assert len(japanese) > 150
    broken = {name: _decoding_problems(mail) for name, mail in japanese.items()}
    broken = {name: problems for name, problems in broken.items() if problems}
    assert set(broken) == set(JAPANESE_BROKEN), broken


_EXPECTED = {"bounce": Classification.BOUNCE, "auto-reply": Classification.AUTO_REPLY}


def test_labelled_automatic_mail_is_recognised(
    parsed: dict[str, tuple[Sample, ParsedMail | None]],
) -> None:
    wrong: dict[str, str] = {}
    mbox_hits: dict[str, bool] = {}
    for name, (sample, mail) in parsed.items():
        expected = _EXPECTED.get(sample.auto_kind)
        if expected is None or mail is None or name in CLASSIFICATION_EXCEPTIONS:
            continue
        kind, reason = classify(mail, desk_domain="secretary.example")
        if sample.in_mbox:
            # The manifest labels a whole mbox file: at least one of its messages must match.
            path = name.split("#", 1)[0]
            mbox_hits[path] = mbox_hits.get(path, False) or kind is expected
        elif kind is not expected:
            wrong[name] = f"{kind.value}: {reason}"
    assert wrong == {}
    assert all(mbox_hits.values()), mbox_hits


def test_bounces_carry_a_report(parsed: dict[str, tuple[Sample, ParsedMail | None]]) -> None:
    bounces = [
        mail
        for name, (s, mail) in parsed.items()
        if s.auto_kind == "bounce"
        and not s.in_mbox
        and mail is not None
        and name not in CLASSIFICATION_EXCEPTIONS
    ]
    reported = [mail.bounce for mail in bounces if mail.bounce is not None]
    # Measured: 251 of 332. The rest are vendor formats with no recipient in a fixed place.
    assert len(reported) >= 0.7 * len(bounces)
    for report in reported:
        assert report.recipients and all("@" in r for r in report.recipients)
        assert report.status == "" or re.fullmatch(r"[245]\.\d{1,3}\.\d{1,3}", report.status)
        if report.status:
            assert report.permanent is report.status.startswith("5")
    with_id = sum(1 for report in reported if report.original_message_id)
    assert with_id >= 0.6 * len(reported)


def test_human_mail_gets_no_bounce_report(
    parsed: dict[str, tuple[Sample, ParsedMail | None]],
) -> None:
    human = [mail for s, mail in parsed.values() if s.auto_kind == "none" and mail is not None]
    false_reports = [mail.subject for mail in human if mail.bounce is not None]
    assert len(false_reports) <= 1, false_reports  # flanker delayed-broken.eml is one
