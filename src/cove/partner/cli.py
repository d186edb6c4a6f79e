"""``cove partner``: run the parent company's side: ingest shared batches, build audiences, sweep, inspect.

The commands open the partner's own DuckDB store (``--store``, env COVE_PARTNER_STORE) and read the trust bundle
the messenger handed over (``--trust``, env COVE_PARTNER_TRUST). Errors are one line on stderr and exit 1: a
rejected batch prints ``error: <code>: <message>`` so scripts can tell a broken chain from a bad signature.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import typer
from nats import errors as nats_errors
from rich.table import Table

from cove.partner.analytics_cli import register as register_analytics
from cove.partner.audiences import build_audiences
from cove.partner.ingest import IngestReport, ingest_directory, ingest_nats, sweep, transaction
from cove.partner.signals import signals_app
from cove.partner.terminal import STORE, TRUST, console, err, fail, now_ms, open_or_fail, say, trust_or_fail
from cove.sharing import wire

DEFAULT_NATS_URL = "nats://127.0.0.1:4222"


partner_app = typer.Typer(
    help="The parent company's partner service: ingest what the messenger shares, and use it only as permitted.",
    no_args_is_help=True,
)


def _print_report(report: IngestReport) -> None:
    if report.already_applied:
        say(f"batch #{report.sequence} {report.batch_id}: already applied, acknowledged again")
        return
    parts = [f"{report.rows_applied} rows", f"{report.revocations_applied} revocations"]
    if report.erasures:
        parts.append(f"{len(report.erasures)} erasures acknowledged")
    if report.sweep is not None and (report.sweep.profiles_deleted or report.sweep.usage_deleted):
        parts.append(f"{report.sweep.profiles_deleted + report.sweep.usage_deleted} rows past retention deleted")
    if report.safety is not None and report.safety.newly_blocked:
        parts.append(f"{report.safety.newly_blocked} users blocked for safety")
    say(f"batch #{report.sequence} {report.batch_id} ({report.kind}): applied, {', '.join(parts)}")


@partner_app.command()
def ingest(
    directory: Path = typer.Argument(None, help="A batch directory, or a sink directory holding batch directories"),
    nats: bool = typer.Option(False, "--nats", help="Consume batches from NATS JetStream instead of a directory"),
    nats_url: str = typer.Option(DEFAULT_NATS_URL, "--nats-url", help="NATS server with JetStream"),
    follow: bool = typer.Option(False, "--follow", help="With --nats: keep waiting for new batches (Ctrl-C stops)"),
    store: Path = STORE,
    trust: Path = TRUST,
) -> None:
    """Verify and apply the messenger's signed batches, in chain order, and acknowledge them."""
    if (directory is None) == (not nats):
        raise fail("give either a batch or sink DIRECTORY, or --nats")
    if follow and not nats:
        raise fail("--follow needs --nats")
    bundle = trust_or_fail(trust)
    conn = open_or_fail(store)
    try:
        if nats:
            with err.status(f"consuming batches for {bundle.recipient} from {nats_url}", spinner="dots"):
                reports = asyncio.run(ingest_nats(conn, bundle, nats_url, follow=follow, on_report=_print_report))
        else:
            if not directory.is_dir():
                raise fail(f"{directory} is not a directory")
            with err.status(f"applying batches from {directory}", spinner="dots"):
                reports = ingest_directory(conn, directory, bundle, now_ms(), on_report=_print_report)
    except wire.BadBatch as exc:
        raise fail(f"{exc.code}: {exc}") from None
    except nats_errors.Error as exc:
        raise fail(f"NATS at {nats_url}: {exc}") from None
    except OSError as exc:
        raise fail(str(exc)) from None
    except KeyboardInterrupt:
        err.print("stopped")
        return
    finally:
        conn.close()
    if not reports:
        say("no new batches")


@partner_app.command()
def audiences(store: Path = STORE) -> None:
    """Rebuild the ad audiences from advertising purposes only, and print each segment's size."""
    conn = open_or_fail(store)
    try:
        with err.status("building audiences", spinner="dots"):
            sizes = build_audiences(conn, now_ms())
    finally:
        conn.close()
    if not sizes:
        say("no audiences: no subject is shared for advertising")
        return
    table = Table(title="Audiences")
    table.add_column("segment")
    table.add_column("subjects", justify="right")
    for segment, size in sizes.items():
        table.add_row(segment, f"{size:,}")
    console.print(table)


@partner_app.command(name="sweep")
def sweep_command(store: Path = STORE) -> None:
    """Delete shared rows older than their purpose's retention, with what was derived from them."""
    conn = open_or_fail(store)
    try:
        with err.status("sweeping", spinner="dots"), transaction(conn):
            report = sweep(conn, now_ms())
    finally:
        conn.close()
    say(f"deleted {report.profiles_deleted} profile rows and {report.usage_deleted} usage rows")


@partner_app.command()
def status(store: Path = STORE) -> None:
    """Show the applied batch chain, rows held per purpose and erasures applied."""
    conn = open_or_fail(store)
    try:
        batches = conn.execute(
            """SELECT sequence, batch_id, kind, as_of_ms, rows_applied, revocations_applied
               FROM applied_batches ORDER BY sequence DESC LIMIT 10"""
        ).fetchall()
        (total,) = conn.execute("SELECT count(*) FROM applied_batches").fetchone()
        purposes = conn.execute(
            """SELECT p.purpose, p.use, p.retention_days,
                      (SELECT count(*) FROM shared_profiles s WHERE s.purpose = p.purpose),
                      (SELECT count(*) FROM shared_usage u WHERE u.purpose = p.purpose)
               FROM shared_purposes p ORDER BY p.purpose"""
        ).fetchall()
        (erasures,) = conn.execute("SELECT count(*) FROM applied_erasures").fetchone()
    finally:
        conn.close()
    if not total:
        say("no batch applied yet")
        return
    chain = Table(title=f"Applied batches (latest {len(batches)} of {total})")
    for column in ("#", "batch", "kind", "as of (UTC)", "rows", "revoked"):
        chain.add_column(column, justify="right" if column in ("#", "rows", "revoked") else "left")
    chain.columns[1].min_width = max(len(batch_id) for _, batch_id, *_ in batches)  # ids are copied, never cut
    for sequence, batch_id, kind, as_of, rows, revocations in batches:
        chain.add_row(str(sequence), batch_id, kind, _utc(as_of), f"{rows:,}", f"{revocations:,}")
    console.print(chain)
    held = Table(title="Shared rows held per purpose")
    for column in ("purpose", "use", "retention", "profiles", "usage rows"):
        held.add_column(column, justify="right" if column in ("profiles", "usage rows") else "left")
    for purpose, use, retention, profiles, usage in purposes:
        days = "unlimited" if retention is None else f"{retention} days"
        held.add_row(purpose, use, days, f"{profiles:,}", f"{usage:,}")
    console.print(held)
    say(f"erasures applied: {erasures:,}")


def _utc(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M")


register_analytics(partner_app)  # seed, link, suggest
partner_app.add_typer(signals_app, name="signals")
