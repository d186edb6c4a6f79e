"""Operator commands on the relay's database: `cove policy publish|status|check`, `cove ledger verify|export`."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from cove.clock import now_ms
from cove.config import Settings
from cove.consent import service, storage
from cove.consent.ledger_cli import export as ledger_export
from cove.consent.ledger_cli import verify as ledger_verify
from cove.consent.lint_cli import check as lint_check
from cove.consent.policy import PolicyError, load_policy
from cove.consent.status import rollout_status
from cove.db import create_engine, migrate
from cove.errors import ApiError

console = Console()
err = Console(stderr=True)

policy_app = typer.Typer(
    help="Privacy policies: check against the law, publish, follow the rollout.", no_args_is_help=True
)
ledger_app = typer.Typer(help="The tamper-evident consent ledger: verify it, export receipts.", no_args_is_help=True)
policy_app.command("check")(lint_check)
ledger_app.command("verify")(ledger_verify)
ledger_app.command("export")(ledger_export)


async def _engine():  # noqa: ANN202
    engine = create_engine(Settings().resolved_database_url)
    await migrate(engine)
    return engine


@policy_app.command("publish")
def publish(file: Path = typer.Argument(..., help="The policy TOML file")) -> None:
    """Store a policy version and start its rollout; its waves open by their start times.

    Nothing is written per account: a notice is due to an account when a started wave includes it.
    """

    async def run() -> None:
        engine = await _engine()
        try:
            await service.publish(engine, policy)
        finally:
            await engine.dispose()

    try:
        policy = load_policy(file)
        asyncio.run(run())
    except PolicyError as exc:
        for path, message in exc.problems:
            err.print(f"{exc.source}: {path}: {message}")
        raise typer.Exit(2) from exc
    except ApiError as exc:
        err.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(1) from exc
    waves = ", ".join(f"{w.name} at {w.start.isoformat()}" for w in policy.rollout.waves)
    console.print(f"published {policy.version} ({policy.title}); waves: {waves}")


@policy_app.command("status")
def status(version: str = typer.Option(None, help="Only this version [default: every published version]")) -> None:
    """Rollout progress per wave (eligible, served, accepted) and choices per purpose."""

    async def run() -> list:
        engine = await _engine()
        try:
            async with engine.connect() as conn:
                policies = await storage.load_policies(conn)
                chosen = [p for p in policies if version in (None, p.version)]
                return [await rollout_status(conn, p, now_ms()) for p in chosen]
        finally:
            await engine.dispose()

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
