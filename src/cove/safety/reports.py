"""A user's report as pure rules: what it is about, and which attached messages it may carry.

A report names a person, one or more of their messages in a one-to-one chat, or a group (and, in it, the
member reported, if any). The reporter's client may attach the last few messages of that chat, which it
decrypted itself with the user's consent: each must come from someone in that chat (the person reported or
the reporter; for a group, a member, or the member reported), or the report could accuse anyone of anything.
Refusals are :class:`Refused` with a code; the service turns them into HTTP.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from enum import StrEnum

MAX_REPORTED_MESSAGES = 10
MAX_ATTACHED = 5
MAX_TEXT = 4096


class Kind(StrEnum):
    PERSON = "person"
    MESSAGE = "message"
    GROUP = "group"


class Refused(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Attached:
    sender: str
    client_message_id: str
    sent_at_ms: int
    text: str


@dataclass(frozen=True)
class Report:
    report_id: str
    reporter: str
    kind: Kind
    subject: str | None  # the account reported; None for a group reported as a whole
    group_id: str | None
    message_ids: tuple[str, ...]
    attached: tuple[Attached, ...]
    contact: bool  # the reporter had accepted the subject before reporting (and blocking) them
    blocked: bool
    left_group: bool
    at_ms: int


def check_attached(attached: Collection[Attached], chat: Collection[str]) -> None:
    """Every attached message comes from someone in the reported chat (``chat``: its participants' ids)."""
    for position, message in enumerate(attached):
        if message.sender not in chat:
            raise Refused(
                "foreign_message",
                f"messages.{position} is from {message.sender}, who is not in the chat reported",
            )


def participants(reporter: str, subject: str | None, members: Collection[str] | None) -> frozenset[str]:
    """Who may have written the attached messages: the group's members (``members``) and the member reported
    (who may have left since), or, for a one-to-one chat, the two people in it."""
    people = {reporter} | ({subject} if subject else set())
    return frozenset(people | set(members or ()))
