"""``cove pin``: the registration lock, set from a registered device (see cove.accounts.reglock)."""

from __future__ import annotations

from datetime import datetime

import typer

from cove.client.cli import ProfileOption, _client, _registered, _run, console

pin_app = typer.Typer(
    help="Registration lock: registering your number on another phone needs this PIN as well as the SMS code.",
    no_args_is_help=True,
)

PinOption = typer.Option(
    ...,
    "--pin",
    prompt="New PIN (6 or more characters)",
    hide_input=True,
    confirmation_prompt=True,
    help="The PIN; asked for (twice, hidden) when not given",
)


@pin_app.command("set")
@_run
async def set_pin(pin: str = PinOption, profile: str = ProfileOption) -> None:
    """Set or change the PIN. Write it down: without it, a new phone waits until this one is 7 days inactive."""
    async with _client(_registered(profile)) as client:
        await client.set_pin(pin)
        lock = await client.registration_lock()
    console.print(
        "Registration lock on: a new phone needs this PIN until your devices have been inactive for "
        f"{lock['lapses_after_days']:g} days."
    )


@pin_app.command("remove")
@_run
async def remove_pin(profile: str = ProfileOption) -> None:
    """Remove the PIN: the SMS code alone registers your number again."""
    async with _client(_registered(profile)) as client:
        await client.remove_pin()
    console.print("Registration lock off.")


@pin_app.command("status")
@_run
async def status(profile: str = ProfileOption) -> None:
    """Whether your number has a registration lock."""
    async with _client(_registered(profile)) as client:
        lock = await client.registration_lock()
    if lock["enabled"]:
        since = datetime.fromtimestamp(lock["set_at"] / 1000).strftime("%Y-%m-%d %H:%M")
        console.print(f"Registration lock on since {since}.")
    else:
        console.print("Registration lock off: run `cove pin set` to turn it on.")
