"""``cove block|unblock|blocked|report``, ``cove requests``, ``cove contacts`` and ``cove group report``.

A PERSON is a phone number (+...) or an account id, as in ``cove send``. A report shows the user, before anything
leaves, the messages it would carry (decrypted here from this device's history), and sends them only if the user
agrees; ``--no-attach`` sends none.
"""

from __future__ import annotations

import contextlib
import re
from datetime import datetime

import httpx
import typer
from rich.markup import escape

from cove.client.cli import (
    ProfileOption,
    _client,
    _existing,
    _name,
    _not_registered,
    _refuse,
    _registered,
    _run,
    console,
    err,
)
from cove.client.core import ClientCore
from cove.client.errors import RelayError
from cove.client.group_cli import GroupArgument, _group
from cove.client.group_show import label
from cove.client.paths import ACCOUNT_ID
from cove.client.safety_client import (
    GROUP,
    MAX_ATTACHED,
    MAX_REPORTED_IDS,
    MESSAGE,
    PERSON,
    Attached,
    Safety,
    chat_messages,
    group_messages,
)
from cove.client.transport import CoveClient

requests_app = typer.Typer(
    help="Message requests: first messages from people who are not your contacts. Lists them when run alone.",
)
contacts_app = typer.Typer(help="Your contacts: their messages are no requests.", no_args_is_help=True)

PersonArgument = typer.Argument(..., help="A phone number (+...) or an account id")
LastOption = typer.Option(MAX_ATTACHED, "--last", min=1, max=MAX_ATTACHED, help="Attach the chat's last N messages")
NoAttachOption = typer.Option(False, "--no-attach", help="Attach no message to the report")
YesOption = typer.Option(False, "--yes", "-y", help="Do not ask before sending the attached messages")
MIN_ID_PREFIX = 8  # as `cove send` and the report's preview show a message id
SEARCHED = 1000  # messages of a chat searched for the ids given to --message
SHOWN_PER_REQUEST = 20


def _when(ms: int, day: bool = False) -> str:
    return datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M" if day else "%H:%M:%S")


async def _account(client: CoveClient, who: str) -> str:
    if who.startswith("+"):
        return await client.resolve(who)
    if not re.fullmatch(ACCOUNT_ID, who):
        _refuse(f"{who!r} is neither a phone number (+...) nor an account id")
    return who


def _on_this_device(profile: str) -> ClientCore:
    """A registered profile, for what needs no relay (a command that works offline)."""
    core = _existing(profile)
    if core is None or not core.account_id:
        err.print(str(_not_registered(profile, core)))
        raise typer.Exit(1)
    return core


def _local_account(core: ClientCore, who: str) -> str:
    """Without the relay: a number this device has confirmed, or an account id."""
    if re.fullmatch(ACCOUNT_ID, who):
        return who
    found = core.store.peer_by_phone(who) if who.startswith("+") else None
    if found is None:
        _refuse(f"{who!r} is neither a number this profile knows nor an account id")
    return found


def _consent(core: ClientCore, attached: list[Attached], yes: bool) -> None:
    """Show what the report would carry; unless ``yes``, send it only if the user agrees."""
    if not attached:
        console.print("The report carries no message.")
        return
    console.print(
        f"These {len(attached)} message(s) will be sent to the operator of this relay with your report, "
        "as this device decrypted them:"
    )
    for m in attached:
        who = "you" if m.sender == core.account_id else _name(core, m.sender)
        console.print(f"  [dim]{_when(m.sent_at)} {m.client_message_id[:MIN_ID_PREFIX]}[/dim] {escape(who)}: "
                      f"{escape(m.text)}")  # fmt: skip
    if not yes and not typer.confirm("Send the report with them?", default=False):
        err.print("nothing was reported")
        raise typer.Exit(1)


def _named(core: ClientCore, peer: str, given: list[str]) -> list[Attached]:
    """The chat's messages named by id or by its first 8 characters or more."""
    chat = chat_messages(core, peer, SEARCHED)
    named = []
    for prefix in given:
        found = [m for m in chat if len(prefix) >= MIN_ID_PREFIX and m.client_message_id.startswith(prefix)]
        if len(found) != 1:
            _refuse(f"{prefix!r} names {'no' if not found else 'more than one'} message of this chat on this device")
        named.append(found[0])
    return named


async def _report_person(
    profile: str, who: str, message: list[str], last: int, no_attach: bool, block: bool, yes: bool
) -> None:
    if len(message) > MAX_REPORTED_IDS:
        _refuse(f"a report names at most {MAX_REPORTED_IDS} messages")
    core = _registered(profile)
    async with _client(core) as client:
        account = await _account(client, who)
        if account == core.account_id:
            _refuse("you cannot report yourself")
        named = _named(core, account, message)
        attached = [] if no_attach else (named[-MAX_ATTACHED:] if message else chat_messages(core, account, last))
        _consent(core, attached, yes)
        kind = MESSAGE if message else PERSON
        ids = [m.client_message_id for m in named]
        answer = await Safety(client).report(kind, account, message_ids=ids, attached=attached, block=block)
    blocked = " and blocked them" if answer["blocked"] else ""
    console.print(f"Reported {escape(who)}{blocked} (report {answer['report_id']}, "
                  f"{answer['attached']} message(s) attached)")  # fmt: skip


async def _block(profile: str, who: str, blocking: bool) -> None:
    async with _client(_registered(profile)) as client:
        safety, account = Safety(client), await _account(client, who)
        await (safety.block(account) if blocking else safety.unblock(account))
    console.print(f"{'Blocked' if blocking else 'Unblocked'} {escape(who)}")


def register_safety_commands(app: typer.Typer, group_app: typer.Typer) -> None:
    app.add_typer(requests_app, name="requests")
    app.add_typer(contacts_app, name="contacts")

    @app.command()
    @_run
    async def block(who: str = PersonArgument, profile: str = ProfileOption) -> None:
        """Block a person: the relay delivers nothing more from them, and they are not told."""
        await _block(profile, who, True)

    @app.command()
    @_run
    async def unblock(who: str = PersonArgument, profile: str = ProfileOption) -> None:
        """Unblock a person: their next message arrives as a message request."""
        await _block(profile, who, False)

    @app.command()
    @_run
    async def blocked(profile: str = ProfileOption) -> None:
        """The people you block."""
        core = _registered(profile)
        async with _client(core) as client:
            blocks = await Safety(client).blocked()
        if not blocks:
            console.print("[dim]you block nobody[/dim]")
        for b in blocks:
            console.print(f"{escape(_name(core, b['account_id']))}  since {_when(b['since'], day=True)}")

    @app.command()
    @_run
    async def report(
        who: str = PersonArgument,
        message: list[str] = typer.Option([], "--message", help="Report this message (its id or first 8 characters)"),
        last: int = LastOption,
        no_attach: bool = NoAttachOption,
        block: bool = typer.Option(False, "--block", help="Block them in the same step"),
        yes: bool = YesOption,
        profile: str = ProfileOption,
    ) -> None:
        """Report a person or their messages to the operator of this relay; you see what is attached first."""
        await _report_person(profile, who, message, last, no_attach, block, yes)

    @group_app.command("report")
    @_run
    async def group_report(
        group: str = GroupArgument,
        leave: bool = typer.Option(False, "--leave", help="Leave the group in the same step"),
        last: int = LastOption,
        no_attach: bool = NoAttachOption,
        yes: bool = YesOption,
        profile: str = ProfileOption,
    ) -> None:
        """Report a group to the operator of this relay; you see what is attached first."""
        core = _registered(profile)
        group_id = _group(core, group)
        shown = label(core, group_id)
        attached = [] if no_attach else group_messages(core, group_id, last)
        _consent(core, attached, yes)
        async with _client(core) as client:
            answer = await Safety(client).report(GROUP, group_id=group_id, attached=attached, leave=leave)
        left = " and left it" if answer["left_group"] else ""
        console.print(f"Reported the group {escape(shown)}{left} (report {answer['report_id']}, "
                      f"{answer['attached']} message(s) attached)")  # fmt: skip


async def _learn(client: CoveClient) -> None:
    """Best effort: acceptances made on another device turn their requests here into contacts."""
    with contextlib.suppress(RelayError, httpx.TransportError, OSError):
        await Safety(client).accepted()
    with contextlib.suppress(RelayError, httpx.TransportError, OSError):
        await client.name_senders()


@requests_app.callback(invoke_without_command=True)
@_run
async def requests_list(ctx: typer.Context, profile: str = ProfileOption) -> None:
    """Each waiting request with its messages (shown here only)."""
    if ctx.invoked_subcommand is not None:
        return
    core = _registered(profile)
    async with _client(core) as client:
        await _learn(client)
    waiting = core.contacts.requests()
    if not waiting:
        console.print("[dim]no message requests[/dim]")
    for r in waiting:
        who = escape(_name(core, r.account_id))
        console.print(f"[bold]message request from {who}[/bold]: {r.messages} message(s) since {_when(r.first_at)}")
        for m in chat_messages(core, r.account_id, SHOWN_PER_REQUEST):
            console.print(f"  [dim]{_when(m.sent_at)} {m.client_message_id[:MIN_ID_PREFIX]}[/dim] {escape(m.text)}")
        console.print(f"  [dim]cove requests accept|block|report {who}[/dim]")


@requests_app.command("accept")
@_run
async def accept(who: str = PersonArgument, profile: str = ProfileOption) -> None:
    """Accept a request: the sender becomes a contact and their messages get their read receipts."""
    async with _client(_registered(profile)) as client:
        read = await Safety(client).accept(await _account(client, who))
    console.print(f"Accepted {escape(who)}: {len(read)} message(s) marked read")


@requests_app.command("block")
@_run
async def request_block(who: str = PersonArgument, profile: str = ProfileOption) -> None:
    """Block the sender of a request (they are not told)."""
    await _block(profile, who, True)


@requests_app.command("report")
@_run
async def request_report(
    who: str = PersonArgument,
    last: int = LastOption,
    no_attach: bool = NoAttachOption,
    yes: bool = YesOption,
    profile: str = ProfileOption,
) -> None:
    """Report the sender of a request and block them; you see what is attached first."""
    await _report_person(profile, who, [], last, no_attach, True, yes)


@contacts_app.command("add")
@_run
async def contacts_add(
    who: str = PersonArgument,
    name: str = typer.Option(None, "--name", help="What to call them"),
    profile: str = ProfileOption,
) -> None:
    """Add a contact: their messages are never requests, and they get your read receipts."""
    async with _client(_registered(profile)) as client:
        await Safety(client).add_contact(await _account(client, who), name)
    console.print(f"Added {escape(who)}" + (f" as {escape(name)}" if name else ""))


@contacts_app.command("list")
def contacts_list(profile: str = ProfileOption) -> None:
    """Your contacts: whom you wrote to, whose request you accepted, whom you added."""
    core = _on_this_device(profile)
    found = core.contacts.contacts()
    if not found:
        console.print("[dim]no contacts[/dim]")
    for c in found:
        name = f"  {escape(c.name)}" if c.name else ""
        console.print(f"{escape(c.phone_number or c.account_id)}{name}  [dim]{c.how}, {_when(c.since, day=True)}[/dim]")


@contacts_app.command("remove")
def contacts_remove(who: str = PersonArgument, profile: str = ProfileOption) -> None:
    """Remove a contact on this device: their next message is a request here (they are not blocked)."""
    core = _on_this_device(profile)
    if not core.contacts.remove(_local_account(core, who)):
        _refuse(f"{who} is not one of your contacts")
    console.print(f"Removed {escape(who)} from your contacts")
