"""Operator commands on the relay's database: `cove policy publish|status|check`, `cove ledger verify|export`."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from cove.cli_guard import CommandError, err
from cove.clock import now_ms
from cove.consent import service, storage
from cove.consent.ledger_cli import export as ledger_export
from cove.consent.ledger_cli import verify as ledger_verify
from cove.consent.lint import Profile, Severity, lint
from cove.consent.lint_cli import LAW, finding_line
from cove.consent.lint_cli import check as lint_check
from cove.consent.policy import PolicyError, load_policy
from cove.consent.status import rollout_status
from cove.operator import relay_database

console = Console()

policy_app = typer.Typer(
    help="Privacy policies: check against the law, publish, follow the rollout.", no_args_is_help=True
)
ledger_app = typer.Typer(help="The tamper-evident consent ledger: verify it, export receipts.", no_args_is_help=True)
policy_app.command("check")(lint_check)
ledger_app.command("verify")(ledger_verify)
ledger_app.command("export")(ledger_export)


@policy_app.command("publish")
def publish(
    file: Path = typer.Argument(..., help="The policy TOML file"),
    law: Profile = LAW,
    force: bool = typer.Option(False, "--force", help="Publish even though the linter finds errors"),
) -> None:
    """Check a policy as `cove policy check` does, then store it and start its rollout.

    The linter's findings are shown either way; a policy with errors is refused unless --force is given. Its waves
    open by their start times. Nothing is written per account: a notice is due to an account when a started wave
    includes it.
    """

    async def run() -> None:
        async with relay_database() as engine:
            await service.publish(engine, policy)

    try:
        policy = load_policy(file)
    except PolicyError as exc:
        for path, message in exc.problems:
            err.print(f"{exc.source}: {path}: {message}")
        raise typer.Exit(2) from exc
    findings = lint(policy, law)
    for finding in findings:
        typer.echo(finding_line(finding), err=True)
    errors = sum(f.severity == Severity.ERROR for f in findings)
    if errors and not force:
        raise CommandError(
            f"{file} breaks {errors} requirement(s) under {law}: not published. "
            "Fix the policy, or publish it anyway with --force."
        )
    if errors:
        err.print(f"[yellow]warning:[/yellow] publishing despite {errors} error(s) under {law} (--force)")
    asyncio.run(run())
    waves = ", ".join(f"{w.name} at {w.start.isoformat()}" for w in policy.rollout.waves)
    console.print(f"published {policy.version} ({policy.title}); waves: {waves}")


@policy_app.command("status")
def status(version: str = typer.Option(None, help="Only this version [default: every published version]")) -> None:
    """Rollout progress per wave (eligible, served, accepted) and choices per purpose."""

    async def run() -> list:
        async with relay_database() as engine, engine.connect() as conn:
            policies = await storage.load_policies(conn)
            chosen = [p for p in policies if version in (None, p.version)]
            return [await rollout_status(conn, p, now_ms()) for p in chosen]

    reports = asyncio.run(run())
    if not reports:
        err.print("no policy is published" if version is None else f"no published policy has version {version!r}")
        raise typer.Exit(1)
    for report in reports:
        waves = Table(title=f"policy {report.version}: waves")
        for column in ("wave", "opens", "open", "eligible", "served", "accepted"):
            waves.add_column(column, justify="right" if column in ("eligible", "served", "accepted") else "left")
        for w in report.waves:
            waves.add_row(
                w.name, w.start, "yes" if w.opened else "not yet", str(w.eligible), str(w.served), str(w.accepted)
            )
        console.print(waves)
        purposes = Table(title=f"policy {report.version}: choices")
        for column in ("purpose", "opted in", "opted out", "objected", "choices still open", "closing within 7 days"):
            purposes.add_column(column, justify="left" if column == "purpose" else "right")
        for p in report.purposes:
            purposes.add_row(
                p.id, str(p.opted_in), str(p.opted_out), str(p.objected), str(p.open_choices), str(p.closing_soon)
            )
        console.print(purposes)
