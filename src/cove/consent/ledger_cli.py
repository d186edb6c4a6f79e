"""``cove ledger verify`` and ``cove ledger export``: check the consent ledger, hand a person their receipts.

The export is shaped after ISO/IEC TS 27560:2023 (consent record information structure): one record per
consent event with the record's identifiers and schema version, the notice (policy version and text hash),
the purpose and legal basis, the event (type, time, method, surface) and the ledger hash that lets anyone
holding the export recompute the chain. It is "shaped after", not a conformance claim.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy.ext.asyncio import AsyncConnection

from cove.cli_guard import err
from cove.clock import now_ms, to_datetime
from cove.consent import ledger, ledger_storage
from cove.consent.ledger import Entry
from cove.operator import relay_database

RECEIPT_SCHEMA = "cove.consent-receipt"
RECEIPT_SCHEMA_VERSION = "1.0"
STANDARD = "ISO/IEC TS 27560:2023 (shaped after: consent record information structure)"

_GIVEN = {"in", "yes", "true", "accept", "accepted", "agree", "agreed", "allow", "given", "grant", "granted", "opt_in"}
_REFUSED = {"out", "no", "false", "reject", "rejected", "decline", "declined", "deny", "denied", "refused", "opt_out"}


# --- verify ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verification:
    """What a verification of the whole ledger found (`cove ledger verify`, the console's button)."""

    entries: int
    checkpoints: int
    problems: list[ledger.Problem]


async def check_ledger(conn: AsyncConnection, on_rows: Callable[[int], None] | None = None) -> Verification:
    """Load every entry and checkpoint and verify them; ``on_rows(n)`` is told as rows arrive."""
    loaded = await ledger_storage.load_all(conn, on_rows)
    # hashing every entry is seconds of CPU on a large ledger: off the event loop, so a server keeps answering
    problems = await asyncio.to_thread(ledger.verify, loaded.entries, loaded.checkpoints)
    return Verification(len(loaded.entries), len(loaded.checkpoints), problems)


async def _verify() -> Verification:
    async with relay_database() as engine, engine.connect() as conn:
        entries, checkpoints = await ledger_storage.count(conn)
        progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
            transient=True,
            disable=not err.is_terminal,
        )
        with progress:  # the bar fills as rows arrive; the hash checks after it take a moment more
            task = progress.add_task("checking the consent ledger", total=entries + checkpoints)
            return await check_ledger(conn, lambda n: progress.advance(task, n))


def verify() -> None:
    """Check the consent ledger: every entry's hash and link, and every checkpoint. Exit 1 on any problem."""
    found = asyncio.run(_verify())
    entries, checkpoints, problems = found.entries, found.checkpoints, found.problems
    if not problems:
        typer.echo(f"ledger intact: {entries} entries, {checkpoints} checkpoints")
        return
    typer.echo(f"ledger NOT intact: {len(problems)} problems in {entries} entries, {checkpoints} checkpoints")
    for problem in problems:
        typer.echo(f"  {problem}")
    raise typer.Exit(1)


# --- export ----------------------------------------------------------------------------------------------


def _iso(ms: int) -> str:
    return to_datetime(ms).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event_type(entry: Entry) -> str:
    """The consent event an entry records: given, refused, withdrawn, objected or notice_served."""
    if entry.kind == ledger.NOTICE_SERVED:
        return "notice_served"
    if entry.kind == ledger.TERMS_ACCEPTED:
        return "given"
    if entry.kind == ledger.WITHDRAWAL:
        return "withdrawn"
    if entry.kind == ledger.OBJECTION:
        return "objected"
    if entry.kind == ledger.CHOICE:
        value = entry.payload.get("value")
        word = str(value).strip().lower() if value is not None else ""
        if value is True or word in _GIVEN:
            return "given"
        if value is False or word in _REFUSED:
            return "refused"
        return "choice_recorded"
    return entry.kind


def _present(**fields: Any) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


def receipt(entry: Entry) -> dict[str, Any]:
    """One consent record for one ledger entry, shaped after ISO/IEC TS 27560."""
    p = entry.payload
    return {
        "schema_version": RECEIPT_SCHEMA_VERSION,
        "record_id": f"{entry.account_id}/{entry.seq}",
        "pii_principal_id": entry.account_id,
        "notice": _present(
            policy_version=p.get("policy_version"),
            text_hash=p.get("text_hash"),
            locale=p.get("locale"),
        ),
        "processing": _present(
            purpose=p.get("purpose"),
            purposes=p.get("purposes"),
            legal_basis=p.get("legal_basis"),
            recipients=p.get("recipients"),
        ),
        "event": _present(
            event_type=event_type(entry),
            event_time=_iso(entry.at_ms),
            event_time_ms=entry.at_ms,
            event_by="pii_principal" if entry.kind != ledger.NOTICE_SERVED else "pii_controller",
            value=p.get("value"),
            method=p.get("method"),
            surface=p.get("surface"),
            locale=p.get("locale"),
            app_version=p.get("app_version"),
        ),
        "payload": p,
        "ledger": {
            "entry_id": entry.id,
            "seq": entry.seq,
            "kind": entry.kind,
            "at_ms": entry.at_ms,
            "prev_hash": entry.prev_hash,
            "hash": entry.hash,
        },
    }


def receipts_document(account_id: str, entries: list[Entry], generated_at_ms: int) -> dict[str, Any]:
    """The export for one person: every consent record, and what is needed to check them."""
    problems = ledger.verify(entries, [])
    return {
        "schema": RECEIPT_SCHEMA,
        "schema_version": RECEIPT_SCHEMA_VERSION,
        "standard": STANDARD,
        "pii_principal_id": account_id,
        "generated_at": _iso(generated_at_ms),
        "verification": {
            "hash_algorithm": "sha256",
            "genesis": ledger.GENESIS,
            "canonical_form": "UTF-8 JSON with sorted keys and no whitespace of "
            '{"v": 1, "account_id", "seq", "kind", "payload", "at_ms", "prev_hash"}; '
            "each entry's prev_hash is the previous entry's hash, the first's is the genesis value",
            "head_hash": entries[-1].hash if entries else None,
            "chain_intact": not problems,
            "scope": "this account's hash chain; `cove ledger verify` also checks the global checkpoints "
            "that bind every account's newest entry",
            "problems": [str(p) for p in problems],
        },
        "records": [receipt(e) for e in entries],
    }


async def _export(account: str) -> list[Entry]:
    async with relay_database() as engine, engine.connect() as conn:
        return await ledger_storage.load_account(conn, account)


def export(
    account: str = typer.Option(..., "--account", help="Account id whose consent receipts to export"),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write the JSON here instead of stdout"),
) -> None:
    """Export an account's consent receipts as JSON (one record per consent event, after ISO/IEC TS 27560)."""
    entries = asyncio.run(_export(account))
    if not entries:
        err.print(f"[red]error:[/red] the consent ledger has no entries for account {escape(repr(account))}")
        raise typer.Exit(1)
    document = json.dumps(receipts_document(account, entries, now_ms()), indent=2, ensure_ascii=False)
    if output is None:
        typer.echo(document)
    else:
        output.write_text(document + "\n", encoding="utf-8")
        err.print(escape(f"wrote {len(entries)} consent records for account {account} to {output}"))
