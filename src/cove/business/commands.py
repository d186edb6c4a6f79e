"""Operator commands: `cove business verify|templates|approve|reject`."""

from __future__ import annotations

import json

import typer
from rich.console import Console

from cove.business import service, tiers
from cove.business.gateway.commands import gateway_app
from cove.business.keys import BusinessKeys
from cove.cli_guard import err
from cove.config import Settings
from cove.operator import on_database
from cove.protocol.templates import ReviewStatus

console = Console()

business_app = typer.Typer(help="Business messaging: verify businesses, review their templates.", no_args_is_help=True)
business_app.add_typer(gateway_app, name="gateway")


@business_app.command("verify")
def verify(phone_number: str = typer.Argument(..., help="The business's number, e.g. +14155550123")) -> None:
    """Verify a business: its profile shows the verified badge (until it changes its display name)."""
    row = on_database(lambda engine: service.verify(engine, phone_number))
    console.print(f"verified {row.display_name!r} (account {row.account_id})")


@business_app.command("templates")
def templates(
    status: ReviewStatus = typer.Option(None, help="Only templates in this status, e.g. PENDING"),
) -> None:
    """Templates of every business, oldest first: id, status, version, business, name, lint warnings."""
    listed = on_database(lambda engine: service.list_templates(engine, status))
    if not listed:
        console.print("no template" + (f" is {status.value}" if status else ""))
        return
    # One line per template, not a table: the ids must survive narrow terminals whole, to be copied.
    for item in listed:
        r = item.row
        warnings = ", ".join(f["code"] for f in json.loads(r.findings)) or "none"
        business = item.business_name or r.business_id
        typer.echo(
            f"{r.template_id}  {r.status:<8}  v{r.version}  {business!r}  {r.name} ({r.language}, {r.category})"
            f"  warnings: {warnings}"
        )


@business_app.command("approve")
def approve(template_id: str = typer.Argument(..., help="The template's id (`cove business templates`)")) -> None:
    """Approve a pending template: a new version, signed with the server's key for clients to verify."""
    # The keys are read once the database is found: they live in the relay's data directory, not a new one.
    row = on_database(
        lambda engine: service.approve(engine, BusinessKeys.load_or_create(Settings().data_dir), template_id)
    )
    console.print(f"approved {row.name} ({row.language}) version {row.version}, template {row.template_id}")


@business_app.command("reject")
def reject(
    template_id: str = typer.Argument(..., help="The template's id"),
    reason: str = typer.Option(..., help="Why: shown to the business"),
) -> None:
    """Reject a pending template, saying why."""
    if not reason.strip():
        err.print("[red]error:[/red] give a reason")
        raise typer.Exit(2)
    row = on_database(lambda engine: service.reject(engine, template_id, reason.strip()))
    console.print(f"rejected {row.name} ({row.language}): {row.rejected_reason}")


TIER_NAMES = {"250": tiers.Tier.T250, "2k": tiers.Tier.T2K, "10k": tiers.Tier.T10K, "100k": tiers.Tier.T100K}
TIER_NAMES["unlimited"] = tiers.Tier.UNLIMITED


@business_app.command("limits")
def set_limits(
    phone_number: str = typer.Argument(..., help="The business's number"),
    tier: str = typer.Option(None, help="Messaging tier: 250, 2k, 10k, 100k or unlimited"),
    throughput: int = typer.Option(None, min=1, max=10_000, help="Messages per second for this number"),
) -> None:
    """Set a business's messaging tier or throughput by hand (they move by themselves from there)."""
    if tier is None and throughput is None:
        err.print("[red]error:[/red] give --tier, --throughput or both")
        raise typer.Exit(2)
    if tier is not None and tier.lower() not in TIER_NAMES:
        err.print(f"[red]error:[/red] unknown tier {tier!r}; one of {', '.join(TIER_NAMES)}")
        raise typer.Exit(2)
    chosen = TIER_NAMES[tier.lower()] if tier is not None else None
    row = on_database(lambda engine: service.set_limits(engine, phone_number, chosen, throughput))
    limit = tiers.LIMITS[tiers.Tier(row.tier)]
    console.print(
        f"{row.display_name!r}: up to {'unlimited' if limit is None else f'{limit:,}'} users a day outside"
        f" service windows, {row.throughput_mps} messages/s"
    )
