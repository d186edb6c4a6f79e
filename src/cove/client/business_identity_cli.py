"""`cove businesses name|share-number|identity`: what a user shows one business of themselves.

A business knows a user by an id of its own. The user chooses the name it sees and whether it gets their phone
number (the answer to a business's request for it, which the chat shows); both can be taken back. Registered on
the `businesses` command group by :mod:`cove.client.business_cli`.
"""

from __future__ import annotations

from typing import Any

import typer

from cove.client.business_cli import BusinessArgument, _change, businesses_app, console
from cove.client.cli import ProfileOption, _run


def _show_identity(view: dict[str, Any]) -> None:
    console.print(f"it knows you as: {view['user_id'] or '(nothing yet: you have not dealt with it)'}")
    console.print(f"name it sees: {view['name'] or '(none)'}")
    console.print(f"your number: {'shared (+' + view['wa_id'] + ')' if view['wa_id'] else 'hidden'}")


async def _identity_call(profile: str, business: str, method: str, action: str, body: Any = None) -> None:
    await _change(profile, business, method, action, body, show=_show_identity)


@businesses_app.command("identity")
@_run
async def identity(business: str = BusinessArgument, profile: str = ProfileOption) -> None:
    """What the business sees of you: its id for you, the name you show it, your number if you share it."""
    await _identity_call(profile, business, "GET", "identity")


@businesses_app.command("name")
@_run
async def name(
    business: str = BusinessArgument,
    shown: str = typer.Argument(None, metavar="NAME", help="The name it sees (one line, at most 64 characters)"),
    clear: bool = typer.Option(False, "--clear", help="Show it no name"),
    profile: str = ProfileOption,
) -> None:
    """Choose the name this business sees when you write to it (each business sees only its own)."""
    if (shown is None) == (not clear):
        raise typer.BadParameter("give a NAME, or --clear to show none", param_hint="NAME")
    if clear:
        await _identity_call(profile, business, "DELETE", "name")
    else:
        await _identity_call(profile, business, "PUT", "name", {"name": shown})


@businesses_app.command("share-number")
@_run
async def share_number(
    business: str = BusinessArgument,
    stop: bool = typer.Option(False, "--stop", help="Stop sharing it"),
    profile: str = ProfileOption,
) -> None:
    """Share your phone number with this business (your answer when it asks); until then it knows you only by its
    id for you. --stop takes it back."""
    await _identity_call(profile, business, "DELETE" if stop else "PUT", "number-sharing")
