"""Send requests (``POST /{version}/{phone_number_id}/messages``) built as Meta's reference builds them.

Each example is the body of Meta's own example for that message type, with Meta's field names, nesting and value
types (including its habits: coordinates as strings, a button ``index`` as a string), addressed with
:func:`addressed`. Sources, one page per type, under
https://developers.facebook.com/documentation/business-messaging/whatsapp/messages/ :
``text-messages``, ``image-messages``, ``video-messages``, ``audio-messages``, ``document-messages``,
``sticker-messages``, ``reaction-messages``, ``location-messages``, ``contacts-messages``,
``interactive-reply-buttons-messages``, ``interactive-list-messages``, ``interactive-cta-url-messages``,
``location-request-messages``, ``mark-message-as-read``; templates:
https://developers.facebook.com/documentation/business-messaging/whatsapp/templates/send-templates (quick-reply
button ``payload`` and URL button ``text`` parameters); the ``recipient`` field (a business-scoped user id instead
of ``to``): https://developers.facebook.com/documentation/business-messaging/whatsapp/business-scoped-user-ids .

Media by id needs an id the gateway issued, so those examples take it as an argument (:func:`media_by_id`).
"""

from __future__ import annotations

from typing import Any

LINK = "https://media.example.com/cove/contract"


def addressed(to: str, kind: str, payload: Any, **rest: Any) -> dict[str, Any]:
    """The common part of every send: ``to`` is a phone number (``+16505551234`` or ``16505551234``)."""
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": kind,
        kind: payload,
    } | rest


def to_recipient(body: dict[str, Any], bsuid: str) -> dict[str, Any]:
    """The same send addressed with Meta's ``recipient`` field (a business-scoped user id) and no ``to``."""
    return {k: v for k, v in body.items() if k != "to"} | {"recipient": bsuid}


# free-form (inside the customer service window) ----------------------------------------------------------------

TEXT = {"preview_url": True, "body": "As requested, here's the link to our latest product: https://www.meta.com/quest/"}

REACTION = {"message_id": "wamid.HBgLMTY0NjcwNDM1OTUVAgASGBQzQTdCNTg5RjY1MEMyRjlGMjRGNgA=", "emoji": "\U0001f600"}

LOCATION = {  # Meta's example sends the coordinates as strings
    "latitude": "37.44216251868683",
    "longitude": "-122.16153582049394",
    "name": "Philz Coffee",
    "address": "101 Forest Ave, Palo Alto, CA 94301",
}

CONTACTS = [
    {
        "addresses": [
            {
                "street": "1 Lucky Shrimp Way",
                "city": "Tampa",
                "state": "FL",
                "zip": "33601",
                "country": "United States",
                "country_code": "US",
                "type": "Office",
            }
        ],
        "birthday": "1999-01-23",
        "emails": [{"email": "bjohnson@luckyshrimp.example", "type": "Work"}],
        "name": {"formatted_name": "Barbara J. Johnson", "first_name": "Barbara", "last_name": "Johnson"},
        "org": {"company": "Lucky Shrimp", "department": "Legal", "title": "Lead Counsel"},
        "phones": [
            {"phone": "+1 (940) 555-1234", "type": "Home"},
            {"phone": "+1 (650) 555-1234", "type": "Work", "wa_id": "16505551234"},
        ],
        "urls": [{"url": "https://www.luckyshrimp.example", "type": "Company"}],
    }
]

REPLY_BUTTONS = {
    "type": "button",
    "header": {"type": "text", "text": "Pickup time"},
    "body": {"text": "Hi Pablo! Your gardening workshop is scheduled for 9am tomorrow. Use the buttons if you need to"},
    "footer": {"text": "Lucky Shrimp: Your gateway to succulents!"},
    "action": {
        "buttons": [
            {"type": "reply", "reply": {"id": "change-button", "title": "Change"}},
            {"type": "reply", "reply": {"id": "cancel-button", "title": "Cancel"}},
        ]
    },
}

LIST = {
    "type": "list",
    "header": {"type": "text", "text": "Choose Shipping Option"},
    "body": {"text": "Which shipping option do you prefer?"},
    "footer": {"text": "Lucky Shrimp: Your gateway to succulents"},
    "action": {
        "button": "Shipping Options",
        "sections": [
            {
                "title": "I want it ASAP!",
                "rows": [
                    {"id": "priority_express", "title": "Priority Mail Express", "description": "Next Day to 2 Days"},
                    {"id": "priority_mail", "title": "Priority Mail", "description": "1–3 Days"},
                ],
            },
            {
                "title": "I can wait a bit",
                "rows": [{"id": "usps_ground_advantage", "title": "USPS Ground Advantage", "description": "2–5 Days"}],
            },
        ],
    },
}

CTA_URL = {
    "type": "cta_url",
    "header": {"type": "text", "text": "New workshop dates"},
    "body": {"text": "Tap the button below to see available dates."},
    "footer": {"text": "Dates subject to change."},
    "action": {
        "name": "cta_url",
        "parameters": {
            "display_text": "See Dates",
            "url": "https://www.luckyshrimp.example?clickID=kqDGWd24Q5TRwoEQTICY7W1JKoXvaZOXWAS7h1P76s0R7Paec4",
        },
    },
}

LOCATION_REQUEST = {
    "type": "location_request_message",
    "body": {
        "text": "Let's start with your pickup. You can either manually *enter an address* or *share your current"
        " location*."
    },
    "action": {"name": "send_location"},
}


def free_form(to: str) -> dict[str, dict[str, Any]]:
    """Every free-form send the issue lists, by name, that needs no media id."""
    return {
        "text": addressed(to, "text", TEXT),
        "reply": addressed(to, "text", {"body": "Yes, see you at 5."}, context={"message_id": REACTION["message_id"]}),
        "interactive_button": addressed(to, "interactive", REPLY_BUTTONS),
        "interactive_list": addressed(to, "interactive", LIST),
        "interactive_cta_url": addressed(to, "interactive", CTA_URL),
        "interactive_location_request": addressed(to, "interactive", LOCATION_REQUEST),
        "reaction": addressed(to, "reaction", REACTION),
        "location": addressed(to, "location", LOCATION),
        "contacts": addressed(to, "contacts", CONTACTS),
    }


# media ------------------------------------------------------------------------------------------------------------

MEDIA_TYPES = ("image", "video", "audio", "document", "sticker")
_CAPTIONS = {"image": {"caption": "The best succulent ever?"}, "video": {"caption": "A succulent eclipse!"}}
_EXTRA = _CAPTIONS | {"document": {"caption": "Lucky Shrimp Invoice", "filename": "lucky-shrimp-invoice.pdf"}}
_FILES = {
    "image": "photo.jpg",
    "video": "clip.mp4",
    "audio": "note.ogg",
    "document": "invoice.pdf",
    "sticker": "s.webp",
}


def media_by_link(to: str, kind: str, link: str | None = None) -> dict[str, Any]:
    return addressed(to, kind, {"link": link or f"{LINK}/{_FILES[kind]}"} | _EXTRA.get(kind, {}))


def media_by_id(to: str, kind: str, media_id: str) -> dict[str, Any]:
    return addressed(to, kind, {"id": media_id} | _EXTRA.get(kind, {}))


# templates --------------------------------------------------------------------------------------------------------


def template(
    to: str,
    name: str,
    body: list[str],
    *,
    quick_reply: str | None = None,
    url_suffix: str | None = None,
    language: str = "en",
) -> dict[str, Any]:
    """A template send with positional body values and, when given, a quick-reply button payload (button 0) and a
    URL button's suffix (button 1), with ``index`` a string as in Meta's examples."""
    components: list[dict[str, Any]] = [{"type": "body", "parameters": [{"type": "text", "text": v} for v in body]}]
    if quick_reply is not None:
        components.append(
            {
                "type": "button",
                "sub_type": "quick_reply",
                "index": "0",
                "parameters": [{"type": "payload", "payload": quick_reply}],
            }
        )
    if url_suffix is not None:
        components.append(
            {"type": "button", "sub_type": "url", "index": "1", "parameters": [{"type": "text", "text": url_suffix}]}
        )
    return addressed(to, "template", {"name": name, "language": {"code": language}, "components": components})


# mark as read -----------------------------------------------------------------------------------------------------


def mark_read(message_id: str, typing: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {"messaging_product": "whatsapp", "status": "read", "message_id": message_id}
    if typing:
        body["typing_indicator"] = {"type": "text"}
    return body
