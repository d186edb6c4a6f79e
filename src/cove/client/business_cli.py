"""`cove businesses ...`: a user's side of business messaging, from the command line.

A business is named by its phone number (found through contact discovery) or its account id, as shown by
`cove inbox`. Everything here is the user's own decision, recorded by the relay and enforced on the business's
sends: opting in per category (with where the user agreed), stopping promotions, blocking with a reason, reporting.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from enum import StrEnum
from typing import Any

import typer
from rich.console import Console

from cove.client import paths
from cove.client.cli import ProfileOption, _client, _registered, _run
from cove.client.core import Request
from cove.client.transport import CoveClient
from cove.protocol.business import BlockReason, Category, OptInSource

console = Console()
businesses_app = typer.Typer(
    help="Businesses you chat with: see who they are, opt in, stop promotions, block or report them.",
    no_args_is_help=True,
)
BusinessArgument = typer.Argument(..., help="The business's phone number (+14155550123) or account id")


class Switch(StrEnum):
    STOP = "stop-promotions"
    RESUME = "resume-promotions"


async def _business_id(client: CoveClient, business: str) -> str:
    if business.startswith("+"):
        return await client.resolve(business)
    if re.match(paths.ACCOUNT_ID, business) is None:  # it goes into the relay path of what the command does
        raise typer.BadParameter(
            f"{business[:40]!r} is neither a phone number (+14155550123) nor an account id", param_hint="BUSINESS"
        )
    return business


def _show(view: dict[str, Any]) -> None:
    opted = ", ".join(f"{o['category']} ({o['source']})" for o in view["opt_ins"]) or "nothing"
    console.print(f"opted in to: {opted}")
    console.print(f"promotions: {'stopped' if view['promotions_stopped'] else 'allowed'}")
    if view["blocked"]:
        console.print(f"[red]blocked[/red] ({view['block_reason']})")
    may = ", ".join(view["sendable_categories"]) or "nothing"
    console.print(f"it may start a chat with: {may} (anything, for 24 hours after you write to it)")


async def _change(
    profile: str,
    business: str,
    method: str,
    action: str,
    body: dict[str, Any] | None = None,
    show: Callable[[dict[str, Any]], None] | None = None,
) -> None:
    """Call one of the business's relay routes as this user and print the answer (``show``, by default what the
    user told the business)."""
    core = _registered(profile)
    async with _client(core) as client:
        business_id = await _business_id(client, business)
        view = await client.call(
            Request(method, paths.build(paths.BUSINESS, business_id=business_id, action=action), body)
        )
        (show or _show)(view)


@businesses_app.command("show")
@_run
async def show(business: str = BusinessArgument, profile: str = ProfileOption) -> None:
    """Who the business is (its verified badge) and what you told it."""
    core = _registered(profile)
    async with _client(core) as client:
        business_id = await _business_id(client, business)
        about = await client.call(
            Request("GET", paths.build(paths.BUSINESS, business_id=business_id, action="profile"))
        )
        badge = " [green]✓ verified[/green]" if about["verified"] else " [yellow](not verified)[/yellow]"
        console.print(f"[bold]{about['display_name']}[/bold]{badge}  {about.get('about') or ''}")
        preferences = paths.build(paths.BUSINESS, business_id=business_id, action="preferences")
        _show(await client.call(Request("GET", preferences)))


@businesses_app.command("opt-in")
@_run
async def opt_in(
    business: str = BusinessArgument,
    category: list[Category] = typer.Option(..., help="What you agree to receive: utility, marketing, authentication"),
    source: OptInSource = typer.Option(..., help="Where you agreed: web, sms, ivr, in_thread, qr, email"),
    profile: str = ProfileOption,
) -> None:
    """Agree to receive this business's messages of these categories outside a chat you started."""
    await _change(profile, business, "PUT", "opt-in", {"categories": [c.value for c in category], "source": source})


@businesses_app.command("withdraw")
@_run
async def withdraw(
    business: str = BusinessArgument,
    category: list[Category] = typer.Option(None, help="Only these categories [default: all]"),
    profile: str = ProfileOption,
) -> None:
    """Withdraw your opt-in."""
    core = _registered(profile)
    async with _client(core) as client:
        business_id = await _business_id(client, business)
        params = {"category": [c.value for c in category]} if category else None
        opt_in = paths.build(paths.BUSINESS, business_id=business_id, action="opt-in")
        _show(await client.call(Request("DELETE", opt_in, params=params)))


@businesses_app.command("promotions")
@_run
async def promotions(switch: Switch, business: str = BusinessArgument, profile: str = ProfileOption) -> None:
    """Stop or resume marketing messages from this business (its service messages still come)."""
    await _change(profile, business, "POST", switch.value)


@businesses_app.command("block")
@_run
async def block(
    business: str = BusinessArgument,
    reason: BlockReason = typer.Option(..., help="Why; it counts in the business's quality rating"),
    profile: str = ProfileOption,
) -> None:
    """Block the business: it can no longer write to you."""
    await _change(profile, business, "POST", "block", {"reason": reason})


@businesses_app.command("unblock")
@_run
async def unblock(business: str = BusinessArgument, profile: str = ProfileOption) -> None:
    """Unblock the business."""
    await _change(profile, business, "DELETE", "block")


@businesses_app.command("report")
@_run
async def report(
    business: str = BusinessArgument,
    reason: BlockReason = typer.Option(BlockReason.SPAM, help="What is wrong"),
    block: bool = typer.Option(False, "--block", help="Block it too"),
    profile: str = ProfileOption,
) -> None:
    """Report the business to Cove (and block it with --block)."""
    await _change(profile, business, "POST", "report", {"reason": reason, "block": block})


from cove.client import business_identity_cli as _identity_commands  # noqa: E402, F401 - registers its commands
