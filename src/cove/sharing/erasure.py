"""Erasure: a deleted account becomes one erasure event per recipient, tracked until that recipient acknowledges.

Its AccountDeleted handler (cove.sharing.hooks) runs inside the account-deletion transaction, so an account is
never gone without its erasure events. The recipients are every recipient any published policy names: one that
never received the account's data gets an event it can ignore, which is cheaper than being wrong about who might
hold it.

Each event's id is a random UUID4 handed to the person in the deletion's answer (:func:`receipts_of`): knowing it
is the only right needed to ask how that erasure went (:func:`status`), since no account is left to log in with.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cove.consent.storage import load_policies
from cove.sharing import revocations, wire
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
    await revocations.forget_account(conn, account_id)
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


EVENT_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")  # uuid4, as issued


async def receipts_of(conn: AsyncConnection, account_id: str) -> dict[str, Any]:
    """The erasure events of a deleted account, one per recipient: its deletion's receipts."""
    e = sharing_erasures.c
    rows = await conn.execute(
        select(e.recipient, e.event_id, e.requested_at_ms).where(e.account_id == account_id).order_by(e.recipient)
    )
    return {
        "erasures": [
            {"recipient": r.recipient, "event_id": r.event_id, "requested_at": r.requested_at_ms} for r in rows
        ]
    }


async def status(conn: AsyncConnection, event_id: str) -> dict[str, Any] | None:
    """How one erasure went: ``requested`` (no batch carried it yet), ``sent`` (a batch did) or ``acknowledged``
    (the recipient applied it), with the times; None for an id that names no erasure. ``event_id`` must match
    :data:`EVENT_ID` (the caller checks, to answer a malformed id apart from an unknown one)."""
    e, b = sharing_erasures.c, sharing_batches.c
    row = (
        await conn.execute(
            select(e.event_id, e.recipient, e.requested_at_ms, e.sent_batch_id, b.created_at_ms, e.acked_at_ms)
            .select_from(sharing_erasures.outerjoin(sharing_batches, b.batch_id == e.sent_batch_id))
            .where(e.event_id == event_id)
        )
    ).first()
    if row is None:
        return None
    state = "acknowledged" if row.acked_at_ms is not None else "sent" if row.sent_batch_id else "requested"
    return {
        "event_id": row.event_id,
        "recipient": row.recipient,
        "state": state,
        "requested_at": row.requested_at_ms,
        "sent_at": row.created_at_ms,
        "batch_id": row.sent_batch_id,
        "acknowledged_at": row.acked_at_ms,
    }


async def apply_acks(engine: AsyncEngine, acks: list[wire.Ack]) -> int:
    """Mark the erasures these acks name as acknowledged, and the revocations of each batch acknowledged (a
    recipient acks a batch once applied, revocations and all); returns how many erasures were newly acknowledged.

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
            if sent is None:
                continue
            await revocations.acknowledged(conn, ack.recipient, ack.batch_id, ack.applied_at_ms)
            if not ack.erasures:
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
