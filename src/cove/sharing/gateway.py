"""The export gateway: the one way data leaves the messenger for a recipient.

For each purpose the recipient may use, it selects the permitted accounts with the consent capability's compiled
predicate (every purpose's in one pass over the consent state), projects only the fields the purpose declares
through the catalogue, applies the declared transforms, and writes a signed batch (cove.sharing.wire). A full
batch carries every permitted account; an incremental batch carries what changed since a previous batch, the
accounts that became permitted, and revocations for those that stopped being permitted. Reading is one
consistent snapshot (cove.sharing.selection); the disclosure log, the held sets and the batch chain are then
written in one transaction, and the batch directory appears (by rename) only after that commit.
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlalchemy import and_, delete, exists, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cove.clock import now_ms
from cove.consent.policy import Policy
from cove.consent.storage import consent_accounts, consent_purposes, load_policies
from cove.sharing import bitmaps, catalogue, wire
from cove.sharing import revocations as revocations_log
from cove.sharing.keys import SharingKeys
from cove.sharing.plan import PlanError, PurposePlan, plan_purposes
from cove.sharing.selection import Reader, policies_published_since, scope_changes, unique
from cove.sharing.snapshot import Snapshot
from cove.sharing.storage import (
    sharing_batches,
    sharing_disclosures,
    sharing_erasures,
    sharing_held,
    sharing_subjects,
)

subjects = sharing_subjects
accounts, verdicts = catalogue.accounts, catalogue.safety_verdicts
EMPTY = np.empty(0, dtype=np.int64)

# An incremental batch looks back this much before the previous batch's instant: a write stamped just before that
# instant may have committed after the previous snapshot was read. Sending such a row twice is harmless.
LATE_COMMIT_MARGIN_MS = 5 * 60_000
WRITERS = 2  # Parquet files written at once: the batch's few big files, on the two cores the targets assume


class ExportError(Exception):
    """An export that cannot run; nothing was written."""


@dataclass
class PurposeOutput:
    plan: PurposePlan
    held_after: np.ndarray  # what the recipient holds once it applied this batch
    revoked: np.ndarray
    profile: pa.Table  # ordinal, account_id, profile columns (phone in clear until pseudonymised)
    usage: pa.Table | None

    @property
    def sent(self) -> np.ndarray:
        """Ordinals whose rows are in this batch: the disclosure log entry."""
        parts = [self.profile.column("ordinal").to_numpy()]
        if self.usage is not None:
            parts.append(self.usage.column("ordinal").to_numpy())
        return unique(np.concatenate(parts))


@dataclass
class ExportResult:
    manifest: wire.Manifest
    path: Path
    seconds: float
    rows: dict[str, int] = field(default_factory=dict)

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())


def _wire_table(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Only the wire's columns, in its order: the internal ordinal and account id stay behind."""
    return table.select(schema.names).cast(schema)


def _only(table: pa.Table, ordinals: np.ndarray) -> pa.Table:
    return table.filter(pc.is_in(table.column("ordinal"), pa.array(ordinals)))


async def _assign_ordinals(engine: AsyncEngine, since_ms: int | None) -> None:
    """Give an ordinal, in one statement, to every account that could be permitted and has none.

    Only accounts that accepted a policy can be permitted for anything; for an incremental batch, only those that
    accepted since the previous one can be new, so the statement reads the acceptance index, not every account.
    """
    accepted = select(consent_accounts.c.account_id)
    # Ordered for ordinals that do not depend on the plan. By id, SQLite walks the primary key over every account
    # (1.4 s at a million); by acceptance time first, it reads just the index range of the new ones.
    order = [consent_accounts.c.account_id]
    if since_ms is not None:
        accepted = accepted.where(consent_accounts.c.accepted_at_ms > since_ms)
        order.insert(0, consent_accounts.c.accepted_at_ms)
    async with engine.begin() as conn:
        await conn.execute(
            insert(subjects).from_select(
                ["account_id"],
                accepted.where(~exists().where(subjects.c.account_id == consent_accounts.c.account_id)).order_by(
                    *order
                ),
            )
        )


async def _held(conn: AsyncConnection, recipient: str) -> dict[str, np.ndarray]:
    rows = await conn.execute(
        select(sharing_held.c.purpose, sharing_held.c.chunk, sharing_held.c.bitmap).where(
            sharing_held.c.recipient == recipient
        )
    )
    chunks: dict[str, list[tuple[int, bytes]]] = {}
    for purpose, chunk, blob in rows:
        chunks.setdefault(purpose, []).append((chunk, blob))
    return {purpose: bitmaps.decode_all(parts) for purpose, parts in chunks.items()}


@dataclass(frozen=True)
class _Job:
    """What one export reads with: the window it covers and what the recipient held before it."""

    keys: SharingKeys
    recipient: str
    plans: list[PurposePlan]
    policies: list[Policy]
    at_ms: int
    since_ms: int | None  # None: a full batch
    everything: bool  # re-evaluate every account (full batch, or a policy changed since the last one)
    held: dict[str, np.ndarray]
    erased: np.ndarray  # ordinals of deleted accounts: their erasure event covers every purpose


def _select(snapshot: Snapshot, job: _Job) -> list[PurposeOutput]:
    """Runs in a worker thread: the snapshot's reader process, DuckDB and Arrow do the work off the event loop."""
    scope = None
    if not job.everything:
        assert job.since_ms is not None
        scope = scope_changes(job.policies, job.plans, job.since_ms, job.at_ms)
    reader = Reader(snapshot, job.keys, job.recipient, job.plans, job.at_ms, scope)
    try:
        evaluated = None
        if scope is not None:
            evaluated = unique(reader.duck.sql("SELECT ordinal FROM subjects").to_arrow_table().column(0).to_numpy())
        return [_purpose_output(reader, job, plan, evaluated) for plan in job.plans]
    finally:
        reader.close()


def _purpose_output(reader: Reader, job: _Job, plan: PurposePlan, evaluated: np.ndarray | None) -> PurposeOutput:
    selected = reader.select(plan)
    before = np.setdiff1d(job.held.get(plan.id, EMPTY), job.erased, assume_unique=True)
    permitted = selected.permitted
    in_scope = before if evaluated is None else np.intersect1d(before, evaluated, assume_unique=True)
    revoked = np.setdiff1d(in_scope, permitted, assume_unique=True)
    profile, usage = selected.profile, selected.usage
    if job.since_ms is None:
        held_after = permitted
    else:
        new = np.setdiff1d(permitted, before, assume_unique=True)
        changed = np.intersect1d(reader.changed_ordinals(job.since_ms, plan), permitted, assume_unique=True)
        profile = _only(profile, unique(np.concatenate((new, changed))))
        if usage is not None:
            fresh = pc.is_in(usage.column("ordinal"), pa.array(new))
            usage = usage.filter(pc.or_(fresh, pc.greater(usage.column("updated_at_ms"), job.since_ms)))
        held_after = unique(np.concatenate((np.setdiff1d(before, revoked, assume_unique=True), new)))
    return PurposeOutput(plan, held_after, revoked, profile, usage)


async def _revocation_reasons(
    conn: AsyncConnection, revoked: dict[str, np.ndarray], plans: dict[str, PurposePlan]
) -> list[tuple[int, str, str, wire.RevocationReason]]:
    """``(ordinal, account_id, purpose, reason)`` for each held account that is no longer permitted.

    Erased accounts are left out: their erasure event (one per recipient, acknowledged) covers every purpose.
    """
    out = []
    for purpose, ordinals in revoked.items():
        for start in range(0, ordinals.size, 500):
            part = [int(o) for o in ordinals[start : start + 500]]
            joined = (
                subjects.outerjoin(accounts, accounts.c.id == subjects.c.account_id)
                .outerjoin(
                    verdicts, and_(verdicts.c.account_id == subjects.c.account_id, verdicts.c.lifted_at_ms.is_(None))
                )
                .outerjoin(consent_accounts, consent_accounts.c.account_id == subjects.c.account_id)
                .outerjoin(
                    consent_purposes,
                    and_(
                        consent_purposes.c.account_id == subjects.c.account_id,
                        consent_purposes.c.policy_version == consent_accounts.c.policy_version,
                        consent_purposes.c.purpose_id == purpose,
                    ),
                )
            )
            rows = await conn.execute(
                select(
                    subjects.c.ordinal,
                    subjects.c.account_id,
                    accounts.c.id,
                    verdicts.c.reason_code,
                    consent_purposes.c.choice,
                    consent_purposes.c.objected_at_ms,
                )
                .select_from(joined)
                .where(subjects.c.ordinal.in_(part))
            )
            plan = plans.get(purpose)
            for ordinal, account_id, still_exists, banned, choice, objected in rows:
                if still_exists is None:
                    continue  # erased
                if banned is not None and not (plan and plan.safety):
                    reason = wire.RevocationReason.BANNED
                elif choice == "out":
                    reason = wire.RevocationReason.WITHDRAWN
                elif objected is not None:
                    reason = wire.RevocationReason.OBJECTED
                else:
                    reason = wire.RevocationReason.NOT_PERMITTED
                out.append((ordinal, account_id, purpose, reason))
    return out


def _write_parquet(table: pa.Table, path: Path) -> wire.FileEntry:
    pq.write_table(table, path, compression="zstd")
    return wire.FileEntry(name=path.name, rows=table.num_rows, sha256=wire.file_sha256(path))


def _write_files(files: dict[Path, pa.Table]) -> dict[Path, wire.FileEntry]:
    """Every file of a batch, several at once: Parquet's writer compresses one column at a time, off the GIL."""
    with ThreadPoolExecutor(WRITERS) as pool:
        return dict(zip(files, pool.map(_write_parquet, files.values(), files), strict=True))


async def last_batch(conn: AsyncConnection, recipient: str):  # noqa: ANN201 - a Row or None
    return (
        await conn.execute(
            select(sharing_batches)
            .where(sharing_batches.c.recipient == recipient)
            .order_by(sharing_batches.c.sequence.desc())
            .limit(1)
        )
    ).first()


async def export(
    engine: AsyncEngine,
    keys: SharingKeys,
    recipient: str,
    outbox: Path,
    *,
    since_batch: str | None = None,
    at_ms: int | None = None,
) -> ExportResult:
    """Write the recipient's next batch under ``outbox/<batch_id>`` and record it. Full unless ``since_batch``."""
    started = time.perf_counter()
    Snapshot.warm_up()  # it starts while the bookkeeping below is read and the ordinals are assigned
    at = at_ms if at_ms is not None else now_ms()
    async with engine.connect() as conn:
        policies = await load_policies(conn)
        previous = await last_batch(conn, recipient)
        since_ms = None
        if since_batch is not None:
            since_row = (
                await conn.execute(
                    select(sharing_batches).where(
                        sharing_batches.c.recipient == recipient, sharing_batches.c.batch_id == since_batch
                    )
                )
            ).first()
            if since_row is None:
                raise ExportError(f"no batch {since_batch!r} was sent to {recipient!r}")
            since_ms = since_row.as_of_ms - LATE_COMMIT_MARGIN_MS
        # A policy published before the previous snapshot was read was evaluated by it: no look-back here.
        republished = (
            since_ms is not None and (await conn.execute(policies_published_since(since_row.as_of_ms))).first()
        )
        held = await _held(conn, recipient)
        erasures = (
            await conn.execute(
                select(
                    sharing_erasures.c.event_id,
                    sharing_erasures.c.account_id,
                    sharing_erasures.c.requested_at_ms,
                    sharing_erasures.c.ordinal,
                ).where(sharing_erasures.c.recipient == recipient, sharing_erasures.c.acked_at_ms.is_(None))
            )
        ).all()
    try:
        plans = plan_purposes(policies, recipient)
    except PlanError as exc:
        raise ExportError(str(exc)) from None
    if previous is not None and at < previous.as_of_ms:
        raise ExportError(f"as-of time is before the previous batch {previous.batch_id}'s")
    await _assign_ordinals(engine, since_ms)

    job = _Job(
        keys=keys,
        recipient=recipient,
        plans=plans,
        policies=policies,
        at_ms=at,
        since_ms=since_ms,
        everything=since_ms is None or bool(republished) or scope_changes(policies, plans, since_ms, at) is None,
        held=held,
        erased=unique(np.asarray([e.ordinal for e in erasures if e.ordinal is not None], dtype=np.int64)),
    )
    outputs = await asyncio.to_thread(_select, Snapshot(engine.url, engine.dialect), job)
    # Purposes the recipient held but may no longer receive at all: everything it holds is revoked.
    for purpose, before in held.items():
        if purpose not in {p.id for p in plans}:
            outputs.append(_dropped(purpose, np.setdiff1d(before, job.erased)))

    sequence = previous.sequence + 1 if previous else 1
    batch_id = f"{recipient}-{sequence:08d}-{uuid.uuid4().hex[:8]}"
    staging = outbox / f".{batch_id}.partial"
    staging.mkdir(parents=True)
    try:
        async with engine.connect() as conn:
            result = await _write_batch(conn, keys, job, outputs, erasures, staging, batch_id, sequence, previous)
        final = outbox / batch_id
        staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    result.path = final
    result.seconds = time.perf_counter() - started
    return result


def _dropped(purpose: str, before: np.ndarray) -> PurposeOutput:
    nothing = pa.table({"ordinal": pa.array([], pa.int64()), "account_id": pa.array([], pa.string())})
    plan = PurposePlan(purpose, wire.Use.SERVICE, None, None, True, frozenset(), ())
    return PurposeOutput(plan, EMPTY, before, nothing, None)


async def _write_batch(
    conn: AsyncConnection,
    keys: SharingKeys,
    job: _Job,
    outputs: list[PurposeOutput],
    erasures: list,
    staging: Path,
    batch_id: str,
    sequence: int,
    previous,  # noqa: ANN001 - the previous batch row, or None
) -> ExportResult:
    plan_by_id = {p.id: p for p in job.plans}
    reasons = await _revocation_reasons(conn, {o.plan.id: o.revoked for o in outputs if o.revoked.size}, plan_by_id)
    revocations = [
        (hashlib.sha256(f"{batch_id}:{purpose}:{ordinal}".encode()).hexdigest()[:32], account_id, purpose, reason)
        for ordinal, account_id, purpose, reason in reasons
    ]
    revocation_table = pa.Table.from_pylist(
        [
            {
                "event_id": event_id,
                "subject": keys.subject(job.recipient, account_id),
                "purpose": purpose,
                "reason": reason.value,
                "at_ms": job.at_ms,
            }
            for event_id, account_id, purpose, reason in revocations
        ]
        + [
            {
                "event_id": e.event_id,
                "subject": keys.subject(job.recipient, e.account_id),
                "purpose": None,
                "reason": wire.RevocationReason.ERASED.value,
                "at_ms": e.requested_at_ms,
            }
            for e in erasures
        ],
        schema=wire.REVOCATION_SCHEMA,
    )

    files: dict[Path, pa.Table] = {staging / wire.REVOCATIONS_FILE: revocation_table}
    sent = [out for out in outputs if out.plan.id in plan_by_id]  # a dropped purpose: only its revocations travel
    for out in sent:
        schema = wire.profile_schema(out.plan.manifest_categories(), out.plan.pseudonymised)
        files[staging / wire.profile_file(out.plan.id)] = _wire_table(out.profile, schema)
        if out.usage is not None:
            files[staging / wire.usage_file(out.plan.id)] = _wire_table(out.usage, wire.USAGE_SCHEMA)
    written = await asyncio.to_thread(_write_files, files)
    entries, rows = [], {}
    for out in sent:
        plan = out.plan
        profile_entry = written[staging / wire.profile_file(plan.id)]
        usage_entry = written.get(staging / wire.usage_file(plan.id))
        rows[plan.id] = profile_entry.rows + (usage_entry.rows if usage_entry else 0)
        entries.append(
            wire.PurposeEntry(
                id=plan.id,
                use=plan.use,
                legal_basis=plan.legal_basis,
                retention_days=plan.retention_days,
                categories=plan.manifest_categories(),
                pseudonymised=plan.pseudonymised,
                profile=profile_entry,
                usage=usage_entry,
            )
        )
    manifest = wire.Manifest(
        batch_id=batch_id,
        sequence=sequence,
        previous_batch_id=previous.batch_id if previous else None,
        recipient=job.recipient,
        kind="full" if job.since_ms is None else "incremental",
        created_at_ms=now_ms(),
        as_of_ms=job.at_ms,
        since_ms=job.since_ms,
        policy_versions=sorted({policy.version for plan in job.plans for policy, _ in plan.versions}),
        purposes=entries,
        revocations=written[staging / wire.REVOCATIONS_FILE],
        signing_key_id=keys.key_id,
    )
    data = wire.manifest_bytes(manifest)
    signature = wire.sign(keys.signing_key, data)
    (staging / wire.MANIFEST_FILE).write_bytes(data)
    (staging / wire.SIGNATURE_FILE).write_text(signature)

    await conn.rollback()  # end the reads above; the bookkeeping is one short write transaction
    async with conn.begin():
        await conn.execute(
            insert(sharing_batches).values(
                batch_id=batch_id,
                recipient=job.recipient,
                sequence=sequence,
                kind=manifest.kind,
                as_of_ms=job.at_ms,
                created_at_ms=manifest.created_at_ms,
                manifest=data.decode(),
                signature=signature,
                rows=sum(rows.values()),
                revocations=revocation_table.num_rows,
            )
        )
        await revocations_log.record(conn, job.recipient, batch_id, job.at_ms, revocations)
        await conn.execute(delete(sharing_held).where(sharing_held.c.recipient == job.recipient))
        held_rows = [
            {"recipient": job.recipient, "purpose": o.plan.id, "chunk": chunk, "bitmap": blob}
            for o in outputs
            for chunk, blob in bitmaps.encode(o.held_after)
        ]
        if held_rows:
            await conn.execute(insert(sharing_held), held_rows)
        disclosure_rows = [
            {"recipient": job.recipient, "sequence": sequence, "purpose": o.plan.id, "chunk": chunk, "bitmap": blob}
            for o in outputs
            for chunk, blob in bitmaps.encode(o.sent)
        ]
        if disclosure_rows:
            await conn.execute(insert(sharing_disclosures), disclosure_rows)
        if erasures:
            await conn.execute(
                update(sharing_erasures)
                .where(
                    sharing_erasures.c.event_id.in_([e.event_id for e in erasures]),
                    sharing_erasures.c.sent_batch_id.is_(None),
                )
                .values(sent_batch_id=batch_id)
            )
    return ExportResult(manifest=manifest, path=staging, seconds=0.0, rows=rows)
