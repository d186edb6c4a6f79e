"""``cove forward MESSAGE TO...``: forward a message this profile holds to up to 5 chats at once, or 1 for a message
forwarded 5 times or more, as the relay enforces (cove.protocol.forwarding).

MESSAGE is the start of a message id (4 characters or more), as ``cove history`` shows it; each TO is a phone
number (+...), an account id, or a group (its id, the start of it, or its name). The forward leaves with the
message's count plus one and one random batch for all its chats; a file is forwarded by its pointer (no upload)
while the relay still holds it, after telling the relay how many more devices will fetch it.
"""

from __future__ import annotations

import dataclasses
import re

import typer
from rich.markup import escape

from cove.client import forwards
from cove.client.cli import ProfileOption, _client, _refuse, _registered, _run, console
from cove.client.core import ClientCore
from cove.client.errors import RelayError
from cove.client.group_cli import _group
from cove.client.group_client import Groups
from cove.client.paths import ACCOUNT_ID
from cove.client.transport import CoveClient
from cove.protocol import forwarding
from cove.protocol.attachments import InvalidPointer, Pointer


def _original(core: ClientCore, prefix: str) -> forwards.Original:
    if len(prefix) < forwards.MIN_PREFIX:
        _refuse(f"{prefix!r} is too short: give at least {forwards.MIN_PREFIX} characters of the message's id")
    found = forwards.find(core.store, prefix)
    if len(found) != 1:
        where = "no message" if not found else f"{len(found)} messages"
        _refuse(f"{prefix!r} starts {where} this profile holds: give more of its id (see `cove history`)")
    return found[0]


def _pointer(original: forwards.Original) -> Pointer | None:
    try:
        return forwards.pointer(original)
    except InvalidPointer as exc:
        _refuse(f"this file cannot be forwarded: {exc}")


async def _chat(client: CoveClient, core: ClientCore, target: str) -> tuple[str, bool]:
    """``(chat, is a group)``."""
    if target.startswith("+"):
        return await client.resolve(target), False
    if re.fullmatch(ACCOUNT_ID, target):
        return target, False
    return _group(core, target), True


async def _make_room(client: CoveClient, pointer: Pointer, chats: list[tuple[str, bool]]) -> None:
    """Have the relay expect every device the forward reaches (this person's others too, for the transcript)
    to fetch the blob, before any is sent its pointer: the upload counted only the original's recipients."""
    me = client.core.account_id or ""
    count = await client.fetching_devices(me, *(chat for chat, group in chats if not group))
    for chat, group in chats:
        if group:
            view = await Groups(client).refresh(chat)
            count += sum(len(m["devices"]) for m in view["members"] if m["account_id"] != me)
    try:
        await client.add_attachment_recipients(pointer, max(1, count))
    except RelayError as exc:
        if exc.status == 404:
            _refuse(f"the file {pointer.name} has expired on the relay: send it again with `cove send --file`")
        if exc.status == 403:
            _refuse(f"the relay no longer serves {pointer.name} to this device: send it again with `cove send --file`")
        raise


async def _send(
    client: CoveClient, chat: str, group: bool, original: forwards.Original, pointer: Pointer | None, header: dict
) -> str:
    core = client.core
    if group:
        groups = Groups(client)
        if pointer is not None:
            cmid = await groups.send_pointer(chat, pointer, original.caption, header)
        else:
            cmid = await groups.send_text(chat, original.text, header)
        forwards.keep(core.store, chat, cmid, header["count"], original.attachment, original.caption)
        return cmid
    if pointer is not None:
        outgoing = core.compose_attachment(chat, pointer, original.caption)
    else:
        outgoing = core.compose_text(chat, original.text)
    await client.send(dataclasses.replace(outgoing, forward=header))  # its count is kept as it is sent
    return outgoing.client_message_id


def register_forward_command(app: typer.Typer) -> None:
    @app.command()
    @_run
    async def forward(
        message: str = typer.Argument(..., help="The message: the start of its id, as `cove history` shows it"),
        to: list[str] = typer.Argument(..., help="Chats: phone numbers (+...), account ids, or groups"),
        profile: str = ProfileOption,
    ) -> None:
        """Forward a message to up to 5 chats at once (1 if it was forwarded 5 times or more)."""
        core = _registered(profile)
        original = _original(core, message)
        targets = list(dict.fromkeys(to))
        if len(targets) > original.limit:
            label = forwarding.label(original.count) or "this message"
            _refuse(f"{label} can be forwarded to at most {original.limit} chat(s) at once, not {len(targets)}")
        pointer = _pointer(original)
        header = forwarding.header(forwarding.next_count(original.count), forwarding.new_batch())
        async with _client(core) as client:
            chats = [await _chat(client, core, target) for target in targets]
            if pointer is not None:
                await _make_room(client, pointer, chats)
            done: list[str] = []
            for (chat, group), target in zip(chats, targets, strict=True):
                try:
                    await _send(client, chat, group, original, pointer, header)
                except RelayError:
                    if done:
                        console.print(f"forwarded {original.client_message_id[:8]} to {escape(', '.join(done))}")
                    raise
                done.append(target)
        console.print(f"forwarded {original.client_message_id[:8]} to {escape(', '.join(done))}")
