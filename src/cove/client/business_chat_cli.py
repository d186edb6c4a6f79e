"""`cove businesses react|location|contact`: answering a business with more than text.

A business's messages show their id in `cove inbox` and `cove listen` (``(id wamid....)``); these commands name
a message by it. A location request is answered with ``location --reply-to ID``. The business receives each as
the Cloud API webhook its integration reads (a ``reaction``, ``location`` or ``contacts`` message).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import typer
from pydantic import ValidationError
from rich.console import Console

from cove.client.business_cli import BusinessArgument, _business_id, businesses_app
from cove.client.cli import ProfileOption, _client, _refuse, _registered, _run
from cove.client.transport import CoveClient

console = Console()
MessageIdArgument = typer.Argument(..., help="The id of the business's message, as `cove inbox` shows it")
ReplyToOption = typer.Option(None, "--reply-to", help="The id of the business's message this answers")


def _why(exc: ValueError) -> str:
    """A shape error as one plain line: the field and what is wrong with it."""
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}" for e in exc.errors())
    return str(exc)


async def _send(profile: str, business: str, send: Callable[[CoveClient, str], Awaitable[str]], what: str) -> None:
    core = _registered(profile)
    async with _client(core) as client:
        business_id = await _business_id(client, business)
        try:
            cmid = await send(client, business_id)
        except ValueError as exc:  # checked before anything is encrypted or sent
            _refuse(f"the {what} was not sent: {_why(exc)}")
    console.print(f"sent {what} {cmid[:8]} to {business}")


@businesses_app.command("react")
@_run
async def react(
    business: str = BusinessArgument,
    message_id: str = MessageIdArgument,
    emoji: str = typer.Argument(..., help='One emoji, or "" to take your reaction back'),
    profile: str = ProfileOption,
) -> None:
    """React to a business's message with an emoji."""
    await _send(profile, business, lambda c, b: c.react(b, message_id, emoji), "reaction")


@businesses_app.command("location")
@_run
async def location(
    business: str = BusinessArgument,
    # Options, not arguments: a southern latitude (-33.9) would read as an option's name.
    latitude: float = typer.Option(..., "--latitude", help="Degrees north (negative: south), -90 to 90"),
    longitude: float = typer.Option(..., "--longitude", help="Degrees east (negative: west), -180 to 180"),
    name: str = typer.Option(None, help="The place's name"),
    address: str = typer.Option(None, help="Its address"),
    reply_to: str = ReplyToOption,
    profile: str = ProfileOption,
) -> None:
    """Share a location with a business, or answer its location request (--reply-to)."""
    await _send(
        profile,
        business,
        lambda c, b: c.send_location(b, latitude, longitude, name, address, reply_to),
        "location",
    )


@businesses_app.command("contact")
@_run
async def contact(
    business: str = BusinessArgument,
    name: str = typer.Argument(..., help="The contact's name, as it should show"),
    phone: list[str] = typer.Option([], "--phone", help="A phone number (repeat for more)"),
    email: list[str] = typer.Option([], "--email", help="An email address (repeat for more)"),
    reply_to: str = ReplyToOption,
    profile: str = ProfileOption,
) -> None:
    """Share a contact card with a business."""
    card: dict[str, object] = {"name": {"formatted_name": name}}
    if phone:
        card["phones"] = [{"phone": p} for p in phone]
    if email:
        card["emails"] = [{"email": e} for e in email]
    await _send(profile, business, lambda c, b: c.send_contacts(b, [card], reply_to), "contact")
