"""Operator commands about the running relay processes: ``cove relay health``."""

from __future__ import annotations

import typer
from rich import box
from rich.console import Console
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncEngine

from cove.clock import now_ms
from cove.fleet import health
from cove.fleet.health_storage import KEEP_MS
from cove.operator import on_database

console = Console()

relay_app = typer.Typer(help="The running relay processes, as they report themselves.", no_args_is_help=True)

COLUMNS = ("process", "last row", "devices", "in/s", "out/s", "p50 ms", "p99 ms", "queued")


def _cells(name: str, f: health.Figures, now: int, silent: bool) -> tuple[str, ...]:
    def maybe(value: int | None) -> str:
        return "-" if value is None else f"{value:,}"

    return (
        name,
        f"{(now - f.end_ms) / 1000:.0f} s ago" + (" (silent)" if silent else ""),
        f"{f.connected:,}",
        f"{f.accepted_per_s:,.1f}",
        f"{f.delivered_per_s:,.1f}",
        maybe(f.p50_ms),
        maybe(f.p99_ms),
        maybe(f.queue_depth),
    )


@relay_app.command("health")
def show_health(
    minutes: int = typer.Option(
        1, min=1, max=KEEP_MS // 60_000, help="Over the last N minutes: the rates and latencies of that window"
    ),
) -> None:
    """Each relay process's figures over the last minutes, and the fleet's: connected devices (now), messages
    accepted and delivered per second, delivery latency (relay accepting to the recipient's socket), queued
    envelopes. Processes write them every COVE_HEALTH_INTERVAL_SECONDS (10 s by default)."""

    async def read(engine: AsyncEngine) -> health.Latest | None:
        async with engine.connect() as conn:
            return await health.latest(conn, minutes * 60_000, now)

    now = now_ms()
    latest = on_database(read)
    if latest is None:
        console.print(f"no relay process wrote its health figures in the last {minutes} minute(s)")
        return
    table = Table(
        title=f"relay health over the last {minutes} minute(s)",
        caption="devices: connected now; in/s, out/s: messages accepted, delivered; queued: envelopes waiting",
        box=box.SIMPLE_HEAD,
    )
    for column in COLUMNS:
        table.add_column(column, justify="left" if column == "process" else "right", overflow="fold")
    for name, figures in latest.processes.items():
        table.add_row(*_cells(name, figures, now, silent=figures.silent > 0))
    fleet = latest.fleet
    table.add_section()
    label = f"fleet ({fleet.processes - fleet.silent} of {fleet.processes} writing)"
    table.add_row(*_cells(label, fleet, now, silent=False))
    console.print(table)
