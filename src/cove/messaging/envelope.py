"""The envelope: what the relay routes and stores. Pure data; its wire form is JSON with base64 bodies."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, replace
from typing import Any

import orjson

from cove.protocol.envelope import RELAY_METADATA_KINDS, EnvelopeKind

CIPHERTEXT_KINDS = frozenset({EnvelopeKind.OLM_PREKEY, EnvelopeKind.OLM_MESSAGE})
# Kinds whose delivery the relay reports back to the sender.
RECEIPTED_KINDS = CIPHERTEXT_KINDS | {EnvelopeKind.MEGOLM}

QUEUE_ID_MAX = 2**63 - 1  # queue ids are signed 64-bit integers in SQLite and PostgreSQL alike


@dataclass(frozen=True, slots=True)
class Envelope:
    id: int | None
    account_id: str
    device_id: int
    kind: int
    sender_account_id: str
    sender_device_id: int
    client_message_id: str
    body: bytes
    server_ts_ms: int
    expires_at_ms: int
    # A business's visible header as JSON (kind, template id, version, language, category): the recipient's
    # client shows the business label and fetches the signed template it names. Never content.
    business: str | None = None
    # A group message's queue row points at its ciphertext, stored once (``group_messages``): the row's own body is
    # empty, and ``body`` and ``group`` here are the stored message's, read with it.
    group_message_id: int | None = None
    group: str | None = None
    # How many times the message was forwarded, from the sender's visible header (cove.protocol.forwarding).
    forward_count: int | None = None
    # Every field of the wire frame but its type and id, as JSON (``shared_wire``): the envelopes of one group
    # message share it, so the frame is built and encoded once for all the group's devices, not once for each.
    wire_rest: bytes | None = None

    def row(self) -> dict[str, Any]:
        return {
            "account_id": self.account_id,
            "device_id": self.device_id,
            "kind": self.kind,
            "sender_account_id": self.sender_account_id,
            "sender_device_id": self.sender_device_id,
            "client_message_id": self.client_message_id,
            "body": self.body,
            "server_ts_ms": self.server_ts_ms,
            "expires_at_ms": self.expires_at_ms,
            "business": self.business,
            "group_message_id": self.group_message_id,
            "forward_count": self.forward_count,
        }

    def with_id(self, queue_id: int) -> Envelope:
        return replace(self, id=queue_id)

    def wire(self) -> dict[str, Any]:
        frame = {
            "type": "envelope",
            "id": self.id,
            "kind": self.kind,
            "sender": self.sender_account_id,
            "sender_device": self.sender_device_id,
            "client_message_id": self.client_message_id,
            "server_ts": self.server_ts_ms,
        }
        if self.kind == EnvelopeKind.DELIVERY_RECEIPT:
            frame["client_message_ids"] = receipt_ids(self.body)
        elif self.kind in RELAY_METADATA_KINDS:
            frame.update(orjson.loads(self.body))
        else:
            frame["body"] = base64.b64encode(self.body).decode()
        if self.business is not None:
            frame["business"] = json.loads(self.business)
        if self.group is not None:
            frame["group"] = self.group
        if self.forward_count is not None:
            frame["forward"] = {"count": self.forward_count}
        return frame

    def encoded(self) -> bytes:
        """The wire frame as JSON, to be sent as it is or inside a batch."""
        if self.wire_rest is None:
            return orjson.dumps(self.wire())
        return b'{"type":"envelope","id":%d,%s' % (self.id, self.wire_rest)


def shared_wire(envelope: Envelope) -> bytes:
    """What ``Envelope.wire_rest`` holds: the frame of ``envelope`` less its type and queue id, as JSON."""
    frame = envelope.wire()
    del frame["type"], frame["id"]
    return orjson.dumps(frame)[1:]  # the fields and the closing brace


def receipt_body(client_message_ids: list[str]) -> bytes:
    """A delivery receipt covers every message one device acked at once: the relay's own metadata, no content."""
    return "\n".join(client_message_ids).encode()


def receipt_ids(body: bytes) -> list[str]:
    return body.decode().split("\n") if body else []


def metadata_body(group_id: str, **fields: Any) -> bytes:
    """The body of a GROUP_RECEIPT or GROUP_CHANGE: the relay's own JSON, merged into the wire frame."""
    return orjson.dumps({"group": group_id, **fields})
