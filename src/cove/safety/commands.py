"""Operator commands on the relay's database: `cove safety ban|unban|list`, the graduated actions
(`cove safety act|lift|queue|review|appeal`), and `cove safety train` for the detector's model."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cove.cli_guard import CommandError, err
from cove.config import Settings
from cove.operator import on_database
from cove.protocol.phone import normalise
from cove.safety import actions, appeals, defences, service
from cove.safety.actions_storage import MAX_APPEAL_CHARS
from cove.safety.ladder import Step
from cove.safety.verdicts import ReasonCode

console = Console()

safety_app = typer.Typer(
    help="Bans and graduated actions (throttle, challenge, restrict, ban), the review queue and appeals.",
    no_args_is_help=True,
)
STEPS = ", ".join(s.label for s in Step)
# Running relays learn of a change from the fleet's event table: within COVE_FLEET_POLL_SECONDS.
SOON = "running relays apply it within COVE_FLEET_POLL_SECONDS (2 s by default)"


def _when(ms: int | None, never: str = "-") -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M") if ms is not None else never


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
        table.add_row(b.phone_number, b.reason.value, _when(b.banned_at_ms), b.account_id or "none")
    console.print(table)


@safety_app.command("act")
def act(
    phone_number: str = typer.Argument(..., help="The account's number in international form"),
    step: str = typer.Option(..., help=f"One of: {STEPS}"),
    reason: ReasonCode = typer.Option(..., help="Why: the reason code the account is told"),
) -> None:
    """Take a step on an account; a step at or below one in force changes nothing (lift it first)."""
    try:
        chosen = Step.named(step)
    except KeyError:
        raise CommandError(f"{step!r} is not a step (one of: {STEPS})") from None
    phone = normalise(phone_number)
    try:
        taken = on_database(lambda engine: actions.act(engine, Settings(), phone, chosen, reason))
    except actions.NoSuchAccount:
        raise CommandError(f"{phone} has no account (to keep a number off Cove, `cove safety ban` it)") from None
    if taken is None:
        console.print(f"{phone} already has a step as high as {step} in force: nothing changed")
        return
    console.print(f"{chosen.label} on {phone} ({reason.value}) until {_when(taken.expires_at_ms, 'lifted')}; {SOON}")


@safety_app.command("lift")
def lift(phone_number: str = typer.Argument(..., help="The account's number in international form")) -> None:
    """Lift every step in force on an account (a ban too: the number may register again)."""
    phone = normalise(phone_number)
    try:
        lifted = on_database(lambda engine: actions.lift(engine, phone))
    except actions.NoSuchAccount:
        raise CommandError(f"{phone} has no account") from None
    if not lifted:
        raise CommandError(f"no step is in force on {phone}")
    console.print(f"lifted {', '.join(a.step.label for a in lifted)} on {phone}; {SOON}")


@safety_app.command("queue")
def queue(
    stats: bool = typer.Option(False, "--stats", help="How often reviews and appeals overturned an action"),
) -> None:
    """Open cases: automatic restricts and bans awaiting review, and open appeals."""
    if stats:
        counted = on_database(appeals.stats)
        for what, rate, counts in (
            ("appeal", counted.appeal_overturn_rate, counted.appeals),
            ("review", counted.review_overturn_rate, counted.reviews),
        ):
            shown = "no decision yet" if rate is None else f"{rate:.1%}"
            console.print(f"{what} overturn rate: {shown} ({', '.join(f'{k} {v}' for k, v in sorted(counts.items()))})")
        return
    cases = on_database(appeals.queue)
    if not cases.reviews and not cases.appeals:
        console.print("the queue is empty")
        return
    table = Table()
    for column in ("case", "kind", "account", "step / state", "reason", "source", "since (UTC)", "appeal"):
        table.add_column(column)
    for a in cases.reviews:
        table.add_row(
            str(a.id), "review", a.account_id, a.step.label, a.reason.value, a.source.value, _when(a.created_at_ms), ""
        )
    for p in cases.appeals:
        table.add_row(str(p.id), "appeal", p.account_id, p.state, "", "", _when(p.created_at_ms), p.message)
    console.print(table)
    console.print("see what users reported with `cove safety reports ACCOUNT`; decide with")
    console.print("`cove safety review CASE --confirm|--lift` or `cove safety appeal CASE --grant|--deny`")


@safety_app.command("reports")
def reports(
    account: str = typer.Argument(..., help="The account's number (+...) or its id, as `cove safety queue` shows"),
    limit: int = typer.Option(20, min=1, max=1000, help="The latest this many reports"),
) -> None:
    """What users reported about an account: by whom, when, what, and the messages a reporter chose to attach
    (decrypted by the reporter's own client; kept COVE_SAFETY_REPORT_TEXT_DAYS)."""
    who = normalise(account) if account.startswith("+") else account
    found = on_database(lambda engine: defences.reports_about(engine, who, limit))
    if found is None:
        raise CommandError(f"{account} has no account and no report names it")
    account_id, seen = found
    if not seen:
        console.print(f"no report names account {account_id}")
        return
    for r in seen:
        stranger = "" if r.contact else " (a stranger to them)"
        where = f" in group {r.group_id}" if r.group_id else ""
        ids = f", messages {', '.join(i[:8] for i in r.message_ids)}" if r.message_ids else ""
        console.print(f"[bold]{_when(r.created_at_ms)}[/bold] {r.kind} report by {r.reporter}{stranger}{where}{ids}")
        for sender, sent_at, text in r.attached:
            console.print(f"    {_when(sent_at)} {sender[:8]}: {escape(text)}")
        if not r.attached:
            console.print("    [dim]no message attached (or its time ran out)[/dim]")


def _short(note: str | None) -> None:
    if note is not None and len(note) > MAX_APPEAL_CHARS:
        raise CommandError(f"a note has {MAX_APPEAL_CHARS} characters at most")


def _one_of(first: bool, second: bool, names: str) -> bool:
    if first == second:
        raise CommandError(f"say exactly one of {names}")
    return first


@safety_app.command("review")
def review(
    case: int = typer.Argument(..., help="The case number of a review in `cove safety queue`"),
    confirm: bool = typer.Option(False, "--confirm", help="The action was right: keep it"),
    lift_it: bool = typer.Option(False, "--lift", help="The action was wrong: lift it"),
    note: str | None = typer.Option(None, "--note", help="Why, for the record"),
) -> None:
    """Confirm or lift an automatic restrict or ban."""
    keep = _one_of(confirm, lift_it, "--confirm and --lift")
    _short(note)
    try:
        action = on_database(lambda engine: appeals.review(engine, case, keep, note))
    except appeals.CaseNotOpen:
        raise CommandError(f"review {case} is not in the queue (see `cove safety queue`)") from None
    console.print(f"{'confirmed' if keep else 'lifted'} the {action.step.label} of account {action.account_id}; {SOON}")


@safety_app.command("appeal")
def appeal(
    case: int = typer.Argument(..., help="The case number of an appeal in `cove safety queue`"),
    grant: bool = typer.Option(False, "--grant", help="Lift every step and the ban: the number gets its account back"),
    deny: bool = typer.Option(False, "--deny", help="Keep the action"),
    note: str | None = typer.Option(None, "--note", help="Why, for the record"),
) -> None:
    """Grant or deny an open appeal."""
    granted = _one_of(grant, deny, "--grant and --deny")
    _short(note)
    try:
        decided = on_database(lambda engine: appeals.decide_appeal(engine, case, granted, note))
    except appeals.CaseNotOpen:
        raise CommandError(f"appeal {case} is not open (see `cove safety queue`)") from None
    if granted:
        console.print(f"granted appeal {case}: account {decided.account_id} is restored and may register again; {SOON}")
    else:
        console.print(f"denied appeal {case} of account {decided.account_id}")


SHIPPED_MODEL = Path(__file__).parent / "model" / "detector.txt"
FALSE_POSITIVE_RATES = (1e-2, 1e-3, 1e-4)


@safety_app.command("train")
def train(
    accounts: int = typer.Option(50_000, min=100, max=2_000_000, help="Simulated accounts"),
    seed: int = typer.Option(7, help="The simulation's seed (a run is a pure function of it and the parameters)"),
    days: int = typer.Option(2, min=1, max=60, help="Simulated days (cove.safety.training.DAYS)"),
    out: Path = typer.Option(SHIPPED_MODEL, help="Where to write the model (LightGBM text format)"),
    parameters: Path | None = typer.Option(None, help="A simulator parameter file instead of the shipped one"),
) -> None:
    """Train the detector's model on simulated accounts, write it, and print how it does on those it never saw.

    It acts on an account the first time its score crosses the threshold or a rule fires, as the relay does,
    and prints recall per abuse type and the share of each legitimate population acted on.
    """
    # Imported here: numpy and LightGBM would slow every other `cove` command's start.
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from cove.safety import training
    from cove.safety.simulation.config import ConfigError, load
    from cove.safety.simulation.generator import simulate

    try:
        config = load(parameters)
        simulation = simulate(replace(config, days=days), seed, accounts)
    except ConfigError as e:
        err.print(str(e))
        raise typer.Exit(1) from None
    span = simulation.end_ms - simulation.start_ms
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[events]:,} events"))
    with Progress(*columns, TimeElapsedColumn(), console=err, transient=True) as bar:
        task = bar.add_task("replaying the simulation", total=span, events=0)

        def advance(events: int, at_ms: int) -> None:
            bar.update(task, completed=max(0, at_ms - simulation.start_ms), events=events)

        dataset = training.replay(simulation.accounts, simulation.events(), progress=advance)
        bar.update(task, description="training the trees", completed=span)
        learn, held = training.split(dataset, 0.2, seed)
        try:
            model = training.fit(learn, simulation.accounts, seed)
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
    table.add_row("legitimate accounts a rule fires on", *([str(result.legitimate_ruled)] * len(FALSE_POSITIVE_RATES)))
    for group in result.recall[FALSE_POSITIVE_RATES[0]]:
        table.add_row(f"recall: {group}", *(f"{result.recall[r][group]:.3f}" for r in FALSE_POSITIVE_RATES))
    for group in result.flagged[FALSE_POSITIVE_RATES[0]]:
        table.add_row(f"flagged: {group}", *(f"{result.flagged[r][group]:.4f}" for r in FALSE_POSITIVE_RATES))
    console.print(table)
