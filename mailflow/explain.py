"""`mailflow explain`: the trace of what the pipeline would do with one mail.

Runs the same steps as processing (parse → classify → identify → thread → plan) and
commits nothing.
"""

from __future__ import annotations

from typing import Any

from mailflow.parse import parse_mail
from mailflow.pipeline import Desk
from mailflow.workflow import plan


def explain_mail(desk: Desk, raw: bytes) -> dict[str, Any]:
    mail = parse_mail(raw)
    situation = desk.situate(mail)
    outcome = plan(situation)
    sender = situation.sender
    decision = outcome.new_request.decision if outcome.new_request else None
    return {
        "subject": mail.subject,
        "from": str(mail.sender) if mail.sender else None,
        "date": mail.date.isoformat() if mail.date else None,
        "text": mail.text,
        "quoted": mail.quoted,
        "attachments": [
            {
                "filename": a.filename,
                "safe_name": a.safe_name,
                "content_type": a.content_type,
                "size": a.size,
                "inline": a.inline,
            }
            for a in mail.attachments
        ],
        "classification": situation.classification.value,
        "classification_reason": situation.classification_reason,
        "sender": (
            {"person": sender.person_id, "role": sender.role.value, "client": sender.client_id}
            if sender
            else {"person": None, "role": "unknown", "client": None}
        ),
        "request": situation.matched_ref,
        "decision": decision.as_dict() if decision else None,
        "hold": outcome.hold_reason.text if outcome.hold_reason else None,
        "note": outcome.note,
        "notices": [{"kind": n.kind, "to": [a.email for a in n.to]} for n in outcome.notices],
    }


def route_row(desk: Desk, name: str, raw: bytes) -> dict[str, Any]:
    """One line of `mailflow rules test`: where this saved mail would go, or why not."""
    try:
        trace = explain_mail(desk, raw)
    except Exception as exc:  # noqa: BLE001 - a broken file is a row, not a crash
        return {"file": name, "ok": False, "error": f"{type(exc).__name__}: {exc}"}
    decision = trace["decision"] or {}
    sender = trace["sender"]
    routed = bool(decision) or trace["request"] is not None
    return {
        "file": name,
        "ok": routed,
        "sender": f"{sender['role']}:{sender['person'] or trace['from']}",
        "rule": decision.get("rule") or ("(follow-up)" if trace["request"] else "-"),
        "route": decision.get("route") or (trace["request"] or "-"),
        "member": decision.get("suggested_member") or "-",
        "skills": ",".join(decision.get("skills") or []) or "-",
        "due": (decision.get("due") or "-")[:16],
        "error": "" if routed else (trace["hold"] or trace["note"] or "not routed"),
    }


def readable(trace: dict[str, Any]) -> list[str]:
    """The trace for a person: one fact a line, reasons indented under the decision."""
    lines = []
    for key in ("from", "subject", "date", "classification", "sender", "request"):
        value = trace[key]
        lines.append(f"{key:>14}: {value if isinstance(value, str | None) else _compact(value)}")
    files = ", ".join(a["filename"] for a in trace["attachments"]) or "-"
    lines.append(f"{'attachments':>14}: {files}")
    decision = trace["decision"]
    if decision:
        lines.append(
            f"{'decision':>14}: rule {decision['rule']} → {decision['route']}"
            f" (suggested: {decision['suggested_member'] or '-'},"
            f" runner-up: {decision['runner_up'] or '-'}, due: {decision['due']})"
        )
        lines.extend(f"{'':>16}{reason}" for reason in decision["reasons"])
    if trace["hold"]:
        lines.append(f"{'held':>14}: {trace['hold']}")
    if trace["note"]:
        lines.append(f"{'note':>14}: {trace['note']}")
    for notice in trace["notices"]:
        lines.append(f"{'would send':>14}: {notice['kind']} to {', '.join(notice['to'])}")
    lines.append(f"{'text':>14}:")
    lines.extend(f"{'':>16}{line}" for line in trace["text"].splitlines()[:30])
    return lines


def _compact(value: Any) -> str:
    import json

    return json.dumps(value, ensure_ascii=False)
