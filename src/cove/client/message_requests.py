"""The rules of message requests, apart from storage: which events a request can hold, and which say the user wrote.

A peer is a contact when the user wrote to them (here or on another of their devices), accepted their request, or
added them. A one-to-one message from anyone else is a message request: it waits, unread as far as its sender can
tell, until the user accepts, blocks or reports. Three kinds of message are never requests: a business's (its
visible header says so; the user opted in to hear from it), a group's (joining the group was the consent), and one
from the user's own devices. The relay applies the same notion of contact to read receipts (it withholds a receipt
to someone the reader has not accepted), so a client that sent one early would be refused silently anyway.
"""

from __future__ import annotations

from cove.client.events import (
    AttachmentReceived,
    Event,
    MessageReceived,
    PayloadReceived,
    RequestReceived,
    SentElsewhere,
)


def request_of(event: Event, me: str | None) -> RequestReceived | None:
    """The request ``event`` opens or adds to when its sender is not a contact; ``None``: it is never one."""
    one_to_one = (isinstance(event, MessageReceived | PayloadReceived) and event.business is None) or (
        isinstance(event, AttachmentReceived) and event.group is None
    )
    if not one_to_one or event.sender == me:
        return None
    return RequestReceived(event.sender, event.client_message_id, event.sent_at)


def wrote_to(event: Event, me: str | None) -> str | None:
    """The peer the user wrote to from another of their devices (a transcript): a contact from then on."""
    if isinstance(event, SentElsewhere) and event.peer != me:
        return event.peer
    return None
