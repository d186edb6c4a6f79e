"""The order of a sent message's statuses, so a webhook never moves a message backwards.

Receipts reach the gateway unordered and sometimes twice (a redelivered envelope, a read receipt overtaking a
delivery receipt), and integrators that apply them as they come downgrade read to delivered to sent
(integrators report it). So the gateway keeps each message's status and emits only what :func:`advance`
returns: ACCEPTED < SENT < DELIVERED < READ, FAILED terminal and only from ACCEPTED or SENT, since a message a
device has received cannot fail any more.

A jump that skips steps (READ straight after SENT) emits only the new status. Meta does the same: "delivered" is
not sent when a message is delivered and read at once, because read implies it
([M] https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/messages/status/),
so integrators already handle it, and a made-up DELIVERED would need a made-up timestamp.

ACCEPTED is the synchronous answer to the send (``message_status: "accepted"``), never a webhook.
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """Values as the Cloud API spells them in ``statuses[].status`` (and ``message_status`` for ACCEPTED)."""

    ACCEPTED = "accepted"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"


_RANK = {Status.ACCEPTED: 0, Status.SENT: 1, Status.DELIVERED: 2, Status.READ: 3}
_MAY_FAIL = frozenset({Status.ACCEPTED, Status.SENT})


def advance(current: Status | None, new: Status) -> Status | None:
    """``new`` if it moves the message forward from ``current`` (None: nothing recorded yet), else None: a
    repeated, backwards or after-the-end status is dropped, not emitted."""
    if current is Status.FAILED:
        return None
    if new is Status.FAILED:
        return new if current is None or current in _MAY_FAIL else None
    if current is None or _RANK[new] > _RANK[current]:
        return new
    return None
