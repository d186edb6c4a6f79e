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
    bindparam,
    delete,
    exists,
    insert,
    select,
    tuple_,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
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


# The writer's statements are built once: constructing a statement costs more than running it on SQLite.
_INSERT_ENVELOPES = insert(envelopes).returning(envelopes.c.id, sort_by_parameter_order=True)


def insert_envelopes(conn: Connection, batch: list[Envelope]) -> list[Envelope]:
    """Insert envelopes and return them with their queue ids, in the order given."""
    if not batch:
        return []
    result = conn.execute(_INSERT_ENVELOPES, [e.row() for e in batch])
    return [e.with_id(row.id) for e, row in zip(batch, result, strict=True)]


class AckedEnvelope(NamedTuple):
    """What a receipt needs of an envelope once it is deleted (never its body)."""

    account_id: str
    device_id: int
    kind: int
    sender_account_id: str
    sender_device_id: int
    client_message_id: str
    sender_exists: bool  # whether the sender still has an account (the one field not a column: keep it last)


# Bound parameters per statement stay far below SQLite's and asyncpg's limit of 32,767.
_CHUNK = 1000


def _chunks(items: list, size: int = _CHUNK):  # noqa: ANN001, ANN202
    for start in range(0, len(items), size):
        yield items[start : start + size]


# A repeated (sender, client message id) is skipped by the primary key; RETURNING names the new ones. One
# statement instead of a look-up and an insert, and two relay processes cannot both take a send for new.
_RECORD_SENT = {
    dialect: insert_for(sent_messages)
    .on_conflict_do_nothing()
    .returning(sent_messages.c.sender_account_id, sent_messages.c.client_message_id)
    for dialect, insert_for in (("sqlite", sqlite_insert), ("postgresql", postgresql_insert))
}


def record_sent(conn: Connection, rows: list[dict]) -> set[tuple[str, str]]:
    """Record sends (rows of ``sent_messages``, one per key); returns the ``(sender account, client message id)``
    pairs that were new, leaving out those accepted before."""
    if not rows:
        return set()
    return {(row[0], row[1]) for row in conn.execute(_RECORD_SENT[conn.dialect.name], rows)}


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


# Each id counts only in the acking device's own queue, so a device can never delete another's envelopes.
# The ids lead the search (by primary key) and the (id, account, device) triples filter what it finds: one
# statement for every ack of a commit, on SQLite and PostgreSQL alike.
_SENDER = accounts.alias("sender")  # named: SQLite's RETURNING leaves the envelope's columns unqualified
_DELETE_ACKED = (
    delete(envelopes)
    .where(
        envelopes.c.id.in_(bindparam("ids", expanding=True)),
        tuple_(envelopes.c.id, envelopes.c.account_id, envelopes.c.device_id).in_(bindparam("keys", expanding=True)),
    )
    .returning(
        *(envelopes.c[name] for name in AckedEnvelope._fields[:-1]),  # the envelope's own columns
        exists().where(_SENDER.c.id == envelopes.c.sender_account_id),
    )
)


def delete_acked(conn: Connection, keys: list[tuple[str, int, int]]) -> list[AckedEnvelope]:
    """Delete envelopes by ``(account, device, queue id)`` and return those that existed (for receipts)."""
    deleted: list[AckedEnvelope] = []
    # A quarter of the usual chunk: each triple binds three values beside its id.
    for chunk in _chunks(sorted({(i, account, device) for account, device, i in keys}), _CHUNK // 4):
        params = {"ids": [key[0] for key in chunk], "keys": chunk}
        deleted += [AckedEnvelope(*row) for row in conn.execute(_DELETE_ACKED, params)]
    return deleted


async def purge_expired(conn: AsyncConnection, now_ms: int, idempotency_horizon_ms: int) -> int:
    expired = await conn.execute(delete(envelopes).where(envelopes.c.expires_at_ms <= now_ms))
    await conn.execute(delete(sent_messages).where(sent_messages.c.created_at_ms <= idempotency_horizon_ms))
    return expired.rowcount or 0


async def delete_account_queues(conn: AsyncConnection, account_id: str, device_id: int | None = None) -> None:
    """Drop every envelope queued for the account's devices, or one device (encrypted to keys now gone)."""
    one = (envelopes.c.device_id == device_id,) if device_id is not None else ()
    await conn.execute(delete(envelopes).where(envelopes.c.account_id == account_id, *one))


async def forget_account(conn: AsyncConnection, account_id: str) -> None:
    """An account's deletion: its queues and the idempotency records of its sends (cove.accounts.deletion says
    what is kept: the mail it sent that still waits for its recipients)."""
    await delete_account_queues(conn, account_id)
    await conn.execute(delete(sent_messages).where(sent_messages.c.sender_account_id == account_id))
