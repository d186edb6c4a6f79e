"""The kinds of envelope a client sends and receives (cove.messaging.envelope is the relay's envelope)."""

from __future__ import annotations

from enum import IntEnum


class EnvelopeKind(IntEnum):
    OLM_PREKEY = 0  # vodozemac message type 0: opens a session, consumes a one-time key
    OLM_MESSAGE = 1  # vodozemac message type 1: within an established session
    MEGOLM = 2  # a group message: one Megolm ciphertext the relay fans out; the frame names its "group"
    DELIVERY_RECEIPT = 5  # from the server: "these messages reached that device"; body lists their ids
    GROUP_RECEIPT = 6  # from the server: which member devices received which group messages
    GROUP_CHANGE = 7  # from the server: a membership change it made (metadata it wrote, not content)
