"""The kinds of envelope a client sends and receives (cove.messaging.envelope is the relay's envelope)."""

from __future__ import annotations

from enum import IntEnum


class EnvelopeKind(IntEnum):
    OLM_PREKEY = 0  # vodozemac message type 0: opens a session, consumes a one-time key
    OLM_MESSAGE = 1  # vodozemac message type 1: within an established session
    DELIVERY_RECEIPT = 5  # from the server: "these messages reached that device"; body lists their ids
