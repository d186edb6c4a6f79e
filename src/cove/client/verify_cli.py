"""``cove verify``: the registration code (``cove verify CODE``), and verifying a contact's keys.

``show`` prints the safety number both people compare (aloud, or by scanning the QR payload), ``mark`` records
that they did, and ``sas`` compares 7 emoji with the contact live (both run it at once).
"""

from __future__ import annotations

import asyncio
import re
from datetime import datetime
from typing import NoReturn

import click
import typer
from rich.markup import escape
from typer.core import TyperGroup

from cove.client import paths
from cove.client.cli import (
    ProfileOption,
    _client,
    _name,
    _refuse,
    _registered,
    _run,
    _show,
    _warn_changed,
    console,
    err,
    verify_code,
)
from cove.client.core import ClientCore
from cove.client.events import Delivered, Event, Read
from cove.client.transport import CoveClient
from cove.client.verification import SasVerification, VerificationError, Verified, qr_matches
from cove.client.verify_flow import (
    SAS_TIMEOUT_SECONDS,
    ContactSafety,
    ContactUnknown,
    SasFailed,
    mark_verified,
    safety,
    verify_by_sas,
)

SHOWN_KEY_META = "verification_shown:"  # + account id: the key `show` printed the number of, for `mark`
ACCOUNT_ID = re.compile(paths.ACCOUNT_ID)


class VerifyGroup(TyperGroup):
    """``cove verify CODE`` stays registration's second step; ``cove verify show|mark|sas`` are subcommands."""

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["code", *args]
        return super().resolve_command(ctx, args)


verify_app = typer.Typer(
    cls=VerifyGroup,
    no_args_is_help=True,
    help="`cove verify CODE` finishes registering; `cove verify show|mark|sas CONTACT` verifies a contact's keys.",
)
verify_app.command("code", hidden=True)(verify_code)

ContactArgument = typer.Argument(..., help="The contact: a phone number (+...) or an account id")


async def _contact(client: CoveClient, contact: str) -> str:
    if contact.startswith("+"):
        return await client.resolve(contact)
    if not ACCOUNT_ID.fullmatch(contact):
        _refuse(f"{contact!r} is neither a phone number (+...) nor an account id")
    return contact


async def _safety(profile: str, contact: str) -> tuple[ClientCore, str, ContactSafety]:
    """The profile, the contact's account id and what there is to compare with them, read from the relay now."""
    core = _registered(profile)
    async with _client(core) as client:
        account = await _contact(client, contact)
        try:
            return core, account, await safety(client, account)
        except (ContactUnknown, VerificationError) as exc:
            _fail(str(exc))


def _fail(message: str) -> NoReturn:
    err.print(f"[red]error:[/red] {escape(message)}")
    raise typer.Exit(1)


def _status(record: Verified | None) -> str:
    if record is None:
        return "[yellow]not verified[/yellow]: compare the number with them, then run `cove verify mark`"
    if record.changed:
        return "[bold red]their key CHANGED since you verified it[/bold red]: compare the new number"
    when = datetime.fromtimestamp(record.verified_at / 1000).strftime("%Y-%m-%d %H:%M")
    return f"[green]verified[/green] ({record.method.replace('_', ' ')}, {when})"


@verify_app.command("show")
@_run
async def show(contact: str = ContactArgument, profile: str = ProfileOption) -> None:
    """Print the safety number you and CONTACT both see (and its QR payload); compare it, then `mark`."""
    core, account, found = await _safety(profile, contact)
    core.store.set(SHOWN_KEY_META + account, found.key)
    if found.record is not None and found.record.changed:
        _warn_changed(core, account)
    console.print(f"Safety number with {escape(_name(core, account))}:")
    for line in found.number.lines():
        console.print(f"  {line}")
    console.print(f"QR payload: {found.number.qr}")
    console.print(f"Status: {_status(found.record)}")


@verify_app.command("mark")
@_run
async def mark(contact: str = ContactArgument, profile: str = ProfileOption) -> None:
    """Record that you compared the number `cove verify show` printed and that it matched."""
    core, account, found = await _safety(profile, contact)
    shown = core.store.get(SHOWN_KEY_META + account)
    if shown is None:
        _fail(f"compare the number first: run `cove verify show {contact}`")
    if shown != found.key:
        _fail(f"{contact}'s key changed since the number was shown: run `cove verify show {contact}` again")
    mark_verified(core, account, found.key, found.generation, "safety_number")
    console.print(f"{escape(_name(core, account))} is verified ({found.number.lines()[0]} ...).")


@verify_app.command("qr")
@_run
async def qr(contact: str = ContactArgument, scanned: str = typer.Argument(...), profile: str = ProfileOption) -> None:
    """Check a QR payload scanned from CONTACT's screen; a match verifies them."""
    core, account, found = await _safety(profile, contact)
    if not qr_matches(scanned, found.number):
        _fail(f"the scanned code does NOT match: {contact} is not verified (someone may be in between)")
    mark_verified(core, account, found.key, found.generation, "qr")
    console.print(f"The code matches: {escape(_name(core, account))} is verified.")


async def _show_but_receipts(client: CoveClient, event: Event) -> None:
    """Other messages that arrive meanwhile are shown; the receipts of the comparison's own payloads are not."""
    if not isinstance(event, Delivered | Read):
        await _show(client, event)


@verify_app.command("sas")
@_run
async def sas(
    contact: str = ContactArgument,
    profile: str = ProfileOption,
    wait: float = typer.Option(SAS_TIMEOUT_SECONDS, min=1, max=3600, help="Seconds to wait for the contact"),
) -> None:
    """Compare 7 emoji with CONTACT, who runs `cove verify sas` at the same time; both confirm they match."""
    core = _registered(profile)

    async def confirm(comparison: SasVerification) -> bool:
        console.print("Compare with the other screen:")
        console.print("  " + "   ".join(f"{e} {name}" for e, name in comparison.emoji()))
        console.print("  or the numbers " + " ".join(str(d) for d in comparison.decimals()))
        return await asyncio.to_thread(typer.confirm, "Do they match?")

    async with _client(core) as client:
        account = await _contact(client, contact)
        console.print(f"[dim]waiting for {escape(_name(core, account))} (up to {wait:g} s)...[/dim]")
        try:
            await verify_by_sas(client, account, confirm, lambda event: _show_but_receipts(client, event), wait)
        except (SasFailed, ContactUnknown, VerificationError) as exc:
            _fail(str(exc))
    console.print(f"[green]{escape(_name(core, account))} is verified.[/green]")
