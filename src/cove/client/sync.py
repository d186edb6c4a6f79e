"""One person's devices show one conversation: what they tell each other, as payloads and their local effects.

Three payload types travel between devices of the same account only (inside Olm, like any message):

- ``{"v": 1, "type": "sent", "to", "message"}``: a transcript of a message this device sent to ``to``; ``message``
  is the original payload. The other devices keep it in their history as outgoing.
- ``{"v": 1, "type": "read_sync", "peer", "ids"}``: this device showed these messages of ``peer``; the others mark
  them read and send no read receipt of their own.
- ``{"v": 1, "type": "history", "for_device", "part", "parts", "messages"}``: the primary's history for a newly
  linked device (off unless the user asks), in parts of bounded size; the device named imports it.

A device accepts them only from another device of its own account that the account's verified device list names;
anything else, or a malformed field, is dropped and reported as :class:`Undecryptable`.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any

from cove.client import attachments, paths
from cove.client.events import Event, HistoryImported, ReadElsewhere, SentElsewhere, Undecryptable
from cove.client.store import ClientStore, StoredMessage
from cove.protocol.payload import PAYLOAD_VERSION

SENT, READ_SYNC, HISTORY = "sent", "read_sync", "history"
OWN_DEVICE_TYPES = frozenset({SENT, READ_SYNC, HISTORY})
MIRRORED_TYPES = frozenset({"text", "attachment"})  # what a person wrote; receipts and SAS are not conversation
PRIMARY_DEVICE = 1
MAX_READ_IDS = 1000  # as the relay's own bound on an ack
MAX_ID_LENGTH = 64  # a client_message_id, as the relay bounds it
HISTORY_PART_BYTES = 48 * 1024  # well under the relay's 96 KiB per ciphertext, with Olm's and base64's overhead
MAX_HISTORY_MESSAGES = 20_000
MAX_HISTORY_PARTS = 1_000
DIRECTIONS = ("in", "out")
_ACCOUNT = re.compile(paths.ACCOUNT_ID)


class BadSyncPayload(ValueError):
    pass


@dataclass(frozen=True)
class Me:
    account_id: str
    device_id: int
    trusted: frozenset[int]  # the own account's devices its verified list names


# composing ---------------------------------------------------------------------------------------------
def transcript(recipient: str, payload: bytes) -> bytes | None:
    """The ``sent`` payload for a message just sent to ``recipient``, or ``None`` if it is not one to mirror."""
    try:
        message = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(message, dict) or message.get("type") not in MIRRORED_TYPES:
        return None
    return json.dumps({"v": PAYLOAD_VERSION, "type": SENT, "to": recipient, "message": message}).encode()


def read_sync(peer: str, client_message_ids: list[str]) -> bytes:
    return json.dumps({"v": PAYLOAD_VERSION, "type": READ_SYNC, "peer": peer, "ids": client_message_ids}).encode()


def history_parts(messages: list[StoredMessage], for_device: int) -> list[bytes]:
    """The messages as ``history`` payloads of at most about :data:`HISTORY_PART_BYTES` each, oldest first."""
    items = [
        {
            "peer": m.peer_account,
            "direction": m.direction,
            "id": m.client_message_id,
            "text": m.text,
            "ts": m.sent_at,
            "status": m.status,
        }
        for m in messages[-MAX_HISTORY_MESSAGES:]
    ]
    groups: list[list[dict[str, Any]]] = []
    size = 0
    for item in items:
        item_size = len(json.dumps(item))
        if not groups or size + item_size > HISTORY_PART_BYTES:
            groups.append([])
            size = 0
        groups[-1].append(item)
        size += item_size
    return [
        json.dumps(
            {"v": PAYLOAD_VERSION, "type": HISTORY, "for_device": for_device, "part": i, "parts": len(groups),
             "messages": group}
        ).encode()
        for i, group in enumerate(groups)
    ]  # fmt: skip


# receiving ---------------------------------------------------------------------------------------------
def apply(
    store: ClientStore, me: Me, sender: str, sender_device: int, payload: dict[str, Any], envelope: int
) -> list[Event]:
    """Apply an own-device payload in the envelope's transaction; what the app is told."""
    if sender != me.account_id or sender_device == me.device_id or sender_device not in me.trusted:
        return [Undecryptable(sender, sender_device, envelope, "an own-device payload from another account's device")]
    try:
        kind = payload["type"]
        if kind == SENT:
            return _sent(store, sender_device, payload)
        if kind == READ_SYNC:
            return _read(store, payload)
        return _history(store, me, sender_device, payload)
    except (BadSyncPayload, KeyError, TypeError) as exc:
        return [Undecryptable(sender, sender_device, envelope, f"a malformed {payload.get('type')} payload: {exc}")]


def _account(value: Any) -> str:
    if not isinstance(value, str) or not _ACCOUNT.fullmatch(value):
        raise BadSyncPayload("not an account id")
    return value


def _message_id(value: Any) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_ID_LENGTH:
        raise BadSyncPayload("not a message id")
    return value


def _sent(store: ClientStore, sender_device: int, payload: dict[str, Any]) -> list[Event]:
    to, message = _account(payload["to"]), payload["message"]
    if not isinstance(message, dict):
        raise BadSyncPayload("the message is not an object")
    cmid, sent_at = _message_id(message["id"]), int(message.get("ts") or time.time() * 1000)
    text = message.get("text")
    text = text if isinstance(text, str) else None
    event = SentElsewhere(to, sender_device, cmid, text, sent_at, message)
    if message.get("type") == "text" and text is not None:
        store.add_message(to, "out", cmid, text, sent_at, "sent")
    elif attachments.carries_file(event):  # the line the sending device keeps (or says the file cannot be opened)
        store.add_message(to, "out", cmid, attachments.file_line(event), sent_at, "sent")
    return [event]


def _read(store: ClientStore, payload: dict[str, Any]) -> list[Event]:
    peer, ids = _account(payload["peer"]), payload["ids"]
    if not isinstance(ids, list) or len(ids) > MAX_READ_IDS:
        raise BadSyncPayload("ids is not a bounded list")
    ids = [_message_id(i) for i in ids]
    store.mark_read_in(peer, ids)
    return [ReadElsewhere(peer, ids)]


def _history(store: ClientStore, me: Me, sender_device: int, payload: dict[str, Any]) -> list[Event]:
    if payload["for_device"] != me.device_id:
        return []  # for another new device of the account: every device had to get a copy
    if sender_device != PRIMARY_DEVICE:
        raise BadSyncPayload("history comes only from the primary")
    part, parts, items = int(payload["part"]), int(payload["parts"]), payload["messages"]
    if not 0 <= part < parts <= MAX_HISTORY_PARTS or not isinstance(items, list):
        raise BadSyncPayload("part, parts or messages out of range")
    rows = []
    for item in items:  # all checked before any is stored
        if item["direction"] not in DIRECTIONS or not isinstance(item["text"], str):
            raise BadSyncPayload("a message without a direction or text")
        rows.append(
            (_account(item["peer"]), item["direction"], _message_id(item["id"]), item["text"], int(item["ts"]),
             str(item["status"])[:16])
        )  # fmt: skip
    for row in rows:
        store.add_message(*row)
    return [HistoryImported(len(items), part, parts)]
