"""``relay_health``: one row per relay process per interval, what the operator console charts.

Written by every process (:mod:`cove.fleet.health_recorder`), read by whatever runs beside the database
(:mod:`cove.fleet.health`). Kept 7 days.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import orjson
from sqlalchemy import BigInteger, Column, Index, Integer, String, Table, Text, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from cove.db import metadata
from cove.fleet import histogram

log = logging.getLogger("cove.fleet")

KEEP_MS = 7 * 86_400_000
PROCESS_CHARS = 128

relay_health = Table(
    "relay_health",
    metadata,
    Column("process", String(PROCESS_CHARS), primary_key=True),
    Column("at_ms", BigInteger, primary_key=True),  # the end of the interval
    Column("interval_ms", Integer, nullable=False),
    Column("connected", Integer, nullable=False),
    Column("accepted", Integer, nullable=False),
    Column("delivered", Integer, nullable=False),
    Column("latency", Text, nullable=False),  # histogram.to_pairs, as JSON
    Column("p50_ms", Integer),
    Column("p99_ms", Integer),
    Column("queue_depth", BigInteger),
    Index("relay_health_at", "at_ms"),
)


@dataclass(frozen=True)
class HealthRow:
    """One process's figures over ``interval_ms`` ending at ``at_ms``. ``latency`` has histogram.BUCKETS counts;
    ``p50_ms``/``p99_ms`` are read from it (None without samples); ``queue_depth`` is None when it could not be
    counted."""

    process: str
    at_ms: int
    interval_ms: int
    connected: int
    accepted: int
    delivered: int
    latency: tuple[int, ...]
    p50_ms: int | None
    p99_ms: int | None
    queue_depth: int | None


_COLUMNS = tuple(relay_health.c)


async def append(conn: AsyncConnection, row: HealthRow) -> None:
    values = {c.name: getattr(row, c.name) for c in _COLUMNS}
    values["latency"] = orjson.dumps(histogram.to_pairs(row.latency)).decode()
    await conn.execute(insert(relay_health).values(values))


async def prune(conn: AsyncConnection, before_ms: int) -> int:
    result = await conn.execute(delete(relay_health).where(relay_health.c.at_ms < before_ms))
    return result.rowcount or 0


async def rows_since(conn: AsyncConnection, since_ms: int) -> AsyncIterator[HealthRow]:
    """Every row from ``since_ms`` on, oldest first, streamed: a reader keeps what it sums, not the rows. A row
    whose histogram this version cannot read (another version's buckets) is left out, and logged."""
    result = await conn.stream(select(*_COLUMNS).where(relay_health.c.at_ms >= since_ms).order_by(relay_health.c.at_ms))
    async for values in result:
        try:
            yield _row(*values)
        except ValueError as exc:  # orjson.JSONDecodeError is one
            log.warning("left out the health row of %s at %s: %s", values[0], values[1], exc)


def _row(*values: object) -> HealthRow:
    fields = dict(zip((c.name for c in _COLUMNS), values, strict=True))
    fields["latency"] = tuple(histogram.from_pairs(orjson.loads(fields["latency"])))  # type: ignore[arg-type]
    return HealthRow(**fields)  # type: ignore[arg-type]
