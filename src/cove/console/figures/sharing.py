"""The sharing gateway's record, for the console: batches per recipient per day, rows per purpose, the disclosure
log of the latest batches, and erasures each recipient has not acknowledged yet.

Rows per purpose come from the batches' own signed manifests (what the recipient was told it got); accounts per
purpose come from the disclosure log's bitmaps (what the messenger recorded it sent). The two agree unless a
purpose carries usage counters, whose rows are per day.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import case, func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cove.console.figures.timeline import Timeline, days_ending
from cove.sharing import bitmaps, wire
from cove.sharing.storage import sharing_batches, sharing_disclosures, sharing_erasures

LATEST_BATCHES = 20  # the disclosure log is read (bitmaps decoded) for this many batches, newest first
MANIFESTS_READ = 1000  # rows per purpose read this many manifests of the window at most, newest first


@dataclass(frozen=True)
class Disclosure:
    purpose: str
    categories: list[str]
    rows: int  # as the manifest declares: profile rows plus usage rows
    accounts: int  # accounts in the disclosure log for this batch and purpose


@dataclass(frozen=True)
class Batch:
    batch_id: str
    recipient: str
    sequence: int
    kind: str
    created_at_ms: int
    rows: int
    revocations: int
    on_nats: bool
    purposes: list[Disclosure]


@dataclass(frozen=True)
class Erasures:
    recipient: str
    requested: int
    sent: int
    acknowledged: int
    oldest_outstanding_ms: int | None  # when the oldest unacknowledged erasure was requested

    @property
    def outstanding(self) -> int:
        return self.requested - self.acknowledged


@dataclass
class SharingFigures:
    window: Timeline  # days_ending(now)
    batches_per_day: dict[str, dict[int, int]] = field(default_factory=dict)  # recipient -> day -> batches
    rows_per_day: dict[str, dict[int, int]] = field(default_factory=dict)  # recipient -> day -> rows
    rows_per_purpose: dict[str, dict[str, int]] = field(default_factory=dict)  # purpose -> recipient -> rows
    manifests_cut: bool = False  # more batches in the window than MANIFESTS_READ
    latest: list[Batch] = field(default_factory=list)
    erasures: list[Erasures] = field(default_factory=list)
    erasures_requested: dict[int, int] = field(default_factory=dict)  # day -> events
    erasures_acknowledged: dict[int, int] = field(default_factory=dict)

    @property
    def recipients(self) -> list[str]:
        return sorted(set(self.batches_per_day) | {e.recipient for e in self.erasures})


def _rows(entry: wire.PurposeEntry) -> int:
    return entry.profile.rows + (entry.usage.rows if entry.usage else 0)


async def _per_day(conn: AsyncConnection, figures: SharingFigures) -> None:
    b = sharing_batches
    day = figures.window.index_of(b.c.created_at_ms)
    rows = await conn.execute(
        select(b.c.recipient, day.label("day"), func.count().label("batches"), func.sum(b.c.rows).label("rows"))
        .where(b.c.created_at_ms >= figures.window.start_ms)
        .group_by(b.c.recipient, day)
    )
    for r in rows:
        figures.batches_per_day.setdefault(r.recipient, {})[int(r.day)] = int(r.batches)
        figures.rows_per_day.setdefault(r.recipient, {})[int(r.day)] = int(r.rows)


async def _per_purpose(conn: AsyncConnection, figures: SharingFigures) -> None:
    b = sharing_batches
    manifests = (
        await conn.execute(
            select(b.c.recipient, b.c.manifest)
            .where(b.c.created_at_ms >= figures.window.start_ms)
            .order_by(b.c.created_at_ms.desc())
            .limit(MANIFESTS_READ + 1)
        )
    ).all()
    figures.manifests_cut = len(manifests) > MANIFESTS_READ
    for row in manifests[:MANIFESTS_READ]:
        for entry in wire.Manifest.model_validate_json(row.manifest).purposes:
            per_recipient = figures.rows_per_purpose.setdefault(entry.id, {})
            per_recipient[row.recipient] = per_recipient.get(row.recipient, 0) + _rows(entry)


async def _latest(conn: AsyncConnection) -> list[Batch]:
    b, d = sharing_batches, sharing_disclosures
    batches = (await conn.execute(select(b).order_by(b.c.created_at_ms.desc()).limit(LATEST_BATCHES))).all()
    if not batches:
        return []
    accounts: dict[tuple[str, int, str], int] = {}
    chunks = await conn.execute(
        select(d.c.recipient, d.c.sequence, d.c.purpose, d.c.chunk, d.c.bitmap).where(
            tuple_(d.c.recipient, d.c.sequence).in_([(x.recipient, x.sequence) for x in batches])
        )
    )
    for c in chunks:
        key = (c.recipient, c.sequence, c.purpose)
        accounts[key] = accounts.get(key, 0) + int(bitmaps.decode(c.chunk, c.bitmap).size)
    latest = []
    for x in batches:
        manifest = wire.Manifest.model_validate_json(x.manifest)
        purposes = [
            Disclosure(e.id, e.categories, _rows(e), accounts.get((x.recipient, x.sequence, e.id), 0))
            for e in manifest.purposes
        ]
        latest.append(
            Batch(
                x.batch_id,
                x.recipient,
                x.sequence,
                x.kind,
                x.created_at_ms,
                x.rows,
                x.revocations,
                x.published_nats_at_ms is not None,
                purposes,
            )
        )
    return latest


async def _erasures(conn: AsyncConnection, figures: SharingFigures) -> None:
    e = sharing_erasures
    waiting = e.c.acked_at_ms.is_(None)
    rows = await conn.execute(
        select(
            e.c.recipient,
            func.count().label("requested"),
            func.count(e.c.sent_batch_id).label("sent"),
            func.count(e.c.acked_at_ms).label("acknowledged"),
            func.min(case((waiting, e.c.requested_at_ms))).label("oldest"),
        )
        .group_by(e.c.recipient)
        .order_by(e.c.recipient)
    )
    figures.erasures = [
        Erasures(r.recipient, int(r.requested), int(r.sent), int(r.acknowledged), r.oldest) for r in rows
    ]
    start = figures.window.start_ms
    for column, into in (
        (e.c.requested_at_ms, figures.erasures_requested),
        (e.c.acked_at_ms, figures.erasures_acknowledged),
    ):
        day = figures.window.index_of(column)
        for r in await conn.execute(select(day.label("day"), func.count()).where(column >= start).group_by(day)):
            into[int(r[0])] = int(r[1])


async def sharing_figures(engine: AsyncEngine, now_ms: int) -> SharingFigures:
    figures = SharingFigures(days_ending(now_ms))
    async with engine.connect() as conn:
        await _per_day(conn, figures)
        await _per_purpose(conn, figures)
        figures.latest = await _latest(conn)
        await _erasures(conn, figures)
    return figures
