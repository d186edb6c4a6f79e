"""Who a user is in the gateway's webhooks, as Meta sends it since business-scoped user ids (BSUIDs).

Meta's fields ([M] https://developers.facebook.com/documentation/business-messaging/whatsapp/business-scoped-user-ids/
and the messages webhook reference under https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/messages/):

- a user's message: ``contacts[{"profile": {"name"}, "wa_id"?, "user_id"}]`` and in the message ``"from"?`` and
  ``"from_user_id"``. ``wa_id`` and ``from`` (the number's digits) only when the business may see the number;
- a status: ``recipient_id`` (the number, only when the business may see it), ``recipient_user_id`` and
  ``contacts[{"profile": {"name"}, "wa_id"?, "user_id"}]``; a failed status of a send to a number has no
  ``recipient_user_id``. Meta sends no ``contacts`` with a failed status; the gateway does (see events.status);
- an id change: a ``system`` message (no ``contacts`` array) of type ``user_changed_number`` (the new number can be
  shared: ``system.wa_id``) or ``user_changed_user_id`` (only the id changed), with ``system.user_id`` and
  ``system.previous_user_id`` (Meta's changelog of Aug 11, 2026: https://developers.facebook.com/documentation/business-messaging/whatsapp/changelog/);
- a user sharing their number when asked: a ``contacts`` message with ``origin: "contact_request"``.

A business may see a user's number when the user shares it with it, or when the business itself sent to that
number (it knew it; Meta shows the number then too, from its contact book). Nothing else reveals it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

CONTACT_REQUEST = "contact_request"


@dataclass(frozen=True)
class Contact:
    """A user as the business may see them. ``user_id`` is None only for a send to a number no Cove user has."""

    user_id: str | None
    wa_id: str | None  # the number's digits, when the business may see it
    name: str | None
    # Meta leaves ``recipient_user_id`` out of a failed status of a send to a number; the id still goes in
    # ``contacts`` then (see :func:`.events.status`).
    id_in_status: bool = True

    def ids(self) -> dict[str, str]:
        """``wa_id`` and ``user_id``, each if known, in Meta's order."""
        out: dict[str, str] = {}
        if self.wa_id is not None:
            out["wa_id"] = self.wa_id
        if self.user_id is not None:
            out["user_id"] = self.user_id
        return out

    def sender(self) -> dict[str, Any]:
        """The ``contacts`` entry of a user's message. A user who set no name shows an empty one, never their id
        (Meta's ``profile.name`` is the name the user chose; client libraries read the key unconditionally)."""
        return {"profile": {"name": self.name or ""}, **self.ids()}

    def message_from(self) -> dict[str, str]:
        """``from`` and ``from_user_id`` of a user's message."""
        out: dict[str, str] = {}
        if self.wa_id is not None:
            out["from"] = self.wa_id
        if self.user_id is not None:
            out["from_user_id"] = self.user_id
        return out


def contact_shared(contact: Contact, message_id: str, timestamp_s: int) -> dict[str, Any]:
    """The message a user's answer to a request for their number becomes (its ``contacts`` part is Meta's
    contact card: a formatted name, and the number as a phone with its ``wa_id``)."""
    if contact.wa_id is None:
        raise ValueError("a shared contact has a number")
    name = contact.name or "+" + contact.wa_id
    card = {
        "name": {"formatted_name": name, "first_name": name},
        "phones": [{"phone": "+" + contact.wa_id, "wa_id": contact.wa_id, "type": "CELL"}],
        "vcard": f"BEGIN:VCARD\nVERSION:3.0\nFN:{name}\nTEL;type=CELL;waid={contact.wa_id}:+{contact.wa_id}\nEND:VCARD",
    }
    return {
        **contact.message_from(),
        "id": message_id,
        "timestamp": str(timestamp_s),
        "type": "contacts",
        "origin": CONTACT_REQUEST,
        "contacts": [card],
    }


def id_changed(
    previous: Contact, user_id: str, new_wa_id: str | None, message_id: str, timestamp_s: int
) -> dict[str, Any]:
    """The system message telling the business a user's id changed: ``user_changed_number`` when the user shares
    the new number, ``user_changed_user_id`` otherwise (then no number at all, old or new)."""
    if previous.user_id is None:
        raise ValueError("an id change starts from an id")
    if new_wa_id is not None:
        who = previous.name or "+" + (previous.wa_id or new_wa_id)
        old = "+" + previous.wa_id if previous.wa_id else "their previous number"
        system = {
            "body": f"User {who} changed from {old} to +{new_wa_id}",
            "type": "user_changed_number",
            "wa_id": new_wa_id,
        }
        sender = previous.message_from()
    else:
        system = {"body": "User's ID has changed", "type": "user_changed_user_id"}
        sender = {"from_user_id": previous.user_id}
    system |= {"user_id": user_id, "previous_user_id": previous.user_id}
    return {**sender, "id": message_id, "timestamp": str(timestamp_s), "type": "system", "system": system}
