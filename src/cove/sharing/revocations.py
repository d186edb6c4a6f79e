"""What stopped being shared about a person: each revocation a batch carried, kept per account with the time its
recipient acknowledged the batch, for their privacy view and their data export.

A batch's revocations file names subjects (per-recipient pseudonyms); this log keeps the account id beside each
event, so that "what was shared about me" can list them without reading batches. It is bounded by time: rows go
after :data:`RETENTION_DAYS`, when the gateway writes a later batch; the disclosure log (cove.sharing.disclosures)
still says what was sent. A deleted account's rows go with it: its erasure events say the rest.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from cove.sharing import wire
from cove.sharing.storage import sharing_revocations

RETENTION_DAYS = 400  # a year of "what stopped being shared", and a month to notice that it was not applied
VIEW_LIMIT = 1000  # the newest revocations a privacy view lists

_r = sharing_revocations.c


async def record(
    conn: AsyncConnection,
    recipient: str,
    batch_id: str,
    at_ms: int,
    rows: Iterable[tuple[str, str, str, wire.RevocationReason]],
) -> None:
    """Log a batch's revocations, ``(event_id, account_id, purpose, reason)``, in the batch's own transaction, and
    drop what has passed the retention."""
    values = [
        {
            "event_id": event_id,
            "account_id": account_id,
            "recipient": recipient,
            "purpose": purpose,
            "reason": reason.value,
            "batch_id": batch_id,
            "at_ms": at_ms,
        }
        for event_id, account_id, purpose, reason in rows
    ]
    if values:
        await conn.execute(insert(sharing_revocations), values)
    await conn.execute(delete(sharing_revocations).where(_r.at_ms < at_ms - RETENTION_DAYS * 86_400_000))


async def acknowledged(conn: AsyncConnection, recipient: str, batch_id: str, applied_at_ms: int) -> None:
    """The recipient applied this batch: each revocation it carried is done."""
    await conn.execute(
        update(sharing_revocations)
        .where(_r.recipient == recipient, _r.batch_id == batch_id, _r.acked_at_ms.is_(None))
        .values(acked_at_ms=applied_at_ms)
    )


async def of_account(conn: AsyncConnection, account_id: str, limit: int = VIEW_LIMIT) -> list[dict[str, Any]]:
    """Newest first, at most ``limit``."""
    rows = await conn.execute(
        select(_r.recipient, _r.purpose, _r.reason, _r.batch_id, _r.at_ms, _r.acked_at_ms)
        .where(_r.account_id == account_id)
        .order_by(_r.at_ms.desc(), _r.purpose)
        .limit(limit)
    )
    return [
        {
            "recipient": row.recipient,
            "purpose": row.purpose,
            "reason": row.reason,
            "batch_id": row.batch_id,
            "at": row.at_ms,
            "acknowledged_at": row.acked_at_ms,
        }
        for row in rows
    ]


async def forget_account(conn: AsyncConnection, account_id: str) -> None:
    await conn.execute(delete(sharing_revocations).where(_r.account_id == account_id))
