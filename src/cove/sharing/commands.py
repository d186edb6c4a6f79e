"""Operator commands: `cove share keys|export|deliver|acks|status`."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select

from cove.config import Settings
from cove.db import create_engine, migrate
from cove.sharing import erasure, gateway, sinks, wire
from cove.sharing.keys import SharingKeys
from cove.sharing.storage import sharing_batches, sharing_erasures

console = Console()
err = Console(stderr=True)

share_app = typer.Typer(
    help="Share data with a recipient named in the privacy policy, only as each purpose and each user permit.",
    no_args_is_help=True,
)

RECIPIENT = typer.Option(..., "--recipient", "-r", help="A recipient id from the published policy (e.g. parent)")
OUTBOX = typer.Option(None, help="Batch directory [default: DATA_DIR/sharing/<recipient>]")
NATS_URL = typer.Option(sinks.DEFAULT_NATS_URL, "--nats-url", help="NATS server with JetStream")


def _outbox(settings: Settings, recipient: str, outbox: Path | None) -> Path:
    return outbox or settings.data_dir / "sharing" / recipient


def _fail(message: str) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}")
    return typer.Exit(1)


async def _engine(settings: Settings):  # noqa: ANN202
    engine = create_engine(settings.resolved_database_url)
    await migrate(engine)
    return engine


@share_app.command()
def keys(
    recipient: str = RECIPIENT,
    out: Path = typer.Option(..., "--out", help="Where to write the trust bundle (JSON)"),
) -> None:
    """Write the recipient's trust bundle: the key that verifies batches, and its phone-hash key.

    Hand it to the recipient once, out of band; it is what `cove partner ingest` trusts.
    """
    settings = Settings()
    bundle = SharingKeys.load_or_create(settings.data_dir).trust_bundle(recipient)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(wire.canonical_json(bundle.model_dump(mode="json")))
    key = wire.key_id(bundle.public_key())
    console.print(f"Trust bundle for [bold]{recipient}[/bold] written to {out} (signing key id {key}); keep it secret.")


@share_app.command()
def export(
    recipient: str = RECIPIENT,
    since: str = typer.Option(
        None, "--since", help="Incremental: changes since this batch id ('last' for the latest); default: full"
    ),
    nats: bool = typer.Option(False, "--nats", help="Also publish the batch (and any unpublished ones) to NATS"),
    nats_url: str = NATS_URL,
    outbox: Path = OUTBOX,
) -> None:
    """Write the recipient's next batch: permitted accounts only, declared fields only, signed."""
    settings = Settings()
    folder = _outbox(settings, recipient, outbox)

    async def run() -> gateway.ExportResult:
        engine = await _engine(settings)
        try:
            since_batch = since
            if since == "last":
                async with engine.connect() as conn:
                    previous = await gateway.last_batch(conn, recipient)
                if previous is None:
                    raise gateway.ExportError(f"nothing was sent to {recipient!r} yet; run a full export first")
                since_batch = previous.batch_id
            keys_ = SharingKeys.load_or_create(settings.data_dir)
            with console.status(f"Exporting for {recipient}..."):
                result = await gateway.export(engine, keys_, recipient, folder, since_batch=since_batch)
            if nats:
                published = await sinks.publish_pending(engine, recipient, folder, nats_url)
                console.print(f"Published {len(published)} batch(es) to NATS at {nats_url}")
            return result
        finally:
            await engine.dispose()

    try:
        result = asyncio.run(run())
    except gateway.ExportError as exc:
        raise _fail(str(exc)) from None
    except OSError as exc:
        raise _fail(f"NATS or the outbox is unreachable: {exc}") from None
    table = Table(title=f"Batch {result.manifest.batch_id} ({result.manifest.kind}) in {result.path}")
    table.add_column("purpose")
    table.add_column("use")
    table.add_column("rows", justify="right")
    for entry in result.manifest.purposes:
        table.add_row(entry.id, entry.use.value, f"{result.rows[entry.id]:,}")
    table.add_row("revocations", "", f"{result.manifest.revocations.rows:,}")
    console.print(table)
    rate = result.total_rows / result.seconds if result.seconds else 0
    console.print(f"{result.total_rows:,} rows in {result.seconds:.2f} s ({rate:,.0f} rows/s)")


@share_app.command()
def deliver(recipient: str = RECIPIENT, nats_url: str = NATS_URL, outbox: Path = OUTBOX) -> None:
    """Publish every batch not yet on NATS, oldest first (at-least-once; recipients drop duplicates)."""
    settings = Settings()

    async def run() -> list[str]:
        engine = await _engine(settings)
        try:
            return await sinks.publish_pending(engine, recipient, _outbox(settings, recipient, outbox), nats_url)
        finally:
            await engine.dispose()

    try:
        published = asyncio.run(run())
    except OSError as exc:
        raise _fail(f"NATS at {nats_url} is unreachable: {exc}") from None
    console.print(f"Published {len(published)} batch(es)" + (f": {', '.join(published)}" if published else ""))


@share_app.command()
def acks(
    recipient: str = RECIPIENT,
    nats: bool = typer.Option(False, "--nats", help="Read acknowledgements from NATS instead of the outbox"),
    nats_url: str = NATS_URL,
    outbox: Path = OUTBOX,
) -> None:
    """Record the recipient's acknowledgements of erasures (from OUTBOX/acks or NATS)."""
    settings = Settings()

    async def run() -> int:
        engine = await _engine(settings)
        try:
            if nats:
                received = await sinks.fetch_nats_acks(recipient, nats_url)
            else:
                received = sinks.directory_acks(_outbox(settings, recipient, outbox))
            return await erasure.apply_acks(engine, [a for a in received if a.recipient == recipient])
        finally:
            await engine.dispose()

    try:
        newly = asyncio.run(run())
    except OSError as exc:
        raise _fail(f"NATS at {nats_url} is unreachable: {exc}") from None
    console.print(f"{newly} erasure(s) newly acknowledged by {recipient}")


@share_app.command()
def status(recipient: str = RECIPIENT) -> None:
    """Batches sent to the recipient, and erasures it has not acknowledged yet."""
    settings = Settings()

    async def run():  # noqa: ANN202
        engine = await _engine(settings)
        try:
            async with engine.connect() as conn:
                batches = (
                    await conn.execute(
                        select(sharing_batches)
                        .where(sharing_batches.c.recipient == recipient)
                        .order_by(sharing_batches.c.sequence.desc())
                        .limit(20)
                    )
                ).all()
                e = sharing_erasures
                pending = (
                    await conn.execute(
                        select(func.count()).where(e.c.recipient == recipient, e.c.acked_at_ms.is_(None))
                    )
                ).scalar()
                unsent = (
                    await conn.execute(
                        select(func.count()).where(e.c.recipient == recipient, e.c.sent_batch_id.is_(None))
                    )
                ).scalar()
            return batches, pending, unsent
        finally:
            await engine.dispose()

    batches, pending, unsent = asyncio.run(run())
    table = Table(title=f"Last batches sent to {recipient}")
    for name in ("seq", "batch", "kind", "rows", "revocations", "on NATS"):
        table.add_column(name)
    for b in batches:
        table.add_row(
            str(b.sequence),
            b.batch_id,
            b.kind,
            f"{b.rows:,}",
            f"{b.revocations:,}",
            "yes" if b.published_nats_at_ms else "no",
        )
    console.print(table)
    console.print(f"Erasures awaiting acknowledgement: {pending} ({unsent} not sent yet)")
