"""Operator commands: `cove safety ban|unban|list` on the relay's database, `cove safety train` for the detector."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from cove.cli_guard import err
from cove.operator import on_database
from cove.safety import service
from cove.safety.verdicts import ReasonCode

console = Console()

safety_app = typer.Typer(
    help="Bans: keep a phone number off Cove, lift the ban, list bans; train the detector's model.",
    no_args_is_help=True,
)


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


SHIPPED_MODEL = Path(__file__).parent / "model" / "detector.txt"
FALSE_POSITIVE_RATES = (1e-2, 1e-3, 1e-4)


@safety_app.command("train")
def train(
    accounts: int = typer.Option(50_000, min=100, max=2_000_000, help="Simulated accounts"),
    seed: int = typer.Option(7, help="The simulation's seed (a run is a pure function of it and the parameters)"),
    out: Path = typer.Option(SHIPPED_MODEL, help="Where to write the model (LightGBM text format)"),
    parameters: Path | None = typer.Option(None, help="A simulator parameter file instead of the shipped one"),
) -> None:
    """Train the detector's model on the simulator's accounts and write it; print how it does on a fifth of
    them it never saw (recall per abuse type, share of each legitimate population flagged)."""
    # Imported here: numpy and LightGBM would slow every other `cove` command's start.
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from cove.safety import training
    from cove.safety.simulation.config import ConfigError, load
    from cove.safety.simulation.generator import simulate

    try:
        simulation = simulate(load(parameters), seed, accounts)
    except ConfigError as e:
        err.print(str(e))
        raise typer.Exit(1) from None
    span = simulation.end_ms - simulation.start_ms
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[events]:,} events"))
    with Progress(*columns, TimeElapsedColumn(), console=err, transient=True) as bar:
        task = bar.add_task("replaying the simulated day", total=span, events=0)

        def advance(events: int, at_ms: int) -> None:
            bar.update(task, completed=max(0, at_ms - simulation.start_ms), events=events)

        dataset = training.replay(simulation.accounts, simulation.events(), progress=advance)
        bar.update(task, description="training the trees", completed=span)
        learn, held = training.split(dataset, 0.2, seed)
        try:
            model = training.fit(learn, seed)
        except ValueError as e:  # e.g. too few accounts to hold an abuser
            err.print(f"cannot train on {accounts} accounts: {e}")
            raise typer.Exit(1) from None
    model.save(out)
    result = training.evaluate(model, held, simulation.accounts, FALSE_POSITIVE_RATES)
    console.print(
        f"wrote {out}: trained on {len(learn):,} rows; evaluated on {result.accounts:,} accounts it never saw"
    )
    table = Table()
    table.add_column("at false-positive rate")
    for rate in FALSE_POSITIVE_RATES:
        table.add_column(f"{rate:g}", justify="right")
    table.add_row("score threshold", *(f"{result.thresholds[r]:.4f}" for r in FALSE_POSITIVE_RATES))
    for group in result.recall[FALSE_POSITIVE_RATES[0]]:
        table.add_row(f"recall: {group}", *(f"{result.recall[r][group]:.3f}" for r in FALSE_POSITIVE_RATES))
    for group in result.flagged[FALSE_POSITIVE_RATES[0]]:
        table.add_row(f"flagged: {group}", *(f"{result.flagged[r][group]:.4f}" for r in FALSE_POSITIVE_RATES))
    console.print(table)
