"""Forwarding in the SDK, without I/O: what this device keeps to forward a message again (its forward count, and
a file's pointer: the key travels end to end, so a forward sends the pointer again and uploads nothing), and the
message a forward starts from.

The count arrives in the envelope's visible header (:mod:`cove.protocol.forwarding`) and is kept in the side
table ``forwards`` of the client store, in the transaction that stores the message, with the pointer of every
file received or sent; a message that is neither forwarded nor a file leaves no row.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from cove.client.events import AttachmentReceived, Event, GroupMessageReceived, MessageReceived
from cove.client.store import ClientStore
from cove.protocol import forwarding
from cove.protocol.attachments import Pointer, parse_pointer

MIN_PREFIX = 4  # characters of a message id that name it (history shows 8)


@dataclass(frozen=True)
class Original:
    """A message this device holds, as a forward starts from it."""

    chat: str  # the peer's account id, or the group's id
    group: bool
    client_message_id: str
    text: str  # the text, or the file's history line
    count: int  # times forwarded before it reached this device
    attachment: dict[str, Any] | None  # a file's pointer
    caption: str | None  # a file's caption

    @property
    def limit(self) -> int:
        return forwarding.limit(self.count)


def keep(
    store: ClientStore,
    chat: str,
    client_message_id: str,
    count: int,
    attachment: dict[str, Any] | None = None,
    caption: str | None = None,
) -> None:
    if not count and attachment is None:
        return
    with store.transaction() as db:
        db.execute(
            "INSERT INTO forwards VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (chat, client_message_id, count, json.dumps(attachment) if attachment else None, caption),
        )


def keep_received(store: ClientStore, frame: dict[str, Any], events: list[Event]) -> None:
    """In the envelope's transaction: the count its header carries, and a file's pointer. Only for the message the
    envelope itself carries (a group message read later, when its key came, is kept without its count)."""
    count = forwarding.count_in_frame(frame)
    for event in events:
        if not isinstance(event, MessageReceived | GroupMessageReceived | AttachmentReceived):
            continue
        own = event.client_message_id == frame.get("client_message_id")
        if isinstance(event, AttachmentReceived):
            chat = event.group or event.sender
            keep(store, chat, event.client_message_id, count if own else 0, event.attachment, event.text)
        elif own:
            chat = event.group_id if isinstance(event, GroupMessageReceived) else event.sender
            keep(store, chat, event.client_message_id, count)


def keep_sent(store: ClientStore, recipient: str, client_message_id: str, payload: bytes, count: int) -> None:
    """A message sent 1:1: its header's count, and its pointer if it carries a file."""
    try:
        body = json.loads(payload)
    except ValueError:
        return
    if not isinstance(body, dict) or body.get("type") not in ("text", "attachment"):
        return
    attachment = body.get("attachment") if body.get("type") == "attachment" else None
    keep(store, recipient, client_message_id, count, attachment, body.get("text") if attachment else None)


def count_of(store: ClientStore, chat: str, client_message_id: str) -> int:
    row = store.connection.execute(
        "SELECT count FROM forwards WHERE chat = ? AND client_message_id = ?", (chat, client_message_id)
    ).fetchone()
    return int(row[0]) if row else 0


def find(store: ClientStore, prefix: str) -> list[Original]:
    """The messages (1:1 and group, sent and received) whose id starts with ``prefix``."""
    if len(prefix) < MIN_PREFIX or not prefix.isalnum():
        return []
    pattern = prefix.lower() + "%"
    rows = store.connection.execute(
        "SELECT m.chat, m.grp, m.cmid, m.text, f.count, f.attachment, f.caption FROM ("
        " SELECT peer_account AS chat, 0 AS grp, client_message_id AS cmid, text FROM messages"
        " WHERE client_message_id LIKE ?"
        " UNION SELECT group_id, 1, client_message_id, text FROM group_messages WHERE client_message_id LIKE ?"
        ") m LEFT JOIN forwards f ON f.chat = m.chat AND f.client_message_id = m.cmid",
        (pattern, pattern),
    )
    return [
        Original(chat, bool(grp), cmid, text, count or 0, json.loads(attachment) if attachment else None, caption)
        for chat, grp, cmid, text, count, attachment, caption in rows
    ]


def pointer(original: Original) -> Pointer | None:
    """The file's pointer, checked (``None``: a text); ``InvalidPointer`` if what was kept is not one."""
    return None if original.attachment is None else parse_pointer(original.attachment)
