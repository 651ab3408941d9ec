"""What the desk tells people about their commands and their mail: a code and its facts,
said in English here.

Pure. The English is the record: events, ``explain``, the JSON and the en templates read
it. Every other language's templates say the same code in their own words with the same
facts (``phrases`` in ja/_labels.j2, said by the ``say`` filter of render.py), and fall
back to this English for a code they do not know, so a receipt, a security alert, a
suggestion or a digest to a Japanese client or director reads in Japanese throughout.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

# Each code's English; the facts fill the %(name)s fields (values only: never formats).
# None: the English is composed by the code that makes the phrase (``composed``).
ENGLISH: dict[str, str | None] = {
    # done
    "assigned": "assigned to %(member)s (%(member_id)s)",
    "assigned_lacking": "assigned to %(member)s (%(member_id)s) (lacks %(skills)s)",
    "due_set": "deadline set to %(due)s",
    "approved": "delivery with %(files)s file(s) sent to the client",
    "revised": "sent back to the member with the feedback",
    "asked": "question relayed to the client",
    "estimated": "estimate of %(hours)s h sent to the client",
    "delivered_for_review": "delivery of %(files)s file(s) sent to the director for review",
    "delivered": "delivery of %(files)s file(s) sent to the client",
    "priority_set": "priority %(priority)s",
    "skill_added": "skill %(skill)s added",
    "note_kept": "note kept (internal: the client does not see it)",
    "held": "on hold; the client is told",
    "resumed": "resumed",
    "closed": "closed; the client is told",
    "rejected": "declined; the client is told why",
    "question_sent": "question sent to the director",
    "answer_sent": "answer sent to the member",
    "request_opened": "request opened for %(company)s (%(contact)s)",
    # refused
    "not_your_role": "only the %(allowed)s may do this",
    "not_assignee": "only the assigned member may do this",
    "not_in_model": "not used in the %(model)s model",
    "not_in_state": "not possible while the request is %(state)s",
    "no_member": "no member '%(wanted)s'; members: %(members)s",
    "director_sets_due": "in the director model the director sets the deadline",
    "unreadable_date": (
        "cannot read the date '%(argument)s'; write e.g. 2026-12-03, 12/3, 明日, 来週金曜"
        " or 3営業日"
    ),
    "nothing_to_approve": "there is no pending delivery to approve",
    "revise_needs_text": "write what to change after #revise",
    "ask_needs_text": "write the question after #ask",
    "unreadable_hours": (
        "cannot read hours in '%(argument)s'; write e.g. 2h, 1.5h, 90m, 2時間 or 1時間30分"
    ),
    "unreadable_done_hours": "cannot read hours in '%(argument)s'; write e.g. #done 1.5h",
    "nothing_to_deliver": "no files are attached and no link is given: nothing to deliver",
    "reject_needs_reason": "write the reason after #reject; the client is told",
    "unknown_priority": "write #priority high, normal or low",
    "unknown_skill": "unknown skill '%(skill)s'; skills: %(known)s",
    "note_needs_text": "write the note after #note",
    "empty_mail": "the mail has no text and no files",
    "no_command": "no #command at the top of the mail; nothing was changed",
    "unknown_command": "unknown command; known: %(known)s",
    "no_request": (
        "no request found: reply to a mailflow mail, or put the ref such as [MF-0001] in the"
        " subject"
    ),
    "forward_not_client": "the forwarded mail is from %(sender)s, who is no client contact",
    # who sent it (auth.py)
    "signed_reply": "replied to the address signed for %(sender)s (%(ref)s)",
    "dmarc_pass": "dmarc=pass by %(authserv_id)s",
    "dkim_pass": "dkim=pass for %(domain)s by %(authserv_id)s",
    "no_proof": "no signed reply address and no Authentication-Results",
    "untrusted_authserv": "the topmost Authentication-Results is from untrusted '%(authserv_id)s'",
    "no_pass": "%(authserv_id)s reports no dmarc or aligned dkim pass",
    "not_authenticated": "the sender is not authenticated",
    "unknown_sender": "unknown sender",
    # why a mail is held for a person (workflow.py, conversation.py)
    "staff_without_ref": (
        "%(role)s %(person)s wrote without a request reference (reply to a mailflow mail, or"
        " put [MF-0001] in the subject)"
    ),
    "no_sender_address": "no sender address: kept for the director",
    "unknown_sender_held": "unknown sender %(sender)s: in no role of people.yaml",
    "too_large": "too large: %(size)s bytes, the desk takes %(limit)s",
    "unauthenticated": "unauthenticated mail from %(sender)s: %(why)s",
    # whom to suggest (assign.py, opening.py); the English of the first five is composed
    # where they are made (plurals, optional parts): see ``composed``
    "routed": None,
    "suggested": None,
    "runner_up": None,
    "no_member_qualifies": None,
    "no_members": "no members",
    "less_loaded": "%(best)s before %(runner_up)s: less loaded (%(first)s h against %(second)s h)",
    "fewer_this_week": (
        "%(best)s before %(runner_up)s: same load; fewer assignments this week"
        " (%(first)s against %(second)s)"
    ),
    "round_robin": (
        "%(best)s before %(runner_up)s: same load and weekly count; next in the round robin"
        " (assigned longest ago)"
    ),
    "first_by_id": (
        "%(best)s before %(runner_up)s: same load, weekly count and last assignment; first by id"
    ),
    "excluded": "excluded",
    "lacks": "lacks %(skills)s",
    "other_language": "does not work in %(language)s",
    "away": "away until %(until)s",
    "at_capacity": "at capacity %(open)s/%(capacity)s",
}


@dataclass(frozen=True)
class Phrase:
    """One sentence: what was done, or why it was not."""

    code: str
    facts: dict[str, str] = field(default_factory=dict)
    english: str = ""  # composed by its maker where ENGLISH has None for the code

    @property
    def text(self) -> str:
        return self.english or (ENGLISH[self.code] or "") % self.facts

    def __str__(self) -> str:
        return self.text

    def stored(self) -> str:
        """As a database column keeps it (the English is kept beside it)."""
        return json.dumps({"code": self.code, "facts": self.facts}, ensure_ascii=False)

    def done(self, command: str) -> dict[str, object]:
        """A receipt's line for a command carried out."""
        return {"command": command, "result": self.text, "code": self.code, "facts": self.facts}

    def refused(self, command: str) -> dict[str, object]:
        """A receipt's line for a command refused."""
        return {"command": command, **self.why()}

    def why(self) -> dict[str, object]:
        """The reason as a template's context holds it: ``why`` (the English), code, facts."""
        return {"why": self.text, "code": self.code, "facts": self.facts}


def phrase(code: str, **facts: object) -> Phrase:
    """``phrase("assigned", member="Sato", member_id="sato")``; facts become text."""
    if ENGLISH[code] is None:
        raise KeyError(f"phrase {code!r} has no English of its own: use composed()")
    return Phrase(code, _texts(facts))


def composed(code: str, english: str, **facts: object) -> Phrase:
    """A phrase whose English its maker writes (plurals, optional parts); the facts are
    what other languages say it with."""
    if code not in ENGLISH:
        raise KeyError(f"no phrase {code!r}")
    return Phrase(code, _texts(facts), english)


def _texts(facts: dict[str, object]) -> dict[str, str]:
    return {name: str(value) for name, value in facts.items()}
