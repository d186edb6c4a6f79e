"""How ``cove inbox``, ``listen`` and ``group`` show group events: each with its group's name (or the start of its
id until the name arrives), and the read receipts they send back to each group message's sender."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TypeGuard

from rich.markup import escape

from cove.client import attachments
from cove.client.core import ClientCore
from cove.client.events import (
    AttachmentReceived,
    Event,
    GroupChanged,
    GroupInfoChanged,
    GroupMessageReceived,
    GroupRead,
)
from cove.client.group_client import Groups
from cove.client.transport import CoveClient

CHANGES = {
    "create": "created the group with",
    "add": "added",
    "remove": "removed",
    "leave": "left",
    "promote": "made admin",
    "demote": "made no longer admin",
    "join": "joined with an invite:",
}


def label(core: ClientCore, group_id: str) -> str:
    group = core.groups.group(group_id)
    return group.name if group is not None and group.name else group_id[:8]


def describe(core: ClientCore, event: Event, name: Callable[[str], str]) -> str | None:
    """The line for a group event (rich markup), or ``None``: not one, or a delivery (one per member device would
    flood a large group's inbox; `cove group show` has each member's state)."""

    def who(account: str) -> str:  # a message from another of one's own devices is one's own
        return "you" if account == core.account_id else name(account)

    if isinstance(event, GroupMessageReceived) or in_group(event):
        group_id, text = _said(event)
        when = datetime.fromtimestamp(event.sent_at / 1000).strftime("%H:%M:%S")
        where = escape(f"[{label(core, group_id)}]")
        mid = escape(event.client_message_id[:8])  # what `cove forward` takes, as `cove history` shows it 1:1
        said = f"[bold]{escape(who(event.sender))}[/bold]: {escape(text)}"
        return f"[dim]{when} {mid}[/dim] [cyan]{where}[/cyan] {said}"
    if isinstance(event, GroupChanged):
        whom = "" if event.action == "leave" else " " + ", ".join(who(a) for a in event.accounts)
        said = f"{who(event.actor)} {CHANGES[event.action]}{whom}"
        return f"[dim]{escape(f'[{label(core, event.group_id)}]')} {escape(said)}[/dim]"
    if isinstance(event, GroupInfoChanged):
        return f"[dim]{escape(who(event.sender))} named the group {escape(repr(event.name))}[/dim]"
    if isinstance(event, GroupRead):
        where = escape(f"[{label(core, event.group_id)}]")
        return f"[dim]{where} read by {escape(who(event.peer))}: {len(event.client_message_ids)} message(s)[/dim]"
    return None


def in_group(event: Event) -> TypeGuard[AttachmentReceived]:
    """A file sent in a group (shown and read-receipted as a group message, not as a one-to-one one)."""
    return isinstance(event, AttachmentReceived) and event.group is not None


def _said(event: GroupMessageReceived | AttachmentReceived) -> tuple[str, str]:
    """The group and the line of a group text or file."""
    if isinstance(event, GroupMessageReceived):
        return event.group_id, event.text
    assert event.group is not None
    return event.group, attachments.file_line(event)


async def reply_read(client: CoveClient, events: list[Event]) -> None:
    """One end-to-end read receipt per (group, sender) for the group messages shown."""
    shown: dict[tuple[str, str], list[str]] = {}
    for e in events:
        if (isinstance(e, GroupMessageReceived) or in_group(e)) and e.sender != client.core.account_id:
            shown.setdefault((_said(e)[0], e.sender), []).append(e.client_message_id)  # not from my other devices
    groups = Groups(client)
    for (group_id, sender), ids in shown.items():
        await groups.mark_read(group_id, sender, ids)
