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
        "hold": outcome.hold_reason,
        "note": outcome.note,
        "notices": [{"kind": n.kind, "to": [a.email for a in n.to]} for n in outcome.notices],
    }
