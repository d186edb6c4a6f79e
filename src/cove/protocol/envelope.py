"""The kinds of envelope a client sends and receives (cove.messaging.envelope is the relay's envelope)."""

from __future__ import annotations

from enum import IntEnum


class EnvelopeKind(IntEnum):
    OLM_PREKEY = 0  # vodozemac message type 0: opens a session, consumes a one-time key
    OLM_MESSAGE = 1  # vodozemac message type 1: within an established session
    MEGOLM = 2  # a group message: one Megolm ciphertext the relay stored once; the frame names its "group"
    DELIVERY_RECEIPT = 5  # from the server: "these messages reached that device"; body lists their ids
    GROUP_RECEIPT = 6  # from the server: "these group messages reached these member devices" ("receipts")
    GROUP_CHANGE = 7  # from the server: a group's membership changed ("change": revision, action, accounts)


# Kinds whose body is the relay's own JSON, merged into the wire frame instead of sent as base64.
RELAY_METADATA_KINDS = frozenset({EnvelopeKind.GROUP_RECEIPT, EnvelopeKind.GROUP_CHANGE})
