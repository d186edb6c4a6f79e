"""Operator commands: `cove share keys|export|deliver|acks|status|partner-key`."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer
from pydantic import TypeAdapter, ValidationError
from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select

from cove.cli_guard import CommandError, err
from cove.config import Settings
from cove.keyfile import write_secret
from cove.operator import ensure_relay_database, on_database, relay_database
from cove.sharing import erasure, gateway, partner_keys, sinks, wire
from cove.sharing.keys import SharingKeys
from cove.sharing.storage import sharing_batches, sharing_erasures

console = Console()

share_app = typer.Typer(
    help="Share data with a recipient named in the privacy policy, only as each purpose and each user permit.",
    no_args_is_help=True,
)


def _recipient_id(value: str) -> str:
    """A recipient id names folders and files: only the wire format's identifiers are accepted."""
    try:
        return TypeAdapter(wire.Identifier).validate_python(value)
    except ValidationError:
        raise typer.BadParameter(
            f"{value!r} is not a recipient id: a lower-case letter, then lower-case letters, digits or _"
        ) from None


RECIPIENT = typer.Option(
    ...,
    "--recipient",
    "-r",
    callback=_recipient_id,
    help="A recipient id from the published policy (e.g. parent)",
)
OUTBOX = typer.Option(None, help="Batch directory [default: DATA_DIR/sharing/<recipient>]")
NATS_URL = typer.Option(sinks.DEFAULT_NATS_URL, "--nats-url", help="NATS server with JetStream")


def _outbox(settings: Settings, recipient: str, outbox: Path | None) -> Path:
    return outbox or settings.data_dir / "sharing" / recipient


def _fail(message: str) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}")
    return typer.Exit(1)


def trust_bundle_path(settings: Settings, recipient: str) -> Path:
    return settings.data_dir / "sharing" / f"{recipient}-trust.json"


@share_app.command()
def keys(
    recipient: str = RECIPIENT,
    out: Path = typer.Option(
        None, "--out", help="Where to write the trust bundle [default: DATA_DIR/sharing/RECIPIENT-trust.json]"
    ),
    force: bool = typer.Option(False, "--force", help="Replace a different file already at that path"),
) -> None:
    """Write the recipient's trust bundle: the key that verifies batches, and its phone-hash key.

    The phone-hash key lets its holder test a phone number against the batches, so the file is a secret: it is
    written readable by its owner only, and never over another file. Hand it to the recipient once, out of band;
    it is what `cove partner ingest` trusts.
    """
    settings = Settings()
    ensure_relay_database()  # the relay's data directory, not a new one where the command happens to run
    bundle = SharingKeys.load_or_create(settings.data_dir).trust_bundle(recipient)
    data = wire.canonical_json(bundle.model_dump(mode="json"))
    path = out or trust_bundle_path(settings, recipient)
    key = wire.key_id(bundle.public_key())
    if not force and path.is_file() and path.read_bytes() == data:
        console.print(f"{path} already holds the trust bundle for {recipient} (signing key id {key}); unchanged.")
        return
    try:
        write_secret(path, data, replace=force)
    except FileExistsError:
        raise CommandError(
            f"{path} already exists and holds something else: choose another --out, or --force"
        ) from None
    console.print(
        f"Trust bundle for [bold]{recipient}[/bold] written to {path} (signing key id {key}), readable by you only: "
        "it holds a secret, keep it out of version control."
    )


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
        async with relay_database(settings) as engine:
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
        async with relay_database(settings) as engine:
            return await sinks.publish_pending(engine, recipient, _outbox(settings, recipient, outbox), nats_url)

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
        async with relay_database(settings) as engine:
            if nats:
                received = await sinks.fetch_nats_acks(recipient, nats_url)
            else:
                received = sinks.directory_acks(_outbox(settings, recipient, outbox))
            return await erasure.apply_acks(engine, [a for a in received if a.recipient == recipient])

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
        async with relay_database(settings) as engine:
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


@share_app.command("partner-key")
def partner_key(
    path: Path = typer.Argument(..., help="The public key file the partner wrote (`cove partner signals keys`)"),
) -> None:
    """Trust a partner's key for its signed abuse signals (POST /v1/sharing/signals), replacing an older one."""
    try:
        handed = wire.PartnerKey.model_validate_json(path.read_bytes())
        handed.key()
    except OSError as exc:
        raise _fail(f"cannot read {path}: {exc.strerror}") from None
    except ValueError:
        raise _fail(f"{path} is not a partner key file (`cove partner signals keys` writes one)") from None
    key_id = on_database(lambda engine: partner_keys.register_key(engine, handed))
    console.print(
        f"signals signed by {handed.recipient} with key {key_id} are taken from now on: one input to the "
        "registration gate and the detector, never a ban by itself"
    )
