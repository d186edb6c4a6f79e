"""Forwarding, shared by the relay (which enforces the limits) and the SDK (which keeps to them and shows the label).

WhatsApp's public rules: any message may be forwarded to at most :data:`MAX_CHATS` chats at once, and one that
has been forwarded :data:`FREQUENTLY` times or more ("Forwarded many times") to one chat at a time.

A forwarded send carries a visible header ``{"count": n, "batch": "..."}`` and nothing of its content. ``count``
is how many times the message has been forwarded, this forward included (a message held with count ``c``
leaves with ``c + 1``; an original has no header, count 0); the recipient's client shows :func:`label` of it.
``batch`` is chosen at random by the sender's client for one forward action, and is the same on each of the
chats it reaches, so the relay can count the chats of one action. The relay passes on the count alone
(``"forward": {"count": n}`` in the envelope's frame), never the batch.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

MAX_CHATS = 5  # chats one forward action may reach
FREQUENTLY = 5  # forwarded this many times or more: one chat at a time, "Forwarded many times"
MAX_COUNT = 1_000_000  # a count no chain of people reaches; the client stops counting there
BATCH_PATTERN = r"^[0-9a-f]{16,32}$"
BATCH = re.compile(BATCH_PATTERN)


class InvalidForward(ValueError):
    """A forward header that does not have the syntax above."""


def limit(count: int) -> int:
    """How many chats one forward action may reach with a message that has been forwarded ``count`` times."""
    return 1 if count >= FREQUENTLY else MAX_CHATS


def label(count: int) -> str | None:
    """What the recipient's client shows beside a message that has been forwarded ``count`` times."""
    if count <= 0:
        return None
    return "Forwarded many times" if count >= FREQUENTLY else "Forwarded"


def next_count(count: int) -> int:
    """The header's count when a message held with ``count`` is forwarded."""
    return min(max(count, 0) + 1, MAX_COUNT)


def new_batch() -> str:
    """A fresh batch id for one forward action (32 hex characters, 128 random bits)."""
    return secrets.token_hex(16)


def header(count: int, batch: str) -> dict[str, Any]:
    """The send's header, checked."""
    if not (isinstance(count, int) and not isinstance(count, bool) and 1 <= count <= MAX_COUNT):
        raise InvalidForward(f"a forward count is a whole number from 1 to {MAX_COUNT}")
    if not (isinstance(batch, str) and BATCH.fullmatch(batch)):
        raise InvalidForward("a forward batch is 16 to 32 lowercase hex characters")
    return {"count": count, "batch": batch}


def count_in_frame(frame: dict[str, Any]) -> int:
    """The count an envelope's frame carries (0: not forwarded). A relay that sends anything else than a count in
    range gets no label shown rather than a wrong one."""
    forward = frame.get("forward")
    count = forward.get("count") if isinstance(forward, dict) else None
    if isinstance(count, int) and not isinstance(count, bool) and 1 <= count <= MAX_COUNT:
        return count
    return 0
