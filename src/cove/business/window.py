"""The 24-hour customer service window: the only time a business may write free-form to a user.

A user's message or call opens the window and each new one resets it; nothing the business does (its own messages, its
templates, their delivery or reading) opens or extends it, so a business cannot keep a window alive by writing into it
([M] https://developers.facebook.com/documentation/business-messaging/whatsapp/messages/send-messages and [3P]
https://docs.ycloud.com/en/documentation/whatsapp-business-platform/messaging/service-messages.md). Inside the window
any message may be sent; outside it only an approved template (131047 otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
WINDOW_MS = DAY_MS  # send-messages: 24 h from the user's last message or call


class ChatEvent(StrEnum):
    USER_MESSAGE = "user_message"
    USER_CALL = "user_call"
    BUSINESS_MESSAGE = "business_message"
    TEMPLATE_DELIVERED = "template_delivered"


OPENS_WINDOW = frozenset({ChatEvent.USER_MESSAGE, ChatEvent.USER_CALL})


@dataclass(frozen=True)
class WindowState:
    open: bool
    expires_at_ms: int | None  # when it closes (or closed); None if the user never wrote


def record(last_user_message_ms: int | None, event: ChatEvent, at_ms: int) -> int | None:
    """The new "user last wrote" time after ``event``; only the user's own message or call moves it.

    Events may arrive out of order (webhooks and relays do not guarantee order), so an older user message
    never moves the time back.
    """
    if event not in OPENS_WINDOW:
        return last_user_message_ms
    return at_ms if last_user_message_ms is None else max(last_user_message_ms, at_ms)


def window_state(last_user_message_ms: int | None, now_ms: int) -> WindowState:
    if last_user_message_ms is None:
        return WindowState(False, None)
    expires = last_user_message_ms + WINDOW_MS
    return WindowState(now_ms < expires, expires)


def free_form_allowed(window: WindowState) -> bool:
    """Free-form (any non-template message) only inside the window; templates are allowed either way."""
    return window.open
