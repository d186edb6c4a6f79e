"""Events for the whole fleet, kept in the database so that a process that missed one on the bus reads it."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import BigInteger, Column, Index, Integer, String, Table, Text, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from cove.db import metadata

fleet_events = Table(
    "fleet_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(32), nullable=False, unique=True),
    Column("kind", String(40), nullable=False),
    Column("payload", Text, nullable=False),
    Column("at_ms", BigInteger, nullable=False),
    Index("fleet_events_at", "at_ms"),
)


@dataclass(frozen=True)
class StoredEvent:
    event_id: str
    kind: str
    payload: str
    at_ms: int


async def append(conn: AsyncConnection, event: StoredEvent) -> None:
    await conn.execute(
        insert(fleet_events).values(event_id=event.event_id, kind=event.kind, payload=event.payload, at_ms=event.at_ms)
    )


async def since(conn: AsyncConnection, at_ms: int, after_id: int, limit: int) -> list[tuple[int, StoredEvent]]:
    """Events from ``at_ms`` on, by row id after ``after_id`` (a page of at most ``limit``)."""
    e = fleet_events.c
    rows = await conn.execute(
        select(e.id, e.event_id, e.kind, e.payload, e.at_ms)
        .where(e.at_ms >= at_ms, e.id > after_id)
        .order_by(e.id)
        .limit(limit)
    )
    return [(row[0], StoredEvent(*row[1:])) for row in rows]


async def purge(conn: AsyncConnection, before_ms: int) -> int:
    result = await conn.execute(delete(fleet_events).where(fleet_events.c.at_ms < before_ms))
    return result.rowcount or 0
