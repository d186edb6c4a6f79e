"""Consent over time, from the ledger: every choice (on or off), withdrawal and objection, per purpose.

The ledger is the history (the consent tables keep only each account's current state), so a choice changed
twice counts twice here. The purpose and the value are read from each entry's JSON payload in the database
(``json_extract`` on SQLite, ``->>`` on PostgreSQL), so only the counts per bucket travel. An entry whose payload
is not JSON (edited behind Cove's back) makes the database refuse the query: :class:`LedgerUnreadable` says so,
and the ledger's verification names the entry.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, cast, func, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from cove.consent import ledger
from cove.consent.ledger_storage import ledger_entries
from cove.console.figures.timeline import Series, Timeline, timeline

# What the charts show, in this order: a choice in, a choice out, a withdrawal, an objection.
ON, OFF, WITHDRAWN, OBJECTED = "turned on", "turned off", "withdrawn", "objected"
KINDS = (ON, OFF, WITHDRAWN, OBJECTED)
ACTS = (ledger.CHOICE, ledger.WITHDRAWAL, ledger.OBJECTION)


class LedgerUnreadable(Exception):
    """A ledger entry's payload is not JSON: the database cannot read the acts' purposes."""


@dataclass
class PurposeHistory:
    purpose: str
    totals: dict[str, int]  # per kind, over the whole ledger
    series: list[Series] = field(default_factory=list)  # per kind: acts per bucket


@dataclass
class ConsentHistory:
    timeline: Timeline | None  # None while the ledger holds no act
    purposes: list[PurposeHistory] = field(default_factory=list)


def _payload_field(conn: AsyncConnection, key: str) -> ColumnElement:
    payload = ledger_entries.c.payload
    if conn.dialect.name == "postgresql":
        return cast(payload, JSONB)[key].astext
    return func.json_extract(payload, f"$.{key}")


def kind_of(entry_kind: str, value: str | None) -> str:
    if entry_kind == ledger.WITHDRAWAL:
        return WITHDRAWN
    if entry_kind == ledger.OBJECTION:
        return OBJECTED
    return ON if value == "in" else OFF


async def consent_history(conn: AsyncConnection, now_ms: int) -> ConsentHistory:
    e = ledger_entries.c
    first = await conn.scalar(select(func.min(e.at_ms)).where(e.kind.in_(ACTS)))
    if first is None:
        return ConsentHistory(None)
    axis = timeline(first, now_ms)
    bucket = (e.at_ms // axis.bucket_ms).label("bucket")
    purpose = _payload_field(conn, "purpose").label("purpose")
    value = _payload_field(conn, "value").label("value")
    try:
        rows = (
            await conn.execute(
                select(purpose, e.kind, value, bucket, func.count())
                .where(e.kind.in_(ACTS))
                .group_by(purpose, e.kind, value, bucket)
            )
        ).all()
    except DBAPIError as exc:
        raise LedgerUnreadable(str(exc.orig)) from exc
    counts: dict[str, dict[str, dict[int, int]]] = {}
    for purpose_id, entry_kind, chosen, b, n in rows:
        per_kind = counts.setdefault(str(purpose_id), {k: {} for k in KINDS})[kind_of(entry_kind, chosen)]
        per_kind[int(b)] = per_kind.get(int(b), 0) + n
    history = ConsentHistory(axis)
    for purpose_id in sorted(counts):
        per_kind = counts[purpose_id]
        history.purposes.append(
            PurposeHistory(
                purpose_id,
                {k: sum(per_kind[k].values()) for k in KINDS},
                [Series(k, axis.align(per_kind[k])) for k in KINDS],
            )
        )
    return history
