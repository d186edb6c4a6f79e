"""Operator commands on the relay's database: `cove safety ban|unban|list`."""

from __future__ import annotations

from datetime import UTC, datetime

import typer
from rich.console import Console
from rich.table import Table

from cove.cli_guard import err
from cove.operator import on_database
from cove.safety import service
from cove.safety.verdicts import ReasonCode

console = Console()

safety_app = typer.Typer(help="Bans: keep a phone number off Cove, lift the ban, list bans.", no_args_is_help=True)


@safety_app.command("ban")
def ban(
    phone_number: str = typer.Argument(..., help="The number in international form, e.g. +14155550123"),
    reason: ReasonCode = typer.Option(..., help="Why: the reason code recorded in the verdict"),
) -> None:
    """Ban a number: log out every device of its account and refuse it a code or a registration.

    Running relays refuse the old tokens and close their open connections within COVE_FLEET_POLL_SECONDS.
    """
    banned = on_database(lambda engine: service.ban(engine, phone_number, reason))
    if banned.account_id is None:
        console.print(f"banned {banned.phone_number} ({reason.value}); it has no account and cannot register one")
    else:
        console.print(
            f"banned {banned.phone_number} ({reason.value}): account {banned.account_id}, "
            f"{banned.devices_logged_out} device(s) logged out "
            "(running relays close their sockets within COVE_FLEET_POLL_SECONDS, 2 s by default)"
        )


@safety_app.command("unban")
def unban(phone_number: str = typer.Argument(..., help="The banned number")) -> None:
    """Lift a ban: the number may register again (as a new phone: its old devices stay logged out)."""
    lifted = on_database(lambda engine: service.unban(engine, phone_number))
    if lifted is None:
        err.print(f"{phone_number} is not banned")
        raise typer.Exit(1)
    console.print(f"lifted the ban on {lifted.phone_number}; it may register again")


@safety_app.command("list")
def list_bans() -> None:
    """The numbers banned now, with the reason and since when."""
    bans = on_database(service.banned_numbers)
    if not bans:
        console.print("no number is banned")
        return
    table = Table()
    for column in ("number", "reason", "banned since (UTC)", "account"):
        table.add_column(column)
    for b in bans:
        since = datetime.fromtimestamp(b.banned_at_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")
        table.add_row(b.phone_number, b.reason.value, since, b.account_id or "none")
    console.print(table)
