"""A business's bot written with pywa 4.5.0 (the most used Python Cloud API client), as a separate process for the
contract tests: the gateway posts its webhooks here, and the bot answers through the gateway.

    python tests/contracts/pywa_bot.py --port P --secret S --verify-token T --out FILE \
        --gateway URL --token TOKEN --phone-id ID

It is configured as a business configures pywa for Meta, with two changes only: the gateway's token, and an
``httpx`` transport that sends pywa's ``https://graph.facebook.com`` requests to the gateway instead (pywa
sets its base URL itself, so the transport is where the base URL changes). Signatures are checked
(``app_secret``) and updates are filtered by ``phone_id`` and ``waba_id``, as pywa does by default.

Every handler that fires appends one JSON line to ``--out`` (``{"handler": ..., ...}``); the raw update handler
appends every body pywa accepted, so a test sees both what arrived and what pywa made of it. The bot's
behaviour, so that a test can drive a conversation:

- a text ``menu`` is answered with two reply buttons (``slot-4``, ``slot-6``), a text ``list`` with a list (rows
  ``express`` and ``ground``), any other text with ``echo: <text>``; other message types are only recorded;
- a button tap is answered with ``booked <id>``, a list choice with ``shipping <id>``.
"""

from __future__ import annotations

import argparse
import json
import threading
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI
from pywa import WhatsApp, types

META = "graph.facebook.com"


class ToGateway(httpx.BaseTransport):
    """Sends the requests pywa makes to Meta's Graph API host to the gateway instead, path and query unchanged."""

    def __init__(self, gateway: str) -> None:
        self._gateway = httpx.URL(gateway)
        self._inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == META:
            request.url = request.url.copy_with(
                scheme=self._gateway.scheme, host=self._gateway.host, port=self._gateway.port
            )
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()


class Journal:
    """One JSON line per fired handler; handlers run in worker threads, so writes are serialised."""

    def __init__(self, path: Path) -> None:
        self._file = path.open("a")
        self._lock = threading.Lock()

    def write(self, handler: str, **facts: Any) -> None:
        with self._lock:
            self._file.write(json.dumps({"handler": handler, **facts}, default=str) + "\n")
            self._file.flush()


def _user(user: Any) -> dict[str, Any]:
    return {"bsuid": user.bsuid, "wa_id": user.wa_id, "name": user.name}


def make_bot(args: argparse.Namespace) -> FastAPI:
    app = FastAPI()
    journal = Journal(args.out)
    session = httpx.Client(transport=ToGateway(args.gateway), timeout=30)
    wa = WhatsApp(
        phone_id=args.phone_id,
        waba_id=args.phone_id,  # the gateway's waba_id is the business's account id too
        token=args.token,
        api_version="21.0",
        session=session,
        server=app,
        verify_token=args.verify_token,
        app_secret=args.secret,
    )

    @wa.on_raw_update
    def raw(_: WhatsApp, update: types.RawUpdate) -> None:
        journal.write("raw", body=dict(update))

    @wa.on_message
    def message(_: WhatsApp, msg: types.Message) -> None:
        journal.write(
            "message",
            id=msg.id,
            type=str(msg.type),
            text=msg.text,
            user=_user(msg.from_user),
            reaction=msg.reaction and {"message_id": msg.reaction.message_id, "emoji": msg.reaction.emoji},
            location=msg.location and {"latitude": msg.location.latitude, "name": msg.location.name},
            contacts=[c.name.formatted_name for c in msg.contacts or ()],
        )
        if msg.text is None:
            return
        if msg.text == "menu":
            buttons: Any = [types.Button("4 pm", "slot-4"), types.Button("6 pm", "slot-6")]
        elif msg.text == "list":
            rows = [types.SectionRow("Express", "express", "Next day"), types.SectionRow("Ground", "ground")]
            buttons = types.SectionList("Options", [types.Section("Shipping", rows)])
        else:
            buttons = None
        sent = msg.reply_text("Pick one" if buttons else f"echo: {msg.text}", buttons=buttons)
        journal.write("sent", id=sent.id, to=sent.chat.id, input=sent.input)

    @wa.on_callback_button
    def button(_: WhatsApp, tap: types.CallbackButton) -> None:
        journal.write("button", id=tap.id, data=tap.data, title=tap.title, user=_user(tap.from_user))
        sent = tap.reply_text(f"booked {tap.data}")
        journal.write("sent", id=sent.id, to=sent.chat.id, input=sent.input)

    @wa.on_callback_selection
    def selection(_: WhatsApp, choice: types.CallbackSelection) -> None:
        journal.write("selection", id=choice.id, data=choice.data, title=choice.title, user=_user(choice.from_user))
        sent = choice.reply_text(f"shipping {choice.data}")
        journal.write("sent", id=sent.id, to=sent.chat.id, input=sent.input)

    @wa.on_message_status
    def status(_: WhatsApp, update: types.MessageStatus) -> None:
        journal.write("status", id=update.id, status=str(update.status), user=_user(update.from_user))

    @wa.on_user_marketing_preferences
    def preference(_: WhatsApp, update: types.UserMarketingPreferences) -> None:
        journal.write("preference", value=str(update.value), user=_user(update.from_user))

    @wa.on_template_status_update
    def template(_: WhatsApp, update: types.TemplateStatusUpdate) -> None:
        journal.write("template", template_id=update.template_id, status=str(update.new_status))

    @wa.on_phone_number_change
    def number_change(_: WhatsApp, update: Any) -> None:
        journal.write("number_change", raw=dict(update.raw))

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--verify-token", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--gateway", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--phone-id", required=True)
    args = parser.parse_args()
    uvicorn.run(make_bot(args), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
