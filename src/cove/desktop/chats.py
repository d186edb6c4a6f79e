"""The chat list (`/`): conversations with people, groups and businesses, the message requests apart, a form to
write to a number and one to create a group; and `/live`, the server-sent events that reload what changed."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response, StreamingResponse

from cove.client.core import ClientCore
from cove.client.group_client import Groups
from cove.client.group_show import label
from cove.desktop import businesses, conversation
from cove.desktop.appstore import AppStore
from cove.desktop.conversation import account_of, members_typed, name_of
from cove.desktop.conversations import chat_rows, clock
from cove.desktop.pages import client_of, desktop_of, render, see_other
from cove.protocol import groups as proto
from cove.protocol.phone import INTERNATIONAL_FORMAT

router = APIRouter()


def _rows(core: ClientCore) -> tuple[list, list]:
    """The conversations, and the message requests apart (their senders are not contacts yet)."""
    app = AppStore(core.store)
    waiting = core.contacts.requests()
    waiting_ids = {r.account_id for r in waiting}
    people = [
        (s.key, name_of(core, s.key), s.last_text, s.last_at, s.last_out, s.unread)
        for s in app.one_to_one()
        if s.key not in waiting_ids and s.key != core.account_id
    ]
    groups = [(s.key, label(core, s.key), s.last_text, s.last_at, s.last_out, s.unread) for s in app.groups()]
    businesses = {b: found for b in app.businesses() if (found := app.business(b)) is not None}
    requests = [(r, name_of(core, r.account_id), clock(r.last_at)) for r in waiting]
    return chat_rows(people, groups, businesses), requests


@router.get("/")
async def chats(request: Request) -> Response:
    core = client_of(request).core
    rows, requests = _rows(core)
    return render(request, "chats.html", title="Chats", rows=rows, requests=requests,
                  connection=desktop_of(request).connection)  # fmt: skip


@router.get("/chats/list")
async def chat_list(request: Request) -> Response:
    rows, requests = _rows(client_of(request).core)
    return render(request, "chats_list.html", rows=rows, requests=requests)


def _refused(request: Request, status: int, error: str) -> Response:
    core = client_of(request).core
    rows, requests = _rows(core)
    return render(request, "chats.html", status, title="Chats", rows=rows, requests=requests, error=error,
                  connection=desktop_of(request).connection)  # fmt: skip


@router.post("/chats/new")
async def new_chat(
    request: Request, to: str = Form("", max_length=64), text: str = Form("", max_length=proto.MAX_TEXT)
) -> Response:
    client = client_of(request)
    if not text.strip():
        return _refused(request, 400, "write a message to send")
    account = await account_of(client, to)
    if account is None:
        return _refused(request, 400, f"{to!r} is neither a phone number nor an account id: {INTERNATIONAL_FORMAT}")
    if account == client.core.account_id:
        return _refused(request, 400, "that is your own number")
    await conversation.send_text(client, desktop_of(request).files, account, text)
    return see_other(request, f"/chats/{account}")


@router.post("/groups/new")
async def new_group(
    request: Request, name: str = Form("", max_length=proto.MAX_NAME), members: str = Form("", max_length=4000)
) -> Response:
    client = client_of(request)
    if not name.strip():
        return _refused(request, 400, "a group needs a name")
    accounts = await members_typed(client, members)
    if isinstance(accounts, str):
        return _refused(request, 400, accounts)
    try:
        info = proto.GroupInfo(name.strip(), "", None)
    except proto.GroupPayloadError as exc:
        return _refused(request, 400, str(exc))
    group_id = await Groups(client).create(accounts, info)
    return see_other(request, f"/chats/{group_id}")


@router.get("/live")
async def live(request: Request) -> StreamingResponse:
    """One server-sent event per change, named by what to reload (``chats``, ``chat-ID``, ``devices``)."""
    hub = desktop_of(request).live

    async def stream() -> AsyncIterator[str]:
        async for what in hub.listen():
            if await request.is_disconnected():
                return
            yield f"event: {what}\ndata: {what}\n\n"

    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)


# After /chats/list, which /chats/{key} would take.
router.include_router(conversation.router)
router.include_router(businesses.router)
