"""One conversation (`/chats/ID`, a person, a business or a group): its history as this device keeps it, the
compose box (text or a file, encrypted here), ticks, received files to download, a business's buttons, and the
message request's and the person's safety actions. Showing a conversation marks what it shows read, and sends the
read receipts `cove inbox` would (never for a message request still waiting)."""

from __future__ import annotations

import contextlib
import re
import shutil
import tempfile
from pathlib import Path

import httpx
from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import FileResponse, Response

from cove.client.core import ClientCore
from cove.client.errors import RelayError
from cove.client.events import PayloadReceived
from cove.client.group_client import Groups
from cove.client.group_show import label
from cove.client.paths import ACCOUNT_ID
from cove.client.safety_client import GROUP, MAX_ATTACHED, PERSON, Attached, Safety, chat_messages, group_messages
from cove.client.transport import CoveClient
from cove.desktop.appstore import AppStore
from cove.desktop.conversations import (
    GROUP as GROUP_CHAT,
)
from cove.desktop.conversations import (
    Kept,
    Said,
    bubbles,
    chat_kind,
    group_status,
)
from cove.desktop.pages import client_of, desktop_of, render, see_other
from cove.desktop.pump import fetch_held
from cove.protocol import groups as proto
from cove.protocol.attachments import MAX_ATTACHMENT_BYTES, safe_name
from cove.protocol.phone import try_normalise

router = APIRouter()
SHOWN = 200  # the newest messages a conversation page shows
MAX_MEMBERS_TYPED = 50  # members a form names at once
COPY_BYTES = 1024 * 1024


def name_of(core: ClientCore, account_id: str) -> str:
    """A person as the CLI names them: their number once contact discovery confirmed it, else their account id."""
    return core.store.peer_phone(account_id) or account_id


async def account_of(client: CoveClient, who: str) -> str | None:
    """A phone number (looked up) or an account id; ``None`` if it is neither (``RelayError`` if not on Cove)."""
    who = who.strip()
    if re.fullmatch(ACCOUNT_ID, who):
        return who
    phone = try_normalise(who)
    return await client.resolve(phone) if phone is not None else None


async def members_typed(client: CoveClient, typed: str) -> list[str] | str:
    """The accounts of the members a form names (numbers or ids, separated by commas or spaces), or why not."""
    named = [m for m in re.split(r"[\s,;]+", typed) if m]
    if not named:
        return "name at least one member"
    if len(named) > MAX_MEMBERS_TYPED:
        return f"name at most {MAX_MEMBERS_TYPED} members at once"
    accounts = []
    for member in named:
        account = await account_of(client, member)
        if account is None:
            return f"{member!r} is neither a phone number nor an account id"
        accounts.append(account)
    return accounts


def chat_key(key: str) -> str:
    """The conversation a URL names, checked before it reaches a store or a relay path."""
    chat_kind(key)
    return key


async def send_text(client: CoveClient, files: Path, peer: str, text: str) -> None:
    """As `cove send`: a reply to a message request accepts it, and what it held is read (and fetched) now."""
    answering = client.core.contacts.requested(peer)
    await client.send_text(peer, text)
    if answering:
        await _accepted(client, files, peer)


async def _accepted(client: CoveClient, files: Path, peer: str) -> None:
    await Safety(client).read_accepted(peer)
    await fetch_held(client, files, peer)


async def _mark_read(client: CoveClient, key: str) -> None:
    """What the page shows is read: 1:1 receipts to contacts only (a request waits), group receipts per sender."""
    core = client.core
    if chat_kind(key) == GROUP_CHAT:
        app = AppStore(core.store)
        unread = app.group_unread(key)
        by_sender: dict[str, list[str]] = {}
        for _, sender, cmid in unread:
            by_sender.setdefault(sender, []).append(cmid)
        for sender, ids in by_sender.items():
            await Groups(client).mark_read(key, sender, ids)
        if unread:
            app.group_seen(key, unread[-1][0])
        return
    if core.contacts.requested(key):
        return
    unread = [
        m.client_message_id for m in core.store.messages(key, SHOWN) if m.direction == "in" and m.status != "read"
    ]
    if unread:
        await client.mark_read(key, unread)


def _history(core: ClientCore, key: str) -> list:
    app = AppStore(core.store)
    files = {cmid: f"/chats/{key}/files/{cmid}" for cmid in app.files(key)}
    if chat_kind(key) == GROUP_CHAT:
        others = [a for a in core.groups.members(key) if a != core.account_id]
        history = core.groups.db.messages(key, SHOWN)
        said = [
            Said(m.direction == "out", m.sender, m.client_message_id, m.text, m.sent_at,
                 group_status(core.groups.db.receipts(key, m.client_message_id).values(), len(others))
                 if m.direction == "out" else "")
            for m in history
        ]  # fmt: skip
        names = {m.sender: name_of(core, m.sender) for m in history}
        return bubbles(said, names, files)
    said = [
        Said(m.direction == "out", m.peer_account, m.client_message_id, m.text, m.sent_at, m.status)
        for m in core.store.messages(key, SHOWN)
    ]
    kept = [Kept(k.client_message_id, k.sent_at, k.shown, k.answered) for k in app.answerable(key)]
    business = app.business(key)
    name = business[0] if business else name_of(core, key)
    return bubbles(said, {key: name}, files, kept, business[0] if business else None)


async def _messages(request: Request, key: str) -> Response:
    client = client_of(request)
    await _mark_read(client, key)
    return render(request, "chat_messages.html", key=key, bubbles=_history(client.core, key))


async def page(
    request: Request, key: str, status_code: int = 200, error: str | None = None, flash: str | None = None
) -> Response:
    client = client_of(request)
    core = client.core
    await _mark_read(client, key)
    context: dict = {"key": key, "bubbles": _history(core, key), "error": error, "flash": flash}
    if chat_kind(key) == GROUP_CHAT:
        with contextlib.suppress(RelayError, httpx.TransportError):  # the members as the relay has them now
            await Groups(client).refresh(key)
        group = core.groups.group(key)
        members = core.groups.members(key)
        context |= {
            "kind": "group",
            "title": label(core, key),
            "member": group is not None and group.member,
            "admin": core.account_id in members and members[core.account_id].role == "admin",
            "members": [("You" if a == core.account_id else name_of(core, a), m.role) for a, m in members.items()],
            "attached": _shown(core, group_messages(core, key, MAX_ATTACHED)),
        }
    else:
        business = AppStore(core.store).business(key)
        blocked = {b["account_id"] for b in await Safety(client).blocked()}
        context |= {
            "kind": "business" if business else "person",
            "title": business[0] if business else name_of(core, key),
            "verified": bool(business and business[1]),
            "requested": core.contacts.requested(key),
            "blocked": key in blocked,
            "attached": _shown(core, chat_messages(core, key, MAX_ATTACHED)),
        }
    return render(request, "chat.html", status_code, **context)


def _shown(core: ClientCore, attached: list[Attached]) -> list[tuple[str, str]]:
    """What a report would carry, shown before the person agrees to attach it."""
    return [("You" if m.sender == core.account_id else name_of(core, m.sender), m.text) for m in attached]


@router.get("/chats/{key}")
async def chat(request: Request, key: str) -> Response:
    return await page(request, chat_key(key))


@router.get("/chats/{key}/messages")
async def messages(request: Request, key: str) -> Response:
    return await _messages(request, chat_key(key))


async def _upload(desktop_folder: Path, file: UploadFile) -> Path:
    """The uploaded file in a private folder of the profile, under its own (safe) name, which the recipient sees;
    ``ValueError`` past the relay's largest attachment."""
    folder = Path(tempfile.mkdtemp(prefix="upload-", dir=desktop_folder))
    path = folder / safe_name(file.filename or "file")
    written = 0
    with path.open("wb") as out:
        while chunk := await file.read(COPY_BYTES):
            written += len(chunk)
            if written > MAX_ATTACHMENT_BYTES:
                raise ValueError(f"the file is larger than {MAX_ATTACHMENT_BYTES // (1024 * 1024)} MiB")
            out.write(chunk)
    return path


@router.post("/chats/{key}/send")
async def send(
    request: Request,
    key: str,
    text: str = Form("", max_length=proto.MAX_TEXT),
    file: UploadFile | None = File(None),
) -> Response:
    key = chat_key(key)
    client = client_of(request)
    caption = text.strip() or None
    has_file = file is not None and bool(file.filename)
    if not has_file and caption is None:
        return await page(request, key, 400, "write a message or choose a file")
    if has_file:
        assert file is not None
        try:
            path = await _upload(desktop_of(request).folder, file)
        except ValueError as exc:
            return await page(request, key, 413, str(exc))
        try:
            if chat_kind(key) == GROUP_CHAT:
                await Groups(client).send_file(key, path, caption)
            else:
                answering = client.core.contacts.requested(key)
                await client.send_file(key, path, caption)
                if answering:
                    await _accepted(client, desktop_of(request).files, key)
        finally:
            shutil.rmtree(path.parent, ignore_errors=True)
    elif chat_kind(key) == GROUP_CHAT:
        await Groups(client).send_text(key, text)
    else:
        await send_text(client, desktop_of(request).files, key, text)
    desktop_of(request).live.publish("chats")
    if request.headers.get("hx-request") == "true":  # the page again, with the compose box emptied
        return await page(request, key)
    return see_other(request, f"/chats/{key}")


@router.get("/chats/{key}/files/{client_message_id}")
async def download(request: Request, key: str, client_message_id: str) -> Response:
    key = chat_key(key)
    saved = AppStore(client_of(request).core.store).files(key).get(client_message_id)
    folder = desktop_of(request).files.resolve()
    if saved is None or not saved.resolve().is_relative_to(folder) or not saved.is_file():
        return render(request, "error.html", 404, title="No such file", message="this file is not on this device",
                      code="no_file")  # fmt: skip
    return FileResponse(saved, filename=saved.name, content_disposition_type="attachment")


@router.post("/chats/{key}/members")
async def add_members(request: Request, key: str, members: str = Form("", max_length=4000)) -> Response:
    """Add members to a group (its admins only: the relay refuses anyone else)."""
    key = chat_key(key)
    client = client_of(request)
    if chat_kind(key) != GROUP_CHAT:
        return await page(request, key, 400, "only a group has members to add")
    accounts = await members_typed(client, members)
    if isinstance(accounts, str):
        return await page(request, key, 400, accounts)
    await Groups(client).add(key, accounts)
    return await page(request, key, flash=f"Added {len(accounts)} member(s).")


@router.post("/chats/{key}/choose")
async def choose(
    request: Request,
    key: str,
    message: str = Form(..., max_length=200),
    kind: str = Form(..., max_length=10),
    value: str = Form(..., max_length=300),
) -> Response:
    """A business message's quick reply (``tap``) or reply button or list row (``answer``)."""
    key = chat_key(key)
    client = client_of(request)
    app = AppStore(client.core.store)
    found = next((a for a in app.answerable(key) if a.client_message_id == message and not a.answered), None)
    if found is None:
        return await page(request, key, 409, "that message cannot be answered any more")
    try:
        if kind == "tap" and not isinstance(found.event, PayloadReceived):
            await client.tap(found.event, value)
        elif kind == "answer" and isinstance(found.event, PayloadReceived):
            await client.answer(found.event, value)
        else:
            return await page(request, key, 400, "that is not one of the message's choices")
    except ValueError:
        return await page(request, key, 400, "that is not one of the message's choices")
    app.answered(key, message)
    return see_other(request, f"/chats/{key}")


@router.post("/chats/{key}/safety")
async def safety(
    request: Request,
    key: str,
    action: str = Form(..., max_length=10),
    attach: bool = Form(False),
    also: bool = Form(False),
) -> Response:
    """accept, block or unblock a person; report a person (``also``: block them) or a group (``also``: leave it),
    with the last messages attached only if the person ticked it, having seen them."""
    key = chat_key(key)
    client = client_of(request)
    core, safety = client.core, Safety(client)
    group = chat_kind(key) == GROUP_CHAT
    if action == "report":
        attached = (group_messages if group else chat_messages)(core, key, MAX_ATTACHED) if attach else []
        if group:
            await safety.report(GROUP, group_id=key, attached=attached, leave=also)
        else:
            await safety.report(PERSON, key, attached=attached, block=also)
            if also:
                AppStore(core.store).drop_held(key)
        flash = "Reported. Thank you: the operator of this relay reviews it."
    elif group or action not in ("accept", "block", "unblock"):
        return await page(request, key, 400, f"{action!r} is not something this page does")
    elif action == "accept":
        await safety.accept(key)
        await fetch_held(client, desktop_of(request).files, key)
        flash = "Accepted: they are a contact now."
    elif action == "block":
        await safety.block(key)
        AppStore(core.store).drop_held(key)
        flash = "Blocked: nothing more from them reaches you, and they are not told."
    else:
        await safety.unblock(key)
        flash = "Unblocked: their next message arrives as a request."
    desktop_of(request).live.publish("chats")
    return await page(request, key, flash=flash)
