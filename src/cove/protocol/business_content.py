"""Reactions, locations and contacts in a business chat, both ways: the plaintexts a business's gateway and a
user's client put inside the end-to-end ciphertext (the text and interactive ones are
:mod:`cove.protocol.business_messages`'). The content objects are the Cloud API's own (Meta's send-messages
reference: https://developers.facebook.com/docs/whatsapp/cloud-api/reference/messages), so the gateway copies a
business's send into the plaintext and a user's message into the webhook without translating field names.

Plaintexts (JSON; the same shape whichever side sends it, so one parser serves the user's client and the
gateway):

- reaction: ``{"v":1,"type":"reaction","id","ts","reaction":{"message_id","emoji"}}``; ``message_id`` is the Cove
  client message id of the message reacted to (in this chat), ``emoji`` ``""`` takes a reaction back;
- location: ``{"v":1,"type":"location","id","ts","location":{"latitude","longitude","name"?,"address"?},
  "context_id"?}``; a user's answer to a location request names the request in ``context_id``;
- contacts: ``{"v":1,"type":"contacts","id","ts","contacts":[{"name":{"formatted_name",...},"phones"?,...}],
  "context_id"?}``.

Meta states few limits for these (257 contacts a message; coordinates in degrees); the other bounds here (text
fields, list lengths) are Cove's, so that neither side has to hold an unbounded message, and docs/business.md
lists them.
"""

from __future__ import annotations

import unicodedata
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, TypeAdapter

from cove.protocol.business_messages import CTA_URL, CTA_URL_MAX, BusinessInteractive, BusinessText, Shape, bounded_text
from cove.protocol.payload import PAYLOAD_VERSION
from cove.protocol.templates.signing import canonical_json

CONTACTS_MAX = 257  # Meta's
CONTACT_FIELD_MAX = 256  # Cove's: a name, a phone, a city...
CONTACT_LIST_MAX = 20  # Cove's: phones, emails, urls, addresses of one contact
LOCATION_TEXT_MAX = 1_000  # Cove's, for a location's name and address
EMOJI_MAX = 16  # code points: the longest emoji sequences (family, flags with tags) are under 16
BIRTHDAY = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"  # Meta's YYYY-MM-DD


def _number(value: object) -> object:
    """Meta's examples send coordinates as strings (``"37.4"``) and clients as numbers: both are a float."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value  # pydantic then says it is not a number
    return value


def _emoji(value: str) -> str:
    """One emoji (a sequence of code points that draws as one), or ``""`` to take a reaction back. Letters,
    spaces and control characters are refused: a reaction is not a way to send text past the rules for texts."""
    if value == "":
        return value
    if len(value) > EMOJI_MAX:
        raise ValueError(f"one emoji, at most {EMOJI_MAX} code points")
    for char in value:
        category = unicodedata.category(char)
        keycap = char in "0123456789#*"  # 1️⃣ is a digit, a variation selector and the keycap mark
        if (category[0] in "LZ" or category == "Cc" or category[0] == "N") and not keycap:
            raise ValueError("must be an emoji, not text")
    if not any(unicodedata.category(char) in ("So", "Sk") or 0x1F000 <= ord(char) < 0xE0000 for char in value):
        raise ValueError("must be an emoji")
    return value


def _url(value: str) -> str:
    if CTA_URL.match(value) is None:  # only web links: no javascript:, file: or intents
        raise ValueError("must be an http or https URL")
    return value


Coordinate = Annotated[float, BeforeValidator(_number)]
Emoji = Annotated[str, AfterValidator(_emoji)]
WebUrl = Annotated[str, Field(min_length=1, max_length=CTA_URL_MAX), AfterValidator(_url)]


def _field() -> Any:
    return Field(None, min_length=1, max_length=CONTACT_FIELD_MAX)


# reaction


class Reaction(Shape):
    message_id: str = Field(min_length=1, max_length=256)
    emoji: Emoji


# location


class Location(Shape):
    latitude: Coordinate = Field(ge=-90, le=90)
    longitude: Coordinate = Field(ge=-180, le=180)
    name: str | None = Field(None, min_length=1, max_length=LOCATION_TEXT_MAX)
    address: str | None = Field(None, min_length=1, max_length=LOCATION_TEXT_MAX)


# contacts (every field but the formatted name is optional, as in Meta's reference)


class ContactName(Shape):
    formatted_name: str = bounded_text(CONTACT_FIELD_MAX)
    first_name: str | None = _field()
    last_name: str | None = _field()
    middle_name: str | None = _field()
    suffix: str | None = _field()
    prefix: str | None = _field()


class ContactAddress(Shape):
    street: str | None = _field()
    city: str | None = _field()
    state: str | None = _field()
    zip: str | None = _field()
    country: str | None = _field()
    country_code: str | None = _field()
    type: str | None = _field()


class ContactEmail(Shape):
    email: str | None = _field()
    type: str | None = _field()


class ContactPhone(Shape):
    phone: str | None = _field()
    type: str | None = _field()
    wa_id: str | None = _field()  # Meta sets it when the number is on WhatsApp; see the gateway for users' copies


class ContactUrl(Shape):
    url: WebUrl | None = None
    type: str | None = _field()


class ContactOrg(Shape):
    company: str | None = _field()
    department: str | None = _field()
    title: str | None = _field()


class Contact(Shape):
    name: ContactName
    addresses: list[ContactAddress] | None = Field(None, max_length=CONTACT_LIST_MAX)
    birthday: str | None = Field(None, pattern=BIRTHDAY)
    emails: list[ContactEmail] | None = Field(None, max_length=CONTACT_LIST_MAX)
    org: ContactOrg | None = None
    phones: list[ContactPhone] | None = Field(None, max_length=CONTACT_LIST_MAX)
    urls: list[ContactUrl] | None = Field(None, max_length=CONTACT_LIST_MAX)


Contacts = Annotated[list[Contact], Field(min_length=1, max_length=CONTACTS_MAX)]


# the plaintexts


class _Plaintext(Shape):
    v: Literal[1]
    id: str = Field(min_length=1, max_length=256)
    ts: int = Field(ge=0)


class ReactionMessage(_Plaintext):
    type: Literal["reaction"]
    reaction: Reaction


class LocationMessage(_Plaintext):
    type: Literal["location"]
    location: Location
    context_id: str | None = Field(None, min_length=1, max_length=256)


class ContactsMessage(_Plaintext):
    type: Literal["contacts"]
    contacts: Contacts
    context_id: str | None = Field(None, min_length=1, max_length=256)


Content = ReactionMessage | LocationMessage | ContactsMessage
CONTENT_TYPES = frozenset({"reaction", "location", "contacts"})
BusinessMessage = BusinessText | BusinessInteractive | Content

_CONTENT: TypeAdapter[Content] = TypeAdapter(Annotated[Content, Field(discriminator="type")])
_ANY: TypeAdapter[BusinessMessage] = TypeAdapter(Annotated[BusinessMessage, Field(discriminator="type")])


def parse_content(plaintext: bytes) -> Content:
    """A reaction, location or contacts plaintext from either side, every limit checked (neither side trusts
    the other). Raises pydantic's ``ValidationError`` (a ``ValueError``)."""
    return _CONTENT.validate_json(plaintext)


def parse_business_message(plaintext: bytes) -> BusinessMessage:
    """The user's client's side: any message a business's gateway sends, but templates (sealed apart)."""
    return _ANY.validate_json(plaintext)


def _dump(message: Shape) -> bytes:
    return canonical_json(message.model_dump(mode="json", exclude_none=True))


def reaction_plaintext(message_id: str, ts_ms: int, reacted_to: str, emoji: str) -> bytes:
    """React to the message whose Cove client message id is ``reacted_to`` (``""`` takes the reaction back)."""
    reaction = Reaction(message_id=reacted_to, emoji=emoji)
    return _dump(ReactionMessage(v=PAYLOAD_VERSION, type="reaction", id=message_id, ts=ts_ms, reaction=reaction))


def location_plaintext(message_id: str, ts_ms: int, location: Location, context_id: str | None = None) -> bytes:
    message = LocationMessage(
        v=PAYLOAD_VERSION, type="location", id=message_id, ts=ts_ms, location=location, context_id=context_id
    )
    return _dump(message)


def contacts_plaintext(message_id: str, ts_ms: int, contacts: list[Contact], context_id: str | None = None) -> bytes:
    message = ContactsMessage(
        v=PAYLOAD_VERSION, type="contacts", id=message_id, ts=ts_ms, contacts=contacts, context_id=context_id
    )
    return _dump(message)


def describe(message: BusinessMessage) -> str:
    """One line (or a few) for a person: how a client shows a business's message of these types."""
    if isinstance(message, ReactionMessage):
        emoji = message.reaction.emoji
        target = message.reaction.message_id
        return f"reacted {emoji} to your message {target}" if emoji else f"took back a reaction to {target}"
    if isinstance(message, LocationMessage):
        where = message.location
        label = ", ".join(part for part in (where.name, where.address) if part)
        coordinates = f"{where.latitude:.6f}, {where.longitude:.6f}"
        return f"location: {label} ({coordinates})" if label else f"location: {coordinates}"
    if isinstance(message, ContactsMessage):
        lines = []
        for contact in message.contacts:
            details = [p.phone for p in contact.phones or [] if p.phone]
            details += [e.email for e in contact.emails or [] if e.email]
            lines.append(contact.name.formatted_name + (f" ({', '.join(details)})" if details else ""))
        return "contact: " + "; ".join(lines)
    if isinstance(message, BusinessText):
        return message.text
    return describe_interactive(message)


def describe_interactive(message: BusinessInteractive) -> str:
    """An interactive message's text, then its choices or its button, as the CLI shows them."""
    interactive = message.interactive.model_dump(mode="json", exclude_none=True)
    parts = [interactive.get("header", {}).get("text"), interactive.get("body", {}).get("text")]
    action = interactive.get("action", {})
    lines = [part for part in parts if part]
    lines += [f"[{b['reply']['title']}]" for b in action.get("buttons", [])]
    lines += [f"[{row['title']}]" for section in action.get("sections", []) for row in section["rows"]]
    if interactive["type"] == "cta_url":
        lines.append(f"[{action['parameters']['display_text']}] → {action['parameters']['url']}")
    if interactive["type"] == "location_request_message":
        lines.append("[Send location] (answer with `cove businesses location --reply-to ID`)")
    if footer := interactive.get("footer", {}).get("text"):
        lines.append(footer)
    return "\n  ".join(lines)
