"""The export gateway: the one way data leaves the messenger for a recipient.

For each purpose the recipient may use, it selects the permitted accounts with the consent capability's compiled
predicate (evaluated in the database), projects only the fields the purpose declares through the catalogue,
applies the declared transforms, and writes a signed batch (cove.sharing.wire). A full batch carries every
permitted account; an incremental batch carries what changed since a previous batch, the accounts that became
permitted, and revocations for those that stopped being permitted. The disclosure log, the held sets and the batch
chain are written in one transaction; the batch directory appears (by rename) only after that commit.
"""

from __future__ import annotations

import hashlib
import hmac
import shutil
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import Select, and_, delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cove.clock import now_ms
from cove.consent.categories import DataCategory
from cove.consent.decision import DAY_MS
from cove.consent.policy import Policy
from cove.consent.predicate import permitted_accounts
from cove.consent.storage import consent_accounts, consent_purposes, load_policies
from cove.sharing import bitmaps, catalogue, wire
from cove.sharing.catalogue import Transform
from cove.sharing.keys import SharingKeys
from cove.sharing.plan import PurposePlan, plan_purposes
from cove.sharing.storage import (
    sharing_batches,
    sharing_disclosures,
    sharing_erasures,
    sharing_held,
    sharing_pick,
    sharing_subjects,
)

subjects = sharing_subjects
accounts, devices, usage, verdicts = (
    catalogue.accounts,
    catalogue.devices,
    catalogue.usage_daily,
    catalogue.safety_verdicts,
)


class ExportError(Exception):
    """An export that cannot run; nothing was written."""


@dataclass
class PurposeOutput:
    plan: PurposePlan
    permitted: np.ndarray
    profile: pa.Table
    usage: pa.Table | None
    sent: np.ndarray  # ordinals whose rows are in this batch: the disclosure log entry


@dataclass
class ExportResult:
    manifest: wire.Manifest
    path: Path
    seconds: float
    rows: dict[str, int] = field(default_factory=dict)

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())


def _day(ms: int | None) -> int | None:
    return None if ms is None else ms // DAY_MS


class _Hasher:
    """HMAC-SHA256 per row without re-keying each time (copying a keyed state is several times cheaper)."""

    def __init__(self, key: bytes, hex_chars: int = 64) -> None:
        self._keyed = hmac.new(key, digestmod=hashlib.sha256)
        self._chars = hex_chars

    def __call__(self, value: str | None) -> str | None:
        if value is None:
            return None
        h = self._keyed.copy()
        h.update(value.encode())
        return h.hexdigest()[: self._chars]


async def _assign_ordinals(engine: AsyncEngine) -> None:
    """Give every account that has none an ordinal, in one statement (nothing per account on the hot path)."""
    async with engine.begin() as conn:
        await conn.execute(
            insert(subjects).from_select(
                ["account_id"],
                select(accounts.c.id)
                .where(accounts.c.id.not_in(select(subjects.c.account_id)))
                .order_by(accounts.c.id),
            )
        )


def _banned() -> Select:
    return select(verdicts.c.account_id).where(verdicts.c.lifted_at_ms.is_(None))


def _eligible(plan: PurposePlan, policy: Policy, recipient: str) -> list:
    """Conditions on ``subjects.account_id`` for one version of a purpose: consent, then bans."""
    conditions = [subjects.c.account_id.in_(permitted_accounts([policy], plan.id, recipient))]
    if plan.only_banned:
        conditions.append(subjects.c.account_id.in_(_banned()))
    elif not plan.safety:
        # Banned accounts stop being shared for anything but safety: the revocation says so.
        conditions.append(subjects.c.account_id.not_in(_banned()))
    return conditions


class _Export:
    def __init__(
        self, conn: AsyncConnection, keys: SharingKeys, recipient: str, at_ms: int, since_ms: int | None
    ) -> None:
        self.conn, self.keys, self.recipient = conn, keys, recipient
        self.at_ms, self.since_ms = at_ms, since_ms
        self.subject = _Hasher(keys.subject_key(recipient), 32)
        self.phone = _Hasher(keys.phone_key(recipient))
        self.params = {"at_ms": at_ms}

    async def _all(self, query: Select) -> Sequence:
        return (await self.conn.execute(query, self.params)).all()

    async def permitted(self, plan: PurposePlan) -> np.ndarray:
        ordinals: list[int] = []
        for policy, _ in plan.versions:
            rows = await self._all(select(subjects.c.ordinal).where(*_eligible(plan, policy, self.recipient)))
            ordinals.extend(r[0] for r in rows)
        return np.unique(np.asarray(ordinals, dtype=np.int64))

    async def changed(self, plan: PurposePlan) -> np.ndarray:
        """Ordinals whose profile fields changed after ``since_ms``, for the categories this purpose carries."""
        assert self.since_ms is not None
        conditions = []
        if plan.categories & catalogue.DEVICE_CATEGORIES:
            conditions.append(devices.c.updated_at_ms > self.since_ms)
        if DataCategory.LAST_SEEN_DAY in plan.categories:
            # Only a move into a later day changes the coarsened value.
            conditions.append(devices.c.last_seen_at_ms >= (self.since_ms // DAY_MS + 1) * DAY_MS)
        found: list[int] = []
        if conditions:
            query = (
                select(subjects.c.ordinal)
                .select_from(subjects.join(devices, devices.c.account_id == subjects.c.account_id))
                .where(devices.c.device_id == catalogue.PRIMARY_DEVICE_ID, or_(*conditions))
            )
            found.extend(r[0] for r in await self._all(query))
        if plan.only_banned:
            query = (
                select(subjects.c.ordinal)
                .select_from(subjects.join(verdicts, verdicts.c.account_id == subjects.c.account_id))
                .where(verdicts.c.updated_at_ms > self.since_ms)
            )
            found.extend(r[0] for r in await self._all(query))
        return np.unique(np.asarray(found, dtype=np.int64))

    async def pick(self, new: np.ndarray, changed: np.ndarray) -> None:
        await self.conn.run_sync(lambda c: sharing_pick.create(c, checkfirst=True))
        await self.conn.execute(delete(sharing_pick))
        rows = [{"ordinal": int(o), "fresh": True} for o in new]
        rows += [{"ordinal": int(o), "fresh": False} for o in np.setdiff1d(changed, new)]
        if rows:
            await self.conn.execute(insert(sharing_pick), rows)

    async def profile(self, plan: PurposePlan, incremental: bool) -> tuple[pa.Table, np.ndarray]:
        schema = wire.profile_schema(plan.manifest_categories(), plan.pseudonymised)
        columns: dict[str, list] = {name: [] for name in schema.names}
        ordinals: list[int] = []
        for policy, purpose in plan.versions:
            fields = catalogue.fields_for(list(purpose.data_categories))
            query = select(subjects.c.ordinal, subjects.c.account_id, *(catalogue.source_column(f) for f in fields))
            joined = subjects.join(accounts, accounts.c.id == subjects.c.account_id).outerjoin(
                devices,
                and_(devices.c.account_id == accounts.c.id, devices.c.device_id == catalogue.PRIMARY_DEVICE_ID),
            )
            if DataCategory.SAFETY_VERDICTS in purpose.data_categories:
                joined = joined.join(
                    verdicts, and_(verdicts.c.account_id == accounts.c.id, verdicts.c.lifted_at_ms.is_(None))
                )
            query = query.select_from(joined).where(*_eligible(plan, policy, self.recipient))
            if incremental:
                query = query.where(subjects.c.ordinal.in_(select(sharing_pick.c.ordinal)))
            rows = await self._all(query)
            if not rows:
                continue
            by_position = list(zip(*rows, strict=True))
            ordinals.extend(by_position[0])
            columns["subject"].extend(self.subject(a) for a in by_position[1])
            declared = set()
            for f, values in zip(fields, by_position[2:], strict=True):
                name = f.wire_name
                if f.transform == Transform.PHONE:
                    name = "phone_hash" if plan.pseudonymised else "phone_number"
                    values = [self.phone(v) for v in values] if plan.pseudonymised else list(values)
                elif f.transform == Transform.DAY:
                    values = [_day(v) for v in values]
                columns[name].extend(values)
                declared.add(name)
            for name in columns:
                if name != "subject" and name not in declared:
                    columns[name].extend([None] * len(rows))  # not declared by this version: stays empty
        arrays = [_array(columns[name], schema.field(name).type) for name in schema.names]
        return pa.Table.from_arrays(arrays, schema=schema), np.asarray(ordinals, dtype=np.int64)

    async def usage(self, plan: PurposePlan, incremental: bool) -> tuple[pa.Table, np.ndarray] | None:
        versions = [policy for policy, p in plan.versions if DataCategory.USAGE_COUNTERS in p.data_categories]
        if not versions:
            return None
        rows: list = []
        for policy in versions:
            query = (
                select(
                    subjects.c.ordinal,
                    subjects.c.account_id,
                    usage.c.day,
                    usage.c.messages_sent,
                    usage.c.messages_received,
                    usage.c.app_opens,
                )
                .select_from(subjects.join(usage, usage.c.account_id == subjects.c.account_id))
                .where(*_eligible(plan, policy, self.recipient))
            )
            if incremental:
                # Rows that changed, and every row of an account the recipient does not hold yet.
                fresh = select(sharing_pick.c.ordinal).where(sharing_pick.c.fresh)
                query = query.where(or_(usage.c.updated_at_ms > self.since_ms, subjects.c.ordinal.in_(fresh)))
            rows.extend(await self._all(query))
        cols = list(zip(*rows, strict=True)) if rows else [[] for _ in range(6)]
        table = pa.Table.from_arrays(
            [
                pa.array([self.subject(a) for a in cols[1]], pa.string()),
                pa.array(cols[2], pa.int32()).cast(pa.date32()),
                pa.array(cols[3], pa.int32()),
                pa.array(cols[4], pa.int32()),
                pa.array(cols[5], pa.int32()),
            ],
            schema=wire.USAGE_SCHEMA,
        )
        return table, np.asarray(cols[0], dtype=np.int64)


def _array(values: list, type_: pa.DataType) -> pa.Array:
    if pa.types.is_date32(type_):
        return pa.array(values, pa.int32()).cast(pa.date32())
    return pa.array(values, type_)


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
            since_ms = since_row.as_of_ms
    try:
        plans = plan_purposes(policies, recipient)
    except Exception as exc:
        raise ExportError(str(exc)) from None
    if previous is not None and at < previous.as_of_ms:
        raise ExportError(f"as-of time is before the previous batch {previous.batch_id}'s")
    await _assign_ordinals(engine)

    sequence = previous.sequence + 1 if previous else 1
    batch_id = f"{recipient}-{sequence:08d}-{uuid.uuid4().hex[:8]}"
    staging = outbox / f".{batch_id}.partial"
    staging.mkdir(parents=True)
    try:
        async with engine.connect() as conn:
            result = await _export_into(
                conn, keys, recipient, plans, staging, batch_id, sequence, previous, at, since_ms
            )
        final = outbox / batch_id
        staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    result.path = final
    result.seconds = time.perf_counter() - started
    return result


async def _export_into(
    conn: AsyncConnection,
    keys: SharingKeys,
    recipient: str,
    plans: list[PurposePlan],
    staging: Path,
    batch_id: str,
    sequence: int,
    previous,  # noqa: ANN001 - the previous batch row, or None
    at: int,
    since_ms: int | None,
) -> ExportResult:
    incremental = since_ms is not None
    job = _Export(conn, keys, recipient, at, since_ms)
    held = await _held(conn, recipient)
    outputs: list[PurposeOutput] = []
    for plan in plans:
        permitted = await job.permitted(plan)
        before = held.get(plan.id, np.empty(0, dtype=np.int64))
        if incremental:
            new = np.setdiff1d(permitted, before)
            changed = np.intersect1d(await job.changed(plan), permitted)
            await job.pick(new, changed)
        profile, profile_ordinals = await job.profile(plan, incremental)
        usage_result = await job.usage(plan, incremental)
        usage_table, usage_ordinals = usage_result if usage_result else (None, np.empty(0, dtype=np.int64))
        sent = np.union1d(profile_ordinals, usage_ordinals)
        outputs.append(PurposeOutput(plan, permitted, profile, usage_table, sent))

    plan_by_id = {p.id: p for p in plans}
    permitted_by_id = {o.plan.id: o.permitted for o in outputs}
    revoked = {
        purpose: np.setdiff1d(before, permitted_by_id.get(purpose, np.empty(0, dtype=np.int64)))
        for purpose, before in held.items()
    }
    revocations = await _revocation_reasons(conn, {p: o for p, o in revoked.items() if o.size}, plan_by_id)
    erasures = (
        await conn.execute(
            select(
                sharing_erasures.c.event_id, sharing_erasures.c.account_id, sharing_erasures.c.requested_at_ms
            ).where(sharing_erasures.c.recipient == recipient, sharing_erasures.c.acked_at_ms.is_(None))
        )
    ).all()
    revocation_table = pa.Table.from_pylist(
        [
            {
                "event_id": hashlib.sha256(f"{batch_id}:{purpose}:{ordinal}".encode()).hexdigest()[:32],
                "subject": job.subject(account_id),
                "purpose": purpose,
                "reason": reason.value,
                "at_ms": at,
            }
            for ordinal, account_id, purpose, reason in revocations
        ]
        + [
            {
                "event_id": event_id,
                "subject": job.subject(account_id),
                "purpose": None,
                "reason": wire.RevocationReason.ERASED.value,
                "at_ms": requested_at,
            }
            for event_id, account_id, requested_at in erasures
        ],
        schema=wire.REVOCATION_SCHEMA,
    )

    entries = []
    for out in outputs:
        plan = out.plan
        profile_entry = _write_parquet(out.profile, staging / wire.profile_file(plan.id))
        usage_entry = _write_parquet(out.usage, staging / wire.usage_file(plan.id)) if out.usage is not None else None
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
        recipient=recipient,
        kind="incremental" if incremental else "full",
        created_at_ms=now_ms(),
        as_of_ms=at,
        since_ms=since_ms,
        policy_versions=sorted({policy.version for plan in plans for policy, _ in plan.versions}),
        purposes=entries,
        revocations=_write_parquet(revocation_table, staging / wire.REVOCATIONS_FILE),
        signing_key_id=keys.key_id,
    )
    data = wire.manifest_bytes(manifest)
    signature = wire.sign(keys.signing_key, data)
    (staging / wire.MANIFEST_FILE).write_bytes(data)
    (staging / wire.SIGNATURE_FILE).write_text(signature)

    rows = {o.plan.id: o.profile.num_rows + (o.usage.num_rows if o.usage is not None else 0) for o in outputs}
    await conn.rollback()  # end the read snapshot; the bookkeeping below is one short write transaction
    async with conn.begin():
        await conn.execute(
            insert(sharing_batches).values(
                batch_id=batch_id,
                recipient=recipient,
                sequence=sequence,
                kind=manifest.kind,
                as_of_ms=at,
                created_at_ms=manifest.created_at_ms,
                manifest=data.decode(),
                signature=signature,
                rows=sum(rows.values()),
                revocations=revocation_table.num_rows,
            )
        )
        await conn.execute(delete(sharing_held).where(sharing_held.c.recipient == recipient))
        held_rows = [
            {"recipient": recipient, "purpose": o.plan.id, "chunk": chunk, "bitmap": blob}
            for o in outputs
            for chunk, blob in bitmaps.encode(o.permitted)
        ]
        if held_rows:
            await conn.execute(insert(sharing_held), held_rows)
        disclosure_rows = [
            {"recipient": recipient, "sequence": sequence, "purpose": o.plan.id, "chunk": chunk, "bitmap": blob}
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
