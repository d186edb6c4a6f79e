"""The usage_daily table: one row per account and UTC day, written only when a report grows a counter.

``updated_at_ms`` moves only on a real change, and is indexed: the sharing gateway's incremental export
reads the rows changed since an instant.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, String, Table, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from cove.db import metadata
from cove.protocol.usage import DayCounts

usage_daily = Table(
    "usage_daily",
    metadata,
    Column("account_id", String(36), primary_key=True),
    Column("day", Integer, primary_key=True),  # days since the Unix epoch, UTC
    Column("messages_sent", Integer, nullable=False),
    Column("messages_received", Integer, nullable=False),
    Column("app_opens", Integer, nullable=False),
    Column("updated_at_ms", BigInteger, nullable=False),
    Index("ix_usage_daily_updated", "updated_at_ms"),
)

_COUNTS = (usage_daily.c.messages_sent, usage_daily.c.messages_received, usage_daily.c.app_opens)


async def load_days(conn: AsyncConnection, account_id: str, days: list[int]) -> dict[int, DayCounts]:
    rows = await conn.execute(
        select(usage_daily.c.day, *_COUNTS).where(usage_daily.c.account_id == account_id, usage_daily.c.day.in_(days))
    )
    return {row.day: DayCounts(*row[1:]) for row in rows}


async def write_day(
    conn: AsyncConnection, account_id: str, day: int, judged: DayCounts | None, counts: DayCounts, now_ms: int
) -> bool:
    """Store the day's counts only if the row is still ``judged`` (``None``: absent); ``False`` when a
    concurrent report changed it first (compare-and-set: a plain update could lower a counter). An insert that
    loses the race raises ``IntegrityError``."""
    values = {**counts.__dict__, "updated_at_ms": now_ms}
    if judged is None:
        await conn.execute(insert(usage_daily).values(account_id=account_id, day=day, **values))
        return True
    unchanged = [column == getattr(judged, column.name) for column in _COUNTS]
    result = await conn.execute(
        update(usage_daily)
        .where(usage_daily.c.account_id == account_id, usage_daily.c.day == day, *unchanged)
        .values(values)
    )
    return result.rowcount == 1


async def delete_account_usage(conn: AsyncConnection, account_id: str) -> None:
    await conn.execute(delete(usage_daily).where(usage_daily.c.account_id == account_id))
