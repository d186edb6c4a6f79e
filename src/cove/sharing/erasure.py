"""Erasure: a deleted account becomes one erasure event per recipient, tracked until that recipient acknowledges.

Its AccountDeleted handler (cove.sharing.hooks) runs inside the account-deletion transaction, so an account is
never gone without its erasure events. The recipients are every recipient any published policy names: one that
never received the account's data gets an event it can ignore, which is cheaper than being wrong about who might
hold it.
"""

from __future__ import annotations

import uuid

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cove.consent.storage import load_policies
from cove.sharing import wire
from cove.sharing.storage import sharing_batches, sharing_erasures, sharing_subjects


async def record_erasure(conn: AsyncConnection, account_id: str, at_ms: int) -> None:
    """Queue an erasure event per recipient, and forget the account's ordinal.

    Without the ordinal, the disclosure log's bitmaps no longer point at anyone. The event keeps the account id
    (a random UUID, nothing else about the person) because the subject it names is derived from it per recipient.
    """
    ordinal = (
        await conn.execute(select(sharing_subjects.c.ordinal).where(sharing_subjects.c.account_id == account_id))
    ).scalar()
    await conn.execute(delete(sharing_subjects).where(sharing_subjects.c.account_id == account_id))
    recipients = sorted({r.id for policy in await load_policies(conn) for r in policy.recipients})
    if recipients:
        await conn.execute(
            insert(sharing_erasures),
            [
                {
                    "event_id": str(uuid.uuid4()),
                    "account_id": account_id,
                    "ordinal": ordinal,
                    "recipient": r,
                    "requested_at_ms": at_ms,
                }
                for r in recipients
            ],
        )


async def apply_acks(engine: AsyncEngine, acks: list[wire.Ack]) -> int:
    """Mark the erasures these acks name as acknowledged; returns how many were newly acknowledged.

    An ack counts only for a batch this messenger sent to that recipient and only for erasures that batch (or an
    earlier one) carried, so a recipient cannot acknowledge what it was never sent.
    """
    newly = 0
    async with engine.begin() as conn:
        for ack in acks:
            sent = (
                await conn.execute(
                    select(sharing_batches.c.sequence).where(
                        sharing_batches.c.batch_id == ack.batch_id, sharing_batches.c.recipient == ack.recipient
                    )
                )
            ).scalar()
            if sent is None or not ack.erasures:
                continue
            result = await conn.execute(
                update(sharing_erasures)
                .where(
                    sharing_erasures.c.recipient == ack.recipient,
                    sharing_erasures.c.event_id.in_(ack.erasures),
                    sharing_erasures.c.sent_batch_id.is_not(None),
                    sharing_erasures.c.acked_at_ms.is_(None),
                )
                .values(acked_at_ms=ack.applied_at_ms)
            )
            newly += result.rowcount
    return newly
