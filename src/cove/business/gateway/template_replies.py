"""A user's tap on a quick-reply button of a template the business sent, as Meta's ``button`` message webhook.

The user's client sends ``template_button`` (:mod:`cove.protocol.templates.quick_reply`); the webhook's message is
``{"type": "button", "button": {"payload", "text"}, "context": {"from", "id"}}`` ([M]
https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/messages/button/).
A tap is passed on only when it answers a template message this gateway sent that same user; anything else (a
tap on another user's message, on a text, on an unknown id) is dropped and logged, never delivered.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from cove.business.gateway.store import GatewayStore
from cove.protocol.templates.quick_reply import parse_button_reply

log = logging.getLogger("cove.gateway")


def button_message(store: GatewayStore, sender: str, payload: dict[str, Any]) -> tuple[dict[str, Any], str] | None:
    """The Cloud API message part and the context id for a user's tap, or None when it is not one to pass on."""
    try:
        reply = parse_button_reply(json.dumps(payload).encode())
    except ValueError:
        log.warning("dropped a malformed quick-reply tap from %s", sender)
        return None
    tapped = store.message(reply.context_id)
    if tapped is None or tapped.direction != "out" or tapped.account_id != sender or tapped.category is None:
        log.warning("dropped a quick-reply tap from %s on a message that is not a template sent to them", sender)
        return None
    button = {"payload": reply.button.payload, "text": reply.button.text}
    return {"type": "button", "button": button}, reply.context_id
