"""A user's reaction, location or contacts as the message part of a Cloud API webhook (Meta's webhook reference
for ``messages``: ``type`` ``reaction``, ``location`` and ``contacts``), pure: the caller says which Cloud API
ids the user's client message ids stand for.

The user's client names messages by their Cove client message ids; the business knows them by Cloud API ids.
For the business's own messages the two are the same string; a user's own message has an id derived from it
(:func:`inbound_id`). As in Meta's API, a user reacts to the business's messages
and the business to the user's. A message this chat does not hold (never sent, sent to someone else, or
forgotten after the retention) cannot be named to the business: a user's reaction to it is dropped, a location
or contacts message answering it loses only its ``context``, and a business's reaction to it is refused (100).
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any, NamedTuple

from cove.business.errors import CloudApiError
from cove.business.gateway.store import GatewayStore
from cove.protocol.business_content import ContactsMessage, Content, LocationMessage, ReactionMessage, parse_content


def reacted_to(message: Content) -> str | None:
    """The client message id a reaction names (the caller maps it to a Cloud API id), None for other types."""
    return message.reaction.message_id if isinstance(message, ReactionMessage) else None


def replied_to(message: Content) -> str | None:
    """The client message id a location or contacts message answers (a location request, say)."""
    return message.context_id if isinstance(message, LocationMessage | ContactsMessage) else None


def webhook_part(message: Content, cloud_id: str | None) -> dict[str, Any] | None:
    """The message's type and content as the webhook carries them, or None when it cannot be posted (a reaction
    to a message the gateway does not know). ``cloud_id`` is the Cloud API id of the message reacted to."""
    if isinstance(message, ReactionMessage):
        if cloud_id is None:
            return None
        # Meta leaves ``emoji`` out when a user takes a reaction back; clients test for it, not for "".
        reaction = {"message_id": cloud_id}
        if message.reaction.emoji:
            reaction["emoji"] = message.reaction.emoji
        return {"type": "reaction", "reaction": reaction}
    if isinstance(message, LocationMessage):
        return {"type": "location", "location": message.location.model_dump(mode="json", exclude_none=True)}
    contacts = []
    for contact in message.contacts:
        shared = contact.model_dump(mode="json", exclude_none=True)
        # A phone's wa_id is set by Meta, never by the sender: a user's client cannot know the ids this business
        # gives other people, and a made-up one would point the business's records at someone else.
        for phone in shared.get("phones", []):
            phone.pop("wa_id", None)
        contacts.append(shared)
    return {"type": "contacts", "contacts": contacts}


class Built(NamedTuple):
    part: dict[str, Any]
    context_id: str | None


def business_message(store: GatewayStore, account_id: str, client_message_id: str | None) -> str | None:
    """The Cloud API id of the business's message to ``account_id`` with this client message id, if known."""
    if client_message_id is None:
        return None
    record = store.message(client_message_id)
    if record is None or record.direction != "out" or record.account_id != account_id:
        return None
    return record.message_id


def content(store: GatewayStore, account_id: str, payload: dict[str, Any]) -> Built | str:
    """A user's reaction, location or contacts payload as the webhook's message part and context, or why it is
    dropped (malformed, or a reaction to a message the business could not identify)."""
    try:
        message = parse_content(json.dumps(payload).encode())
    except ValueError:
        return "malformed"
    part = webhook_part(message, business_message(store, account_id, reacted_to(message)))
    if part is None:
        return "a reaction to a message the gateway does not know"
    return Built(part, business_message(store, account_id, replied_to(message)))


def reacted_to_by_business(store: GatewayStore, account_id: str | None, message_id: str) -> str:
    """The Cove client message id of the user's message the business reacts to; raises :class:`CloudApiError`
    (100) for a message this user did not send the business."""
    record = store.message(message_id)
    if record is None or record.direction != "in" or record.account_id != account_id:
        raise CloudApiError(100, f"reaction.message_id: no message {message_id!r} from this user.")
    return record.client_message_id


def inbound_id(business_id: str, account_id: str, client_message_id: str) -> str:
    """The Cloud API id of a user's message. A client message id is unique only per sender, so the sender is in
    the hash; the business is too, so two businesses cannot match the ids of one user's messages."""
    digest = hashlib.sha256(f"{business_id}\n{account_id}\n{client_message_id}".encode()).digest()[:24]
    return "wamid." + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
