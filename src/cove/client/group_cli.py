"""``cove group``: create, info, add, remove, leave, admins, invite, join, send, list, show.

A GROUP is its id, a unique start of it (4 characters or more), or its name, among the groups this profile
knows; a MEMBER is a phone number (+...) or an account id.
"""

from __future__ import annotations

import dataclasses
import re
from datetime import datetime
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from cove.client import file_cli
from cove.client.cli import ProfileOption, _client, _name, _refuse, _registered, _run, console
from cove.client.core import ClientCore
from cove.client.group_client import Groups
from cove.client.group_show import label
from cove.client.paths import ACCOUNT_ID
from cove.client.transport import CoveClient
from cove.protocol import groups as proto

group_app = typer.Typer(help="Group chats, end-to-end encrypted with sender keys.", no_args_is_help=True)

GroupArgument = typer.Argument(..., help="The group: its id, the start of its id, or its name")
MIN_PREFIX = 4
SHOWN_MESSAGES = 10


def _group(core: ClientCore, value: str) -> str:
    if proto.GROUP_ID.fullmatch(value):
        return value
    known = core.groups.db.groups()
    found = [g.group_id for g in known if g.name == value]
    if not found and len(value) >= MIN_PREFIX:
        found = [g.group_id for g in known if g.group_id.startswith(value)]
    if len(found) != 1:
        _refuse(f"{value!r} is {'no group' if not found else 'several groups'} this profile knows: give its id")
    return found[0]


def _who(core: ClientCore, account_id: str) -> str:
    return "you" if account_id == core.account_id else _name(core, account_id)


async def _accounts(client: CoveClient, members: list[str]) -> list[str]:
    accounts = []
    for member in members:
        if member.startswith("+"):
            accounts.append(await client.resolve(member))
        elif re.fullmatch(ACCOUNT_ID, member):
            accounts.append(member)
        else:
            _refuse(f"{member!r} is neither a phone number (+...) nor an account id")
    return accounts


def _info(name: str, description: str, avatar: Path | None) -> proto.GroupInfo:
    try:
        return proto.GroupInfo(name, description, _picture(avatar) if avatar is not None else None)
    except OSError as exc:  # named, not its whole path: the error stays on one line
        _refuse(f"{avatar.name if avatar else 'the avatar'} cannot be read: {exc.strerror}")
    except proto.GroupPayloadError as exc:
        _refuse(str(exc))


def _picture(path: Path) -> bytes:
    """The file's bytes, read only up to one past the limit: a huge file is refused without being loaded."""
    with path.open("rb") as source:
        picture = source.read(proto.MAX_AVATAR_BYTES + 1)
    if len(picture) > proto.MAX_AVATAR_BYTES:
        _refuse(f"{path.name} is larger than a group avatar may be ({proto.MAX_AVATAR_BYTES // 1024} KiB)")
    return picture


@group_app.command("create")
@_run
async def create(
    members: list[str] = typer.Argument(..., help="The members besides you"),
    name: str = typer.Option(..., help="The group's name (only members can read it)"),
    description: str = typer.Option("", help="What the group is for"),
    avatar: Path = typer.Option(None, help=f"A small picture (up to {proto.MAX_AVATAR_BYTES // 1024} KiB)"),
    profile: str = ProfileOption,
) -> None:
    """Create a group; you are its admin."""
    info = _info(name, description, avatar)
    async with _client(_registered(profile)) as client:
        group_id = await Groups(client).create(await _accounts(client, members), info)
    console.print(f"created {escape(name)} ({group_id})")


@group_app.command("info")
@_run
async def info(
    group: str = GroupArgument,
    name: str = typer.Option(None, help="A new name"),
    description: str = typer.Option(None, help="A new description"),
    avatar: Path = typer.Option(None, help=f"A new picture (up to {proto.MAX_AVATAR_BYTES // 1024} KiB)"),
    no_avatar: bool = typer.Option(False, "--no-avatar", help="Take the picture away"),
    profile: str = ProfileOption,
) -> None:
    """Change the group's name, description or picture; every member's devices get it encrypted."""
    core = _registered(profile)
    group_id = _group(core, group)
    if name is None and description is None and avatar is None and not no_avatar:
        _refuse("nothing to change (--name, --description, --avatar, --no-avatar)")
    if avatar is not None and no_avatar:
        _refuse("give --avatar PATH or --no-avatar, not both")
    current = core.groups.group(group_id)
    if current is None or not current.member:
        _refuse(f"this profile is not in the group {group_id}")
    if not (name if name is not None else current.name):
        _refuse("the group has no name yet: give --name")
    changed = _info(
        name if name is not None else current.name or "",
        description if description is not None else current.description or "",
        avatar,
    )
    if avatar is None and not no_avatar:
        changed = dataclasses.replace(changed, avatar=current.avatar)
    async with _client(core) as client:
        await Groups(client).set_info(group_id, changed)
    console.print(f"changed the info of {escape(changed.name)} ({group_id})")


@group_app.command("add")
@_run
async def add(
    group: str = GroupArgument, members: list[str] = typer.Argument(...), profile: str = ProfileOption
) -> None:
    """Add members (admins only); they get the group's name and picture from you."""
    core = _registered(profile)
    async with _client(core) as client:
        await Groups(client).add(_group(core, group), await _accounts(client, members))
    console.print(f"added {len(members)} to {escape(label(core, _group(core, group)))}")


@group_app.command("remove")
@_run
async def remove(group: str = GroupArgument, member: str = typer.Argument(...), profile: str = ProfileOption) -> None:
    """Remove a member (admins only). Nothing sent afterwards can be read by them."""
    core = _registered(profile)
    async with _client(core) as client:
        [account] = await _accounts(client, [member])
        await Groups(client).remove(_group(core, group), account)
    console.print(f"removed {escape(member)}")


@group_app.command("leave")
@_run
async def leave(group: str = GroupArgument, profile: str = ProfileOption) -> None:
    """Leave the group."""
    core = _registered(profile)
    async with _client(core) as client:
        await Groups(client).leave(_group(core, group))
    console.print(f"left {escape(label(core, _group(core, group)))}")


@group_app.command("admins")
@_run
async def admins(
    group: str = GroupArgument,
    add: list[str] = typer.Option([], "--add", help="Make this member an admin"),
    remove: list[str] = typer.Option([], "--remove", help="Make this admin a member again"),
    profile: str = ProfileOption,
) -> None:
    """List the admins, or promote (--add) and demote (--remove) members (admins only)."""
    core = _registered(profile)
    group_id = _group(core, group)
    async with _client(core) as client:
        groups = Groups(client)
        for role, members in (("admin", add), ("member", remove)):
            for account in await _accounts(client, members):
                await groups.set_role(group_id, account, role)
        view = await groups.refresh(group_id)
    for member in view["members"]:
        if member["role"] == "admin":
            console.print(escape(_who(core, member["account_id"])))


@group_app.command("invite")
@_run
async def invite(
    group: str = GroupArgument,
    revoke: str = typer.Option(None, help="Revoke this invite code instead"),
    profile: str = ProfileOption,
) -> None:
    """Make an invite code (admins only) that anyone can join with, or revoke one."""
    core = _registered(profile)
    group_id = _group(core, group)
    if revoke is not None and not proto.INVITE_CODE.fullmatch(revoke):
        _refuse(f"{revoke!r} is not an invite code (32 hex characters)")
    async with _client(core) as client:
        if revoke is not None:
            await Groups(client).revoke(group_id, revoke)
            console.print("invite revoked")
            return
        code = await Groups(client).invite(group_id)
    console.print(f"invite code: {code}\njoin with: cove group join {code}")


@group_app.command("join")
@_run
async def join(
    code: str = typer.Argument(..., help="The invite code an admin gave you"), profile: str = ProfileOption
) -> None:
    """Join a group with an invite code."""
    if not proto.INVITE_CODE.fullmatch(code):
        _refuse(f"{code!r} is not an invite code (32 hex characters)")
    async with _client(_registered(profile)) as client:
        group_id = await Groups(client).join(code)
    console.print(f"joined {group_id}")


@group_app.command("send")
@_run
async def send(
    group: str = GroupArgument,
    text: str = typer.Argument(None, help="The message (with --file: its caption)"),
    file: Path = typer.Option(None, "--file", "-f", help="Send this file, encrypted end to end and uploaded once"),
    profile: str = ProfileOption,
) -> None:
    """Send a message or a file to every member."""
    if why := file_cli.refusal(text, file):
        _refuse(why)
    core = _registered(profile)
    if text is not None and len(text) > proto.MAX_TEXT:
        _refuse(f"a group message has at most {proto.MAX_TEXT} characters")
    async with _client(core) as client:
        groups, group_id = Groups(client), _group(core, group)
        if file is not None:
            cmid = await groups.send_file(group_id, file, text)
        else:
            cmid = await groups.send_text(group_id, text)
    console.print(f"sent {cmid[:8]} to {escape(label(core, _group(core, group)))}")


@group_app.command("list")
@_run
async def list_groups(profile: str = ProfileOption) -> None:
    """The groups you are in."""
    core = _registered(profile)
    async with _client(core) as client:
        groups = Groups(client)
        summaries = await groups.list()
        for summary in summaries:
            if core.groups.group(summary["group_id"]) is None:
                await groups.refresh(summary["group_id"])
    if not summaries:
        console.print("[dim]no groups[/dim]")
    for s in summaries:
        name = escape(label(core, s["group_id"]))
        console.print(f"{s['group_id']}  {name}  {s['size']} members  you: {s['role']}")


@group_app.command("show")
@_run
async def show(group: str = GroupArgument, profile: str = ProfileOption) -> None:
    """The group's members and, for your recent messages, who has received and read each."""
    core = _registered(profile)
    group_id = _group(core, group)
    async with _client(core) as client:
        view = await Groups(client).refresh(group_id)
    stored = core.groups.group(group_id)
    console.print(f"[bold]{escape(label(core, group_id))}[/bold] ({group_id}, revision {view['revision']})")
    if stored is not None and stored.description:
        console.print(escape(stored.description))
    if stored is not None and stored.avatar:
        console.print(f"picture: {len(stored.avatar)} bytes")
    others = [m["account_id"] for m in view["members"] if m["account_id"] != core.account_id]
    for m in view["members"]:
        console.print(f"  {escape(_who(core, m['account_id']))} ({m['role']}, {len(m['devices'])} device(s))")
    table = Table("when", "from", "message", *(_name(core, a) for a in others))
    for message in core.groups.db.messages(group_id, SHOWN_MESSAGES):
        when = datetime.fromtimestamp(message.sent_at / 1000).strftime("%H:%M:%S")
        if message.direction == "out":
            states = core.groups.db.receipts(group_id, message.client_message_id)
            table.add_row(when, "you", escape(message.text), *(states.get(a, "sent") for a in others))
        else:
            table.add_row(when, escape(_name(core, message.sender)), escape(message.text), *("" for _ in others))
    console.print(table)
