"""``cove devices``: link this computer to your phone's account, list and unlink devices."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any

import httpx
import typer
from rich.markup import escape
from rich.table import Table

from cove.client import linking, sync_flow
from cove.client.cli import ProfileOption, _client, _existing, _registered, _run, console, err
from cove.client.devices import ProvisioningError
from cove.client.errors import RelayError
from cove.client.profile import open_profile, remove_profile
from cove.client.safety_client import Safety
from cove.protocol.provisioning import InvalidLinkCode

devices_app = typer.Typer(
    help="Your devices: link a computer to your phone's account, see and unlink linked devices.",
    no_args_is_help=True,
)


def _linking(fn: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., Coroutine[Any, Any, None]]:
    """Linking's own refusals, as one line and exit status 1 (the relay's are ``_run``'s)."""

    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            await fn(*args, **kwargs)
        except (linking.LinkError, InvalidLinkCode, ProvisioningError) as exc:
            err.print(f"[red]error:[/red] {escape(str(exc))}")
            raise typer.Exit(1) from exc

    return wrapper


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M")


@devices_app.command("link")
@_run
@_linking
async def link(
    code: str = typer.Argument(None, help="On your phone: the code the new device shows. Leave out on the new device"),
    profile: str = ProfileOption,
    server: str = typer.Option(None, help="Relay URL, on the new device (env COVE_SERVER)"),
    history_days: int = typer.Option(
        0, min=0, max=sync_flow.MAX_HISTORY_DAYS, help="On your phone: also send it the last N days of history"
    ),
) -> None:
    """Link a device: run it without CODE on the new device, then with its code on your phone (the primary)."""
    if code is not None:
        async with _client(_registered(profile)) as client:
            device_id = await linking.link_companion(client, code)
            console.print(f"Linked device {device_id}: your contacts' messages now reach it too.")
            if history_days:  # off unless asked: the new device may be one the user does not fully trust yet
                sent = await sync_flow.send_history(client, device_id, history_days)
                console.print(f"Sent it {sent} message(s) of the last {history_days} day(s), end-to-end encrypted.")
        return
    existing = _existing(profile)
    if existing is not None and existing.token:
        raise linking.LinkError(f"profile {profile!r} is already registered: link a new profile (--profile NAME)")
    new = existing is None
    core = existing or open_profile(profile)
    try:
        async with _client(core, server) as client:
            pending = await linking.open_link(client)
            console.print("On your phone, run:")
            console.print(f"  cove devices link {pending.code} --profile <your profile>", soft_wrap=True)
            console.print("[dim]waiting for your phone (the code works for 10 minutes)...[/dim]")
            registered = await linking.finish_link(client, pending)
            # Whom the account accepts: their messages are no requests here either (`cove requests` asks again).
            with contextlib.suppress(RelayError, httpx.TransportError):
                await Safety(client).accepted()
        core.store.set("server", client.base_url)
    except BaseException:
        if new:  # a link that did not complete leaves no profile behind
            remove_profile(core, profile)
        raise
    console.print(f"Linked as device {registered['device_id']} of {core.phone_number} (account {core.account_id}).")


@devices_app.command("list")
@_run
async def list_devices(profile: str = ProfileOption) -> None:
    """The account's devices: id, model, when linked, last seen; this device is marked."""
    async with _client(_registered(profile)) as client:
        view = await linking.registered_devices(client)
        await linking.reconcile(client)
    table = Table()
    for column in ("id", "model", "linked", "last seen", ""):
        table.add_column(column)
    for d in view["devices"]:
        notes = ["this device"] if d["device_id"] == view["device_id"] else []
        if not d["listed"]:
            notes.append("not in the signed list")
        table.add_row(
            str(d["device_id"]),
            escape(d["model"]),
            _when(d["linked_at"]),
            _when(d["last_seen_at"]),
            ", ".join(notes),
        )
    console.print(table)


@devices_app.command("unlink")
@_run
@_linking
async def unlink(
    device_id: int = typer.Argument(None, min=2, help="On your phone: the device to unlink. Leave out on a companion"),
    profile: str = ProfileOption,
) -> None:
    """Unlink a device: ``unlink ID`` on your phone, or ``unlink`` on the linked device itself."""
    core = _registered(profile)
    async with _client(core) as client:
        if device_id is not None:
            await linking.unlink_companion(client, device_id)
            console.print(f"Unlinked device {device_id}: it receives nothing more.")
            return
        await linking.leave(client)
    remove_profile(core, profile)
    console.print(f"This device is unlinked; its profile {profile!r} and its keys were deleted.")
