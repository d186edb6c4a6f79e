"""What a user's client sends a business besides texts and choices: a reaction to one of its messages, a location
(on its own, or answering the business's location request), contacts. The plaintexts are
:mod:`cove.protocol.business_content`'s; the business's gateway turns each into the Cloud API webhook its
integration already reads.
"""

from __future__ import annotations

import uuid
from typing import Any

from cove.client.clock import now_ms
from cove.client.core import Outgoing
from cove.protocol.business_content import (
    Contact,
    Location,
    contacts_plaintext,
    describe,
    location_plaintext,
    parse_content,
    reaction_plaintext,
)


def compose_reaction(business: str, client_message_id: str, emoji: str) -> Outgoing:
    """React to the business's message ``client_message_id`` with one emoji; ``""`` takes the reaction back.
    Raises ``ValueError`` for anything but one emoji."""
    cmid = uuid.uuid4().hex
    shown = f"reacted {emoji}" if emoji else "took back a reaction"  # kept in the history, as texts are
    return Outgoing(business, cmid, reaction_plaintext(cmid, now_ms(), client_message_id, emoji), shown)


def compose_location(
    business: str,
    latitude: float,
    longitude: float,
    name: str | None = None,
    address: str | None = None,
    reply_to: str | None = None,
) -> Outgoing:
    """Share a location; ``reply_to`` is the business's location request it answers (its client message id)."""
    cmid = uuid.uuid4().hex
    where = Location(latitude=latitude, longitude=longitude, name=name, address=address)
    plaintext = location_plaintext(cmid, now_ms(), where, reply_to)
    return Outgoing(business, cmid, plaintext, describe(parse_content(plaintext)))


def compose_contacts(business: str, contacts: list[dict[str, Any]], reply_to: str | None = None) -> Outgoing:
    """Share contact cards in the Cloud API's shape (``{"name": {"formatted_name": ...}, "phones": [...]}``)."""
    cmid = uuid.uuid4().hex
    cards = [Contact.model_validate(contact) for contact in contacts]
    plaintext = contacts_plaintext(cmid, now_ms(), cards, reply_to)
    return Outgoing(business, cmid, plaintext, describe(parse_content(plaintext)))
