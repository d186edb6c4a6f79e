"""What the chat pages show, as plain values: the list of conversations, a conversation's bubbles with their ticks,
and a business message's text and choices. No I/O here: the routes read the stores and the relay, these functions
decide what a person sees."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cove.client.paths import ACCOUNT_ID
from cove.protocol import groups as proto
from cove.protocol.business_messages import BusinessInteractive, parse_business_plaintext
from cove.protocol.templates.rendering import RenderedMessage

PERSON, GROUP, BUSINESS = "person", "group", "business"
ACCOUNT = re.compile(ACCOUNT_ID)
# The states a message of mine goes through, each shown with a text a screen reader says (the ticks alone are not
# enough: ✓ and ✓✓ differ only by shape, delivered and read only by colour).
TICKS = {"sent": ("✓", "sent"), "delivered": ("✓✓", "delivered"), "read": ("✓✓", "read")}


class NotAChat(ValueError):
    """A chat key in a URL that is neither an account id nor a group id."""


def chat_kind(key: str) -> str:
    """``person`` or ``group`` for a key taken from a URL; ``NotAChat`` for anything else (checked before the key
    reaches a store or a relay path)."""
    if ACCOUNT.fullmatch(key):
        return PERSON
    if proto.GROUP_ID.fullmatch(key):
        return GROUP
    raise NotAChat(f"{key!r} names no conversation")


def clock(ms: int, now_ms: int | None = None) -> str:
    """A message's time: the hour today, the date before."""
    when = datetime.fromtimestamp(ms / 1000)
    today = datetime.fromtimestamp(now_ms / 1000).date() if now_ms is not None else datetime.now().date()
    return when.strftime("%H:%M") if when.date() == today else when.strftime("%Y-%m-%d %H:%M")


@dataclass(frozen=True)
class ChatRow:
    key: str
    href: str
    title: str
    kind: str
    last: str
    last_at: int
    unread: int
    verified: bool = False


def chat_rows(
    people: Iterable[tuple[str, str, str, int, bool, int]],
    groups: Iterable[tuple[str, str, str, int, bool, int]],
    businesses: dict[str, tuple[str, bool]],
) -> list[ChatRow]:
    """Every conversation, the newest first. ``people``/``groups``: ``(key, title, last_text, last_at, last_out,
    unread)``; a person in ``businesses`` (``{account: (display name, verified)}``) is shown as that business."""
    rows = []
    for key, title, text, at, out, unread in people:
        business = businesses.get(key)
        kind = BUSINESS if business else PERSON
        rows.append(
            ChatRow(key, f"/chats/{key}", business[0] if business else title, kind, _last(text, out), at, unread,
                    bool(business and business[1]))
        )  # fmt: skip
    for key, title, text, at, out, unread in groups:
        rows.append(ChatRow(key, f"/chats/{key}", title, GROUP, _last(text, out), at, unread))
    return sorted(rows, key=lambda r: (-r.last_at, r.title))


def _last(text: str, out: bool) -> str:
    return f"You: {text}" if out and text else text


@dataclass(frozen=True)
class Choice:
    """Something to tap on a business message: a quick reply (``tap``, by its text) or a reply button or list row
    (``answer``, by its id)."""

    kind: str  # "tap" or "answer"
    value: str
    title: str


@dataclass(frozen=True)
class Bubble:
    mine: bool
    who: str
    text: str
    sent_at: int
    client_message_id: str
    tick: str = ""
    tick_label: str = ""
    file: str | None = None  # the download link of a received file
    lines: tuple[str, ...] = ()  # a business message's header, body and footer
    choices: tuple[Choice, ...] = ()
    business: bool = False

    @property
    def when(self) -> str:
        return clock(self.sent_at)


def tick(status: str) -> tuple[str, str]:
    """The tick of a message of mine and what it says; an unknown state shows as sent."""
    return TICKS.get(status, TICKS["sent"])


def group_status(states: Iterable[str], members: int) -> str:
    """A group message is read (delivered) once every other member read (received) it, as WhatsApp shows it."""
    found = list(states)
    if members and len(found) >= members and all(s == "read" for s in found):
        return "read"
    if members and len(found) >= members and all(s in ("delivered", "read") for s in found):
        return "delivered"
    return "sent"


def template_shown(rendered: RenderedMessage) -> dict[str, Any]:
    """A template message as the server signed it: its lines, and its quick replies as choices (the other buttons,
    links and numbers, are shown as text: the page opens no link for the business)."""
    lines = [p for p in (rendered.header, rendered.body, rendered.footer) if p]
    choices = []
    for button in rendered.buttons:
        if button.type == "QUICK_REPLY":
            choices.append({"kind": "tap", "value": button.text, "title": button.text})
        else:
            lines.append(f"[{button.text}] {button.url or button.phone_number or button.copy_code or ''}".rstrip())
    return {"lines": lines, "choices": choices}


def interactive_shown(payload: dict[str, Any]) -> dict[str, Any] | None:
    """A business's interactive message with reply buttons or a list: its text and the choices, checked against
    the shared format first; ``None`` when it offers nothing to tap (or does not pass the checks)."""
    try:
        message = parse_business_plaintext(json.dumps(payload).encode())
    except ValueError:
        return None
    if not isinstance(message, BusinessInteractive):
        return None
    interactive = message.interactive.model_dump(mode="json", exclude_none=True)
    action = interactive.get("action", {})
    choices = [{"kind": "answer", "value": b["reply"]["id"], "title": b["reply"]["title"]}
               for b in action.get("buttons", [])]  # fmt: skip
    choices += [
        {"kind": "answer", "value": row["id"], "title": row["title"]}
        for section in action.get("sections", [])
        for row in section["rows"]
    ]
    if not choices:
        return None
    parts = [interactive.get("header", {}).get("text"), interactive.get("body", {}).get("text"),
             interactive.get("footer", {}).get("text")]  # fmt: skip
    return {"lines": [p for p in parts if p], "choices": choices}


def choices_of(shown: dict[str, Any], answered: bool) -> tuple[Choice, ...]:
    """The choices still open: a message answered once offers none."""
    if answered:
        return ()
    return tuple(Choice(c["kind"], c["value"], c["title"]) for c in shown.get("choices", []))


@dataclass(frozen=True)
class Said:
    """One message of the history as the stores keep it (1:1 or group), before it becomes a bubble."""

    mine: bool
    sender: str
    client_message_id: str
    text: str
    sent_at: int
    status: str  # mine: sent, delivered or read


@dataclass(frozen=True)
class Kept:
    """A business message with something to tap, as the app kept it (``shown``: ``{"lines", "choices"}``)."""

    client_message_id: str
    sent_at: int
    shown: dict[str, Any]
    answered: bool


def bubbles(
    history: Iterable[Said],
    name: dict[str, str],
    files: dict[str, str],
    kept: Iterable[Kept] = (),
    business: str | None = None,
) -> list[Bubble]:
    """A conversation, oldest first: each message with its sender's ``name``, its tick if it is mine, its download
    link if a file of it was saved (``files``: message id to link), and a business message's lines and choices
    (one ``kept`` that is in the history adds its choices to it; a template, never in the history, is a bubble of
    its own). ``business``: the display name of the business the chat is with."""
    extra = {k.client_message_id: k for k in kept}
    shown: list[Bubble] = []
    for m in history:
        symbol, label = tick(m.status) if m.mine else ("", "")
        k = extra.pop(m.client_message_id, None)
        shown.append(
            Bubble(
                m.mine, "You" if m.mine else name.get(m.sender, m.sender), m.text, m.sent_at, m.client_message_id,
                symbol, label, files.get(m.client_message_id), tuple(k.shown["lines"]) if k else (),
                choices_of(k.shown, k.answered) if k else (), business is not None and not m.mine,
            )
        )  # fmt: skip
    for k in extra.values():
        shown.append(
            Bubble(False, business or "", "", k.sent_at, k.client_message_id, lines=tuple(k.shown["lines"]),
                   choices=choices_of(k.shown, k.answered), business=True)
        )  # fmt: skip
    return sorted(shown, key=lambda b: b.sent_at)
