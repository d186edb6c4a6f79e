"""A user's tap on a template's quick-reply button: the plaintext the user's client sends back to the business.

``{"v":1,"type":"template_button","id","ts","context_id","button":{"payload","text"}}``, ``ts`` in milliseconds,
``context_id`` the template message tapped. The business's gateway turns it into Meta's ``button`` message
webhook (``{"type":"button","button":{"payload","text"},"context":{...}}``, [M]
https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/messages/button).

The client composes it only from a rendered, verified template message (:func:`compose_button_reply`): the text is
the approved button's, the payload the one the business sent with that message, so a tap names only a button the
business offered.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from cove.protocol.templates.components import BUTTON_TEXT_MAX, ButtonType, _Strict
from cove.protocol.templates.rendering import QUICK_REPLY_PAYLOAD_MAX, RenderedMessage
from cove.protocol.templates.signing import canonical_json

BUTTON_REPLY_TYPE = "template_button"


class ButtonTap(_Strict):
    payload: str = Field(min_length=1, max_length=QUICK_REPLY_PAYLOAD_MAX)
    text: str = Field(min_length=1, max_length=BUTTON_TEXT_MAX)


class TemplateButtonReply(_Strict):
    v: Literal[1]
    type: Literal["template_button"]
    id: str = Field(min_length=1, max_length=128)
    ts: int = Field(ge=0)
    context_id: str = Field(min_length=1, max_length=256)
    button: ButtonTap


def quick_replies(rendered: RenderedMessage) -> list[str]:
    """The texts of the message's quick-reply buttons, in order: what the user can tap."""
    return [b.text for b in rendered.buttons if b.type is ButtonType.QUICK_REPLY]


def compose_button_reply(rendered: RenderedMessage, context_id: str, text: str, message_id: str, ts_ms: int) -> bytes:
    """The plaintext of tapping the quick reply ``text`` of ``rendered`` (the message ``context_id``); raises
    ``ValueError`` when the message has no such quick reply."""
    for button in rendered.buttons:
        if button.type is ButtonType.QUICK_REPLY and button.text == text:
            tap = ButtonTap(payload=button.payload or button.text, text=button.text)
            reply = TemplateButtonReply(v=1, type="template_button", id=message_id, ts=ts_ms, context_id=context_id,
                                        button=tap)  # fmt: skip
            return canonical_json(reply.model_dump(mode="json"))
    raise ValueError(f"{text!r} is not one of the message's quick replies: {quick_replies(rendered)}")


def parse_button_reply(plaintext: bytes) -> TemplateButtonReply:
    """The business's side; raises pydantic's ``ValidationError`` (a ``ValueError``)."""
    return TemplateButtonReply.model_validate_json(plaintext)
