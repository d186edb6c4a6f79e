"""What a user sees of the disclosure log: each batch their data went out in, to whom, why, and which fields."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from cove.sharing import bitmaps, wire
from cove.sharing.storage import sharing_batches, sharing_disclosures, sharing_subjects


@lru_cache(maxsize=256)
def _fields(manifest: str) -> dict[str, list[str]]:
    parsed = wire.Manifest.model_validate_json(manifest)
    return {p.id: p.categories for p in parsed.purposes}


async def disclosures_of(conn: AsyncConnection, account_id: str) -> list[dict[str, Any]]:
    """Newest first. Reads one bitmap chunk per (batch, purpose): the same cost at a billion accounts."""
    ordinal = (
        await conn.execute(select(sharing_subjects.c.ordinal).where(sharing_subjects.c.account_id == account_id))
    ).scalar()
    if ordinal is None:
        return []
    d, b = sharing_disclosures, sharing_batches
    rows = await conn.execute(
        select(d.c.purpose, d.c.bitmap, b.c.recipient, b.c.batch_id, b.c.kind, b.c.as_of_ms, b.c.manifest)
        .select_from(d.join(b, and_(b.c.recipient == d.c.recipient, b.c.sequence == d.c.sequence)))
        .where(d.c.chunk == bitmaps.chunk_of(ordinal))
        .order_by(b.c.as_of_ms.desc(), d.c.purpose)
    )
    return [
        {
            "recipient": row.recipient,
            "purpose": row.purpose,
            "categories": _fields(row.manifest).get(row.purpose, []),
            "batch_id": row.batch_id,
            "kind": row.kind,
            "at": row.as_of_ms,
        }
        for row in rows
        if bitmaps.contains(row.bitmap, ordinal)
    ]
