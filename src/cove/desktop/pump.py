"""The event pump: for the app's whole life, one connection to the relay (``CoveClient.events``) whose events are
stored as the SDK stores them, with what the app adds (received files saved, business messages kept with their
buttons), and announced to the open pages through the live hub.

It starts once the profile has an account (at once, or when the welcome page registers it), reconnects after an
error with a growing pause (1 s doubling to 60 s, back to 1 s once a connection got the whole queue), and stops
when the app stops. Read receipts are not sent here: a message is read when its conversation is open on a page.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from websockets.exceptions import WebSocketException

from cove.client import paths
from cove.client.attachments import AttachmentError, carries_file
from cove.client.errors import RelayError
from cove.client.events import (
    AttachmentReceived,
    Delivered,
    DevicesChanged,
    Event,
    GroupChanged,
    GroupDelivered,
    GroupInfoChanged,
    GroupMessageReceived,
    GroupRead,
    MessageReceived,
    PayloadReceived,
    QueueEmpty,
    Read,
    ReadElsewhere,
    RequestReceived,
    SentElsewhere,
    TemplateReceived,
)
from cove.client.group_client import Groups
from cove.client.request import Request
from cove.client.transport import CoveClient
from cove.desktop.appstore import AppStore
from cove.desktop.conversations import interactive_shown, template_shown
from cove.desktop.state import Desktop
from cove.protocol.attachments import InvalidPointer
from cove.protocol.templates import TemplateError

log = logging.getLogger("cove.desktop")
FIRST_PAUSE, LAST_PAUSE = 1.0, 60.0
LOST = (RelayError, httpx.TransportError, OSError, WebSocketException)
WRITTEN = MessageReceived | RequestReceived | TemplateReceived | PayloadReceived | AttachmentReceived


def chat_of(event: Event) -> str | None:
    """The conversation an event changes (an account id or a group id), or ``None``."""
    if isinstance(event, AttachmentReceived) and event.group is not None:
        return event.group
    if isinstance(event, WRITTEN):
        return event.sender
    if isinstance(event, Delivered | Read | SentElsewhere | ReadElsewhere):
        return event.peer
    if isinstance(event, GroupMessageReceived | GroupChanged | GroupInfoChanged | GroupDelivered | GroupRead):
        return event.group_id
    return None


def next_pause(pause: float) -> float:
    return min(pause * 2, LAST_PAUSE)


class Pump:
    def __init__(self, desktop: Desktop) -> None:
        self.desktop = desktop

    async def run(self) -> None:
        pause = FIRST_PAUSE
        while True:
            await self.desktop.ready.wait()  # again after this computer unlinked itself and linked anew
            client = self.desktop.client
            if client is None:
                self.desktop.ready.clear()
                continue
            try:
                async for event in client.events():
                    if isinstance(event, QueueEmpty):
                        pause = FIRST_PAUSE
                        self.desktop.connection = "connected"
                    await self.handle(client, event)
            except RelayError as exc:
                if exc.status == 401:  # logged out or unlinked: nothing to reconnect to until a new account
                    self.desktop.connection = "logged out"
                    self.desktop.ready.clear()
                    self.desktop.live.publish("chats")
                    continue
                self._lost(exc)
            except LOST as exc:
                self._lost(exc)
            except Exception:  # a bug must not end live delivery for the app's whole life: logged, then again
                log.exception("the event pump failed; reconnecting")
                self.desktop.connection = "reconnecting"
            await asyncio.sleep(pause)
            pause = next_pause(pause)

    def _lost(self, exc: Exception) -> None:
        log.warning("lost the relay's event stream (%s); reconnecting", exc)
        self.desktop.connection = "reconnecting"

    async def handle(self, client: CoveClient, event: Event) -> None:
        core = client.core
        app = AppStore(core.store)
        if isinstance(event, WRITTEN):
            with contextlib.suppress(*LOST):  # best effort: a sender shows by account id until confirmed
                await client.name_senders()
            business = getattr(event, "business", None)
            if business is not None and app.business(event.sender) is None:
                await self._learn_business(client, app, event.sender)
        if carries_file(event):
            if core.contacts.waiting(event) and isinstance(event, AttachmentReceived):
                app.hold_file(event)  # a stranger's file is fetched only once the person accepts them
            else:
                await save_file(client, self.desktop.files, event)
        if isinstance(event, TemplateReceived):
            try:
                app.keep_answerable(event, template_shown(await client.render_template(event)))
            except (TemplateError, RelayError) as exc:
                shown = {"lines": [f"a business message that did not verify was not shown: {exc}"], "choices": []}
                app.keep_answerable(event, shown)
        elif isinstance(event, PayloadReceived) and event.business is not None:
            if (shown := interactive_shown(event.payload)) is not None:
                app.keep_answerable(event, shown)
        elif isinstance(event, QueueEmpty):
            with contextlib.suppress(*LOST):
                await client.report_usage()
        elif not isinstance(event, WRITTEN):
            with contextlib.suppress(*LOST):  # group invitations and changes, as `cove listen` does
                await Groups(client).welcome([event])
        self._announce(event)

    async def _learn_business(self, client: CoveClient, app: AppStore, business_id: str) -> None:
        try:
            about = await client.call(
                Request("GET", paths.build(paths.BUSINESS, business_id=business_id, action="profile"))
            )
        except LOST as exc:
            log.warning("the profile of business %s could not be read: %s", business_id, exc)
            return
        app.save_business(business_id, str(about["display_name"]), bool(about["verified"]))

    def _announce(self, event: Event) -> None:
        live = self.desktop.live
        chat = chat_of(event)
        if chat is not None:
            live.publish(f"chat-{chat}")
            live.publish("chats")
        if isinstance(event, DevicesChanged):
            live.publish("devices")


async def save_file(client: CoveClient, folder: Path, event: AttachmentReceived | SentElsewhere) -> None:
    """Fetch, check and decrypt a file into ``folder``, and remember where for the page's download link; a file
    that cannot be saved is logged (the others still are)."""
    chat = chat_of(event)
    assert chat is not None
    try:
        saved = await client.save_attachment(event, folder)
    except (AttachmentError, InvalidPointer, RelayError, httpx.TransportError) as exc:
        log.warning("a file of %s could not be saved: %s", chat, exc)
        return
    AppStore(client.core.store).file_saved(chat, event.client_message_id, saved)


async def fetch_held(client: CoveClient, folder: Path, peer: str) -> None:
    """Once a message request is accepted (or answered), the files it held are fetched."""
    app = AppStore(client.core.store)
    for event in app.held_files(peer):
        await save_file(client, folder, event)
    app.drop_held(peer)


@asynccontextmanager
async def running(desktop: Desktop) -> AsyncIterator[None]:
    task = asyncio.create_task(Pump(desktop).run(), name=f"cove-app-pump-{desktop.profile}")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
