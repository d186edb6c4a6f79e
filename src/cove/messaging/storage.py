"""The durable per-device queues and the idempotency record of sends.

The statements of the queue writer's group commit are plain synchronous functions: they run inside one
transaction in one hop (see cove.db.TransactionRunner), not one thread hand-off per statement.

The server stores only what it needs to route: the recipient device, the sender, a client message id, the
Olm message type, and the ciphertext it cannot read.
"""

from __future__ import annotations

from typing import NamedTuple

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Table,
    Text,
    delete,
    insert,
    select,
)
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from cove.accounts.storage import accounts
from cove.db import metadata
from cove.messaging.envelope import Envelope

# SQLite only auto-increments an INTEGER PRIMARY KEY (the rowid); PostgreSQL gets a BIGINT identity.
_queue_id = BigInteger().with_variant(Integer, "sqlite")

envelopes = Table(
    "envelopes",
    metadata,
    Column("id", _queue_id, primary_key=True, autoincrement=True),
    Column("account_id", String(36), nullable=False),
    Column("device_id", Integer, nullable=False),
    Column("kind", SmallInteger, nullable=False),
    Column("sender_account_id", String(36), nullable=False),
    Column("sender_device_id", Integer, nullable=False),
    Column("client_message_id", String(64), nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("server_ts_ms", BigInteger, nullable=False),
    Column("expires_at_ms", BigInteger, nullable=False),
    Column("business", Text, nullable=True),  # a business's visible header (JSON), shown to the recipient
    Index("ix_envelopes_queue", "account_id", "device_id", "id"),
    Index("ix_envelopes_expiry", "expires_at_ms"),
    # Queue ids are never reused (SQLite would otherwise reuse the highest deleted rowid): clients
    # recognise a redelivered envelope by its id.
    sqlite_autoincrement=True,
)

sent_messages = Table(
    "sent_messages",
    metadata,
    Column("sender_account_id", String(36), primary_key=True),
    Column("client_message_id", String(64), primary_key=True),
    Column("recipient_account_id", String(36), nullable=False),
    Column("created_at_ms", BigInteger, nullable=False),
    Index("ix_sent_messages_created", "created_at_ms"),
)

_ENVELOPE_COLUMNS = (
    envelopes.c.id,
    envelopes.c.account_id,
    envelopes.c.device_id,
    envelopes.c.kind,
    envelopes.c.sender_account_id,
    envelopes.c.sender_device_id,
    envelopes.c.client_message_id,
    envelopes.c.body,
    envelopes.c.server_ts_ms,
    envelopes.c.expires_at_ms,
    envelopes.c.business,
)


def insert_envelopes(conn: Connection, batch: list[Envelope]) -> list[Envelope]:
    """Insert envelopes and return them with their queue ids, in the order given."""
    if not batch:
        return []
    rows = [e.row() for e in batch]
    result = conn.execute(insert(envelopes).returning(envelopes.c.id, sort_by_parameter_order=True), rows)
    return [e.with_id(row.id) for e, row in zip(batch, result, strict=True)]


class AckedEnvelope(NamedTuple):
    """What a receipt needs of an envelope once it is deleted (never its body)."""

    account_id: str
    device_id: int
    kind: int
    sender_account_id: str
    sender_device_id: int
    client_message_id: str


# Bound parameters per statement stay far below SQLite's and asyncpg's limit of 32,767.
_CHUNK = 1000


def _chunks(items: list, size: int = _CHUNK):  # noqa: ANN001, ANN202
    for start in range(0, len(items), size):
        yield items[start : start + size]


def sent_before(conn: Connection, keys: list[tuple[str, str]]) -> set[tuple[str, str]]:
    """Which ``(sender account, client message id)`` pairs were already accepted."""
    t = sent_messages
    wanted = set(keys)
    seen: set[tuple[str, str]] = set()
    for chunk in _chunks(keys):
        # Two plain INs, filtered here: SQLite scans the whole table for a row-value IN with several rows,
        # and this table holds every send of the retention period.
        rows = conn.execute(
            select(t.c.sender_account_id, t.c.client_message_id).where(
                t.c.sender_account_id.in_({k[0] for k in chunk}), t.c.client_message_id.in_({k[1] for k in chunk})
            )
        )
        seen.update(pair for pair in ((row[0], row[1]) for row in rows) if pair in wanted)
    return seen


def record_sent(conn: Connection, rows: list[dict]) -> None:
    if rows:
        conn.execute(insert(sent_messages), rows)


def existing_accounts(conn: Connection, account_ids: set[str]) -> set[str]:
    """Which of these accounts still exist (a receipt for a deleted sender is not queued)."""
    found: set[str] = set()
    for chunk in _chunks(sorted(account_ids)):
        found.update(row.id for row in conn.execute(select(accounts.c.id).where(accounts.c.id.in_(chunk))))
    return found


async def fetch_queue(
    conn: AsyncConnection, account_id: str, device_id: int, after_id: int, now_ms: int, limit: int
) -> list[Envelope]:
    rows = await conn.execute(
        select(*_ENVELOPE_COLUMNS)
        .where(
            envelopes.c.account_id == account_id,
            envelopes.c.device_id == device_id,
            envelopes.c.id > after_id,
            envelopes.c.expires_at_ms > now_ms,
        )
        .order_by(envelopes.c.id)
        .limit(limit)
    )
    return [Envelope(*row) for row in rows]


def delete_acked(conn: Connection, keys: list[tuple[str, int, int]]) -> list[AckedEnvelope]:
    """Delete envelopes by ``(account, device, queue id)`` and return those that existed (for receipts).

    Ids are looked up first and only those in the acking device's own queue are deleted: a device can
    never delete another's envelopes. (By primary key in two statements; SQLite would scan the whole
    table for a row-value IN of the triples.)
    """
    t = envelopes
    wanted = set(keys)
    deleted: list[AckedEnvelope] = []
    for chunk in _chunks(sorted({k[2] for k in keys})):
        owners = conn.execute(select(t.c.id, t.c.account_id, t.c.device_id).where(t.c.id.in_(chunk)))
        own = [row.id for row in owners if (row.account_id, row.device_id, row.id) in wanted]
        if own:
            result = conn.execute(
                delete(t)
                .where(t.c.id.in_(own))
                .returning(
                    t.c.account_id,
                    t.c.device_id,
                    t.c.kind,
                    t.c.sender_account_id,
                    t.c.sender_device_id,
                    t.c.client_message_id,
                )  # fmt: skip
            )
            deleted += [AckedEnvelope(*row) for row in result]
    return deleted


async def purge_expired(conn: AsyncConnection, now_ms: int, idempotency_horizon_ms: int) -> int:
    expired = await conn.execute(delete(envelopes).where(envelopes.c.expires_at_ms <= now_ms))
    await conn.execute(delete(sent_messages).where(sent_messages.c.created_at_ms <= idempotency_horizon_ms))
    return expired.rowcount or 0


async def delete_account_queues(conn: AsyncConnection, account_id: str) -> None:
    """Drop every envelope queued for the account's devices (they were encrypted to keys now gone)."""
    await conn.execute(delete(envelopes).where(envelopes.c.account_id == account_id))


async def forget_account(conn: AsyncConnection, account_id: str) -> None:
    """An account's deletion: its queues and the idempotency records of its sends (cove.accounts.deletion says
    what is kept: the mail it sent that still waits for its recipients)."""
    await delete_account_queues(conn, account_id)
    await conn.execute(delete(sent_messages).where(sent_messages.c.sender_account_id == account_id))
