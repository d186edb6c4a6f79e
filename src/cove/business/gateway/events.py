"""Webhook bodies in the Cloud API's shape, each with a stable event id.

The bodies are Meta's (Meta's webhooks overview; field references under
[M] https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/ for
``messages``, ``message_template_status_update``, ``phone_number_quality_update`` and ``user_preferences``), so a
business's existing webhook handler reads them unchanged.

Delivery is at least once, and duplicates are the first thing integrators complain about. So every body
comes with an :class:`Event` id derived only from the facts it reports (sha256 of the field and those facts):
the same fact built twice, after a gateway crash and a redelivered envelope, gets the same id, and the receiver
drops the copy; a different fact (another status of the same message) gets another id. Nothing random and no
clock of the gateway's goes into it: times are the ones the facts carry.
"""

from __future__ import annotations

import hashlib
from enum import StrEnum
from typing import Any, Literal, NamedTuple

from cove.business.errors import MESSAGING_PRODUCT, CloudApiError
from cove.business.gateway.identity import Contact
from cove.business.gateway.statuses import Status
from cove.business.tiers import Tier
from cove.protocol.business import Category
from cove.protocol.business_messages import ReplyChoice
from cove.protocol.templates.review import ReviewStatus
from cove.protocol.templates.signing import canonical_json

OBJECT = "whatsapp_business_account"

#: The Cloud API's names for messaging limits (``current_limit``).
TIER_NAMES = {
    Tier.T250: "TIER_250",
    Tier.T2K: "TIER_2K",
    Tier.T10K: "TIER_10K",
    Tier.T100K: "TIER_100K",
    Tier.UNLIMITED: "TIER_UNLIMITED",
}
PREFERENCE_DETAILS = {
    "stop": "User requested to stop marketing messages",
    "resume": "User requested to resume marketing messages",
}


class Event(NamedTuple):
    event_id: str
    body: dict[str, Any]


class QualityEvent(StrEnum):
    """The ``phone_number_quality_update`` events Cove produces: tier moves, and quality turning RED and back."""

    UPGRADE = "UPGRADE"
    DOWNGRADE = "DOWNGRADE"
    FLAGGED = "FLAGGED"
    UNFLAGGED = "UNFLAGGED"


class Pricing(NamedTuple):
    """What a delivered message costs the business: its category (None: a free-form service message) and
    whether this one is charged (utility is free inside the window, service always; Meta's pricing page)."""

    category: Category | None
    billable: bool


def event_id(field: str, *facts: str | int) -> str:
    """The id of the event reporting ``facts`` under webhook ``field``: the same facts, the same id."""
    return hashlib.sha256(canonical_json([field, *facts])).hexdigest()


def _event(
    waba_id: str, field: str, value: dict[str, Any], facts: tuple[str | int, ...], time_s: int | None = None
) -> Event:
    entry: dict[str, Any] = {"id": waba_id}
    if time_s is not None:
        entry["time"] = time_s
    entry["changes"] = [{"field": field, "value": value}]
    return Event(event_id(field, *facts), {"object": OBJECT, "entry": [entry]})


def _messages_value(phone_number_id: str, display_phone_number: str, **rest: Any) -> dict[str, Any]:
    metadata = {"display_phone_number": display_phone_number, "phone_number_id": phone_number_id}
    return {"messaging_product": MESSAGING_PRODUCT, "metadata": metadata, **rest}


def inbound_message(
    waba_id: str,
    phone_number_id: str,
    display_phone_number: str,
    contact_name: str,
    wa_id: str,
    message_id: str,
    timestamp_s: int,
    content: str | ReplyChoice | dict[str, Any],
    context_id: str | None = None,
    contact: Contact | None = None,
) -> Event:
    """A user's message: a text (``content`` is its body), a choice in an interactive message, or any other
    type already in the Cloud API's shape (``{"type": "location", "location": {...}}``). ``context_id`` is the
    business message replied to (always set for a choice). ``contact`` says who sent it as the business may see
    them (:mod:`.identity`); without it, ``wa_id`` and ``contact_name`` are used as they are."""
    if contact is None:
        contact = Contact(None, wa_id, contact_name)
    message: dict[str, Any] = {**contact.message_from(), "id": message_id, "timestamp": str(timestamp_s)}
    if context_id is not None:
        message["context"] = {"from": display_phone_number, "id": context_id}
    if isinstance(content, str):
        message |= {"type": "text", "text": {"body": content}}
    elif isinstance(content, dict):
        message |= content
    else:
        choice = content.model_dump(exclude={"type"}, exclude_none=True)
        message |= {"type": "interactive", "interactive": {"type": content.type, content.type: choice}}
    value = _messages_value(
        phone_number_id,
        display_phone_number,
        contacts=[contact.sender()],
        messages=[message],
    )
    return _event(waba_id, "messages", value, (message_id,))


def user_system_message(
    waba_id: str, phone_number_id: str, display_phone_number: str, message: dict[str, Any]
) -> Event:
    """A message about a user that is not theirs (an id change, :func:`.identity.id_changed`): Meta sends these
    without a ``contacts`` array."""
    value = _messages_value(phone_number_id, display_phone_number, messages=[message])
    return _event(waba_id, "messages", value, (message["id"],))


def user_contact_message(
    waba_id: str, phone_number_id: str, display_phone_number: str, contact: Contact, message: dict[str, Any]
) -> Event:
    """A message the user sent by their own choice outside the chat (their number, shared when asked)."""
    value = _messages_value(phone_number_id, display_phone_number, contacts=[contact.sender()], messages=[message])
    return _event(waba_id, "messages", value, (message["id"],))


def status(
    waba_id: str,
    phone_number_id: str,
    display_phone_number: str,
    message_id: str,
    status: Status,
    timestamp_s: int,
    recipient_id: str,
    errors: list[CloudApiError] | None = None,
    biz_opaque_callback_data: str | None = None,
    pricing: Pricing | None = None,
    contact: Contact | None = None,
) -> Event:
    """A status of a message the business sent. ``errors`` come with FAILED and only with it; ACCEPTED is the
    send's synchronous answer, never a webhook. Pricing follows Meta's per-message model (``PMP``). ``contact``
    is the recipient as the business may see them (:mod:`.identity`): it sets ``recipient_id`` (the number, left
    out when the business may not see it), ``recipient_user_id`` and ``contacts``; without it, ``recipient_id``
    is used as is. Unlike Meta, a failed status carries ``contacts`` too: pywa 4.5.0 builds every status's user
    from ``contacts[0]`` and drops a status without it, and strict parsers of Meta's shape accept the array."""
    if status is Status.ACCEPTED:
        raise ValueError("accepted is answered synchronously, not by webhook")
    if (status is Status.FAILED) != bool(errors):
        raise ValueError("a failed status, and only a failed one, carries errors")
    entry: dict[str, Any] = {
        "id": message_id,
        "status": status.value,
        "timestamp": str(timestamp_s),
    }
    number = contact.wa_id if contact is not None else recipient_id
    if number is not None:
        entry["recipient_id"] = number
    if contact is not None and contact.user_id is not None and contact.id_in_status:
        entry["recipient_user_id"] = contact.user_id
    if biz_opaque_callback_data is not None:
        entry["biz_opaque_callback_data"] = biz_opaque_callback_data
    if pricing is not None:
        entry["pricing"] = {
            "billable": pricing.billable,
            "pricing_model": "PMP",
            "type": "regular" if pricing.billable else "free_customer_service",
            "category": pricing.category.value if pricing.category is not None else "service",
        }
    if errors:
        entry["errors"] = [error.to_webhook_error() for error in errors]
    extra: dict[str, Any] = {}
    if contact is not None and contact.user_id is not None:  # Meta's contacts[] always has the user's id
        extra["contacts"] = [contact.sender()]
    value = _messages_value(phone_number_id, display_phone_number, **extra, statuses=[entry])
    return _event(waba_id, "messages", value, (message_id, status.value))


def template_status_update(
    waba_id: str,
    template_id: str,
    name: str,
    language: str,
    event: ReviewStatus,
    reason: str | None,
    time_s: int,
) -> Event:
    """A template's review status changed. ``time_s`` is when the registry recorded the change (it tells a
    second pause from the first); Meta's ``reason`` is ``"NONE"`` when there is none."""
    value = {
        "event": event.value,
        "message_template_id": template_id,
        "message_template_name": name,
        "message_template_language": language,
        "reason": reason if reason is not None else "NONE",
    }
    facts = (template_id, language, event.value, time_s)
    return _event(waba_id, "message_template_status_update", value, facts, time_s)


def quality_update(
    waba_id: str, display_phone_number: str, event: QualityEvent, current_limit: Tier, time_s: int
) -> Event:
    """The number's quality or the portfolio's messaging limit changed. The limit is sent under both of Meta's
    names: ``current_limit`` (per number, being retired) and ``max_daily_conversations_per_business`` (per
    portfolio, which is how Cove counts it)."""
    limit = TIER_NAMES[current_limit]
    value = {
        "display_phone_number": display_phone_number,
        "event": event.value,
        "current_limit": limit,
        "max_daily_conversations_per_business": limit,
    }
    facts = (display_phone_number, event.value, limit, time_s)
    return _event(waba_id, "phone_number_quality_update", value, facts, time_s)


def user_preferences(
    waba_id: str,
    phone_number_id: str,
    display_phone_number: str,
    wa_id: str,
    value: Literal["stop", "resume"],
    timestamp_s: int,
    contact: Contact | None = None,
) -> Event:
    """The user stopped or resumed marketing messages from this business (Cove's "Stop promotions"). ``contact``
    is the user as the business may see them (:mod:`.identity`); without it, ``wa_id`` is used as is."""
    ids = contact.ids() if contact is not None else {"wa_id": wa_id}
    preference = {
        **ids,
        "detail": PREFERENCE_DETAILS[value],
        "category": "marketing_messages",
        "value": value,
        "timestamp": timestamp_s,
    }
    listed = contact.sender() if contact is not None else ids  # Meta's contacts[] has the user's profile.name
    body = _messages_value(phone_number_id, display_phone_number, contacts=[listed], user_preferences=[preference])
    return _event(waba_id, "user_preferences", body, (wa_id, value, timestamp_s))
