"""The durable per-device queues and the idempotency record of sends.

The statements of the queue writer's group commit are plain synchronous functions: they run inside one
transaction in one hop (see cove.db.TransactionRunner), not one thread hand-off per statement.

The server stores only what it needs to route: the recipient device, the sender, a client message id, the
Olm message type, and the ciphertext it cannot read. A group message's ciphertext is stored once
(``group_messages``, with the number of device queue rows still pointing at it); each member device's queue row
points at it and carries no body of its own.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

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
    and_,
    bindparam,
    case,
    delete,
    exists,
    func,
    insert,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from cove.accounts.storage import accounts
from cove.db import insert_new, metadata
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
    Column("group_message_id", _queue_id, nullable=True),  # a group message's row: its body is stored there
    Column("forward_count", Integer, nullable=True),  # the forward header's count (cove.protocol.forwarding)
    Index("ix_envelopes_queue", "account_id", "device_id", "id"),
    Index("ix_envelopes_expiry", "expires_at_ms"),
    # Queue ids are never reused (SQLite would otherwise reuse the highest deleted rowid): clients
    # recognise a redelivered envelope by its id.
    sqlite_autoincrement=True,
)

group_messages = Table(
    "group_messages",
    metadata,
    Column("id", _queue_id, primary_key=True, autoincrement=True),
    Column("group_id", String(32), nullable=False),
    Column("sender_account_id", String(36), nullable=False),
    Column("sender_device_id", Integer, nullable=False),
    Column("client_message_id", String(64), nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("server_ts_ms", BigInteger, nullable=False),
    Column("expires_at_ms", BigInteger, nullable=False),
    Column("remaining", Integer, nullable=False),  # device queue rows not acked yet; deleted at 0
    Column("forward_count", Integer, nullable=True),
    Index("ix_group_messages_expiry", "expires_at_ms"),
    sqlite_autoincrement=True,
)

# What a group message's queue rows leave empty: the message stored once has them (a third of a row's bytes).
GROUP_MESSAGE_FIELDS = frozenset({"sender_account_id", "client_message_id", "body"})

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
    envelopes.c.group_message_id,
)


def _stored_once(name: str) -> Any:  # noqa: ANN401 - a column expression
    return case((envelopes.c.group_message_id.is_(None), envelopes.c[name]), else_=group_messages.c[name])


# A group message's row reads its body, sender, client message id and forward count from the message stored once.
_QUEUE_COLUMNS = tuple(
    _stored_once(column.name) if column.name in GROUP_MESSAGE_FIELDS else column for column in _ENVELOPE_COLUMNS
) + (group_messages.c.group_id, _stored_once("forward_count"))
_QUEUE = envelopes.outerjoin(group_messages, group_messages.c.id == envelopes.c.group_message_id)


# The writer's statements are built once: constructing a statement costs more than running it on SQLite.
_INSERT_ENVELOPES = insert(envelopes).returning(envelopes.c.id, sort_by_parameter_order=True)


def insert_envelopes(conn: Connection, batch: list[Envelope]) -> list[Envelope]:
    """Insert envelopes and return them with their queue ids, in the order given."""
    if not batch:
        return []
    result = conn.execute(_INSERT_ENVELOPES, [e.row() for e in batch])
    return [e.with_id(row.id) for e, row in zip(batch, result, strict=True)]


_INSERT_GROUP_MESSAGE = insert(group_messages).returning(group_messages.c.id)


def insert_group_message(conn: Connection, row: dict[str, Any]) -> int:
    """Store a group message's ciphertext once; returns its id, which its device queue rows point at."""
    return conn.execute(_INSERT_GROUP_MESSAGE, row).scalar_one()


# A group message's fan-out rows carry no body: ``Envelope.row`` would copy the ciphertext into every one.
_INSERT_FAN_OUT = insert(envelopes).returning(envelopes.c.id, sort_by_parameter_order=True)
_FAN_OUT_COLUMNS = (
    "kind",
    "sender_account_id",
    "sender_device_id",
    "client_message_id",
    "body",
    "server_ts_ms",
    "expires_at_ms",
    "group_message_id",
)
_SQLITE_FAN_OUT = (
    f"INSERT INTO envelopes (account_id, device_id, {', '.join(_FAN_OUT_COLUMNS)}) "
    f"VALUES ({', '.join('?' * (len(_FAN_OUT_COLUMNS) + 2))})"
)


def insert_fan_out(conn: Connection, shared: dict[str, Any], devices: list[tuple[str, int]]) -> list[int]:
    """Insert one group message's queue rows (``shared`` columns, body empty) for ``devices``; their ids, in order.

    On SQLite one plain executemany on the sqlite3 connection: SQLAlchemy would run a RETURNING insert per row
    there, 50 ms for a group of 1,024, and even its plain executemany costs a fifth more than the insert. The ids
    need no RETURNING: the writer's transaction holds SQLite's only write lock, and AUTOINCREMENT gives each row
    the previous highest id + 1, so the rows took the last ``len(devices)`` ids of the sequence."""
    if not devices:
        return []
    if conn.dialect.name != "sqlite":
        return [
            row[0]
            for row in conn.execute(_INSERT_FAN_OUT, [{**shared, "account_id": a, "device_id": d} for a, d in devices])
        ]
    values = tuple(shared[name] for name in _FAN_OUT_COLUMNS)
    cursor = _sqlite(conn).cursor()
    try:
        cursor.executemany(_SQLITE_FAN_OUT, [(account, device, *values) for account, device in devices])
        cursor.execute("SELECT seq FROM sqlite_sequence WHERE name = 'envelopes'")
        last = cursor.fetchone()[0]
    finally:
        cursor.close()
    return list(range(last - len(devices) + 1, last + 1))


def _sqlite(conn: Connection) -> Any:  # noqa: ANN401 - a DBAPI connection
    """The DBAPI connection under ``conn`` (the writer's: sqlite3), inside the same transaction: for the statements
    that run once per device (fan-out, acks), where SQLAlchemy's cursor and result handling cost more than
    SQLite's own work."""
    return conn.connection.dbapi_connection


_LOWER_REMAINING = (
    update(group_messages)
    .where(group_messages.c.id == bindparam("message"))
    .values(remaining=group_messages.c.remaining - bindparam("acked"))
)
_DELETE_DELIVERED = delete(group_messages).where(
    group_messages.c.id.in_(bindparam("ids", expanding=True)), group_messages.c.remaining <= 0
)
_STORED_SENDER = accounts.alias("stored_sender")
_GROUP_MESSAGES = select(
    group_messages.c.id,
    group_messages.c.group_id,
    group_messages.c.sender_account_id,
    group_messages.c.sender_device_id,
    group_messages.c.client_message_id,
    exists().where(_STORED_SENDER.c.id == group_messages.c.sender_account_id),
).where(group_messages.c.id.in_(bindparam("ids", expanding=True)))


class GroupMessageRef(NamedTuple):
    """What a receipt needs of a group message: its group, sender and client message id."""

    group_id: str
    sender_account_id: str
    sender_device_id: int
    client_message_id: str
    sender_exists: bool


def lower_remaining(conn: Connection, acked: dict[int, int]) -> dict[int, GroupMessageRef]:
    """Count acked queue rows against their group messages (``{message id: rows acked}``) and delete the messages
    every device has acked; returns what the receipts need of each message still stored before this."""
    if not acked:
        return {}
    ids = sorted(acked)
    found: dict[int, GroupMessageRef] = {}
    for chunk in _chunks(ids):
        found.update((row[0], GroupMessageRef(*row[1:])) for row in conn.execute(_GROUP_MESSAGES, {"ids": chunk}))
    conn.execute(_LOWER_REMAINING, [{"message": i, "acked": acked[i]} for i in ids])
    for chunk in _chunks(ids):
        conn.execute(_DELETE_DELIVERED, {"ids": chunk})
    return found


class AckedEnvelope(NamedTuple):
    """What a receipt needs of an envelope once it is deleted (never its body)."""

    account_id: str
    device_id: int
    kind: int
    sender_account_id: str
    sender_device_id: int
    client_message_id: str
    group_message_id: int | None
    sender_exists: bool  # whether the sender still has an account (the one field not a column: keep it last)


# Bound parameters per statement stay far below SQLite's and asyncpg's limit of 32,767.
_CHUNK = 1000


def _chunks(items: list, size: int = _CHUNK):  # noqa: ANN001, ANN202
    for start in range(0, len(items), size):
        yield items[start : start + size]


# A repeated (sender, client message id) is skipped by the primary key; RETURNING names the new ones. One
# statement instead of a look-up and an insert, and two relay processes cannot both take a send for new.
_RECORD_SENT = {
    dialect: statement.returning(sent_messages.c.sender_account_id, sent_messages.c.client_message_id)
    for dialect, statement in insert_new(sent_messages).items()
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
        select(*_QUEUE_COLUMNS)
        .select_from(_QUEUE)
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
_DELETE_ACKED = (
    delete(envelopes)
    .where(
        envelopes.c.id.in_(bindparam("ids", expanding=True)),
        tuple_(envelopes.c.id, envelopes.c.account_id, envelopes.c.device_id).in_(bindparam("keys", expanding=True)),
    )
    .returning(*(envelopes.c[name] for name in AckedEnvelope._fields[:-1]))  # the envelope's own columns
)
_SENDER_AT = AckedEnvelope._fields.index("sender_account_id")
_EXISTING = select(accounts.c.id).where(accounts.c.id.in_(bindparam("ids", expanding=True)))


# Statement sizes for SQLite: a chunk is padded (with its last key again, which deletes nothing more) to one of
# these, so that sqlite3's statement cache holds the few statements there are rather than parsing a new one,
# thousands of bound values long, for every count of acks a commit happens to have.
_SQLITE_ACK_SIZES = (8, 32, 128, 512, 2048)


@functools.lru_cache(maxsize=len(_SQLITE_ACK_SIZES))
def _sqlite_delete_acked(size: int) -> str:
    """``_DELETE_ACKED`` for ``size`` keys as SQLite text: SQLAlchemy renders an expanding IN anew at every call,
    which cost the writer more than the deletes themselves."""
    return (
        f"DELETE FROM envelopes WHERE id IN ({', '.join('?' * size)}) "
        f"AND (id, account_id, device_id) IN (VALUES {', '.join(['(?, ?, ?)'] * size)}) "
        f"RETURNING {', '.join(AckedEnvelope._fields[:-1])}"
    )


def _delete_acked_sqlite(conn: Connection, keys: list[tuple[int, str, int]]) -> list[Any]:
    deleted: list[Any] = []
    cursor = _sqlite(conn).cursor()
    try:
        for chunk in _chunks(keys, _SQLITE_ACK_SIZES[-1]):
            size = next(s for s in _SQLITE_ACK_SIZES if s >= len(chunk))
            chunk += [chunk[-1]] * (size - len(chunk))
            params = [key[0] for key in chunk]
            for key in chunk:
                params += key
            cursor.execute(_sqlite_delete_acked(size), params)
            deleted += cursor.fetchall()
    finally:
        cursor.close()
    return deleted


def delete_acked(conn: Connection, keys: list[tuple[str, int, int]]) -> list[AckedEnvelope]:
    """Delete envelopes by ``(account, device, queue id)`` and return those that existed (for receipts)."""
    ordered = sorted({(i, account, device) for account, device, i in keys})
    if conn.dialect.name == "sqlite":
        deleted = _delete_acked_sqlite(conn, ordered)
    else:
        deleted = []
        # A quarter of the usual chunk: each triple binds three values beside its id.
        for chunk in _chunks(ordered, _CHUNK // 4):
            deleted += conn.execute(_DELETE_ACKED, {"ids": [key[0] for key in chunk], "keys": chunk}).all()
    # Asked apart, once per sender: in SQLite's RETURNING an EXISTS per row scanned the accounts for each.
    senders = sorted({row[_SENDER_AT] for row in deleted})
    existing: set[str] = set()
    for chunk in _chunks(senders):
        existing.update(conn.execute(_EXISTING, {"ids": chunk}).scalars())
    return [AckedEnvelope(*row, row[_SENDER_AT] in existing) for row in deleted]


async def purge_expired(conn: AsyncConnection, now_ms: int, idempotency_horizon_ms: int) -> int:
    expired = await conn.execute(delete(envelopes).where(envelopes.c.expires_at_ms <= now_ms))
    await conn.execute(delete(group_messages).where(group_messages.c.expires_at_ms <= now_ms))
    await conn.execute(delete(sent_messages).where(sent_messages.c.created_at_ms <= idempotency_horizon_ms))
    return expired.rowcount or 0


# Counting the queues for the health figures stops here: a bounded scan every interval of every process.
QUEUE_COUNT_CAP = 100_000
_LIVE_ROWS = text("SELECT n_live_tup FROM pg_stat_user_tables WHERE relid = 'envelopes'::regclass")


async def queued_envelopes(conn: AsyncConnection) -> int:
    """Envelopes in every queue (waiting for their device, or expired and not purged yet). Exact up to
    QUEUE_COUNT_CAP, a scan of at most that many index entries; past it PostgreSQL's statistics' live-row
    estimate (one catalogue row, kept from the inserts and deletes, seconds behind), and on SQLite the cap."""
    capped = select(envelopes.c.id).limit(QUEUE_COUNT_CAP).subquery()
    count = (await conn.execute(select(func.count()).select_from(capped))).scalar_one()
    if count < QUEUE_COUNT_CAP or conn.dialect.name != "postgresql":
        return count
    return max(count, int((await conn.execute(_LIVE_ROWS)).scalar() or 0))


async def delete_account_queues(conn: AsyncConnection, account_id: str, device_id: int | None = None) -> None:
    """Drop every envelope queued for the account's devices, or one device (encrypted to keys now gone); their
    group messages count them as delivered, so that one nobody else waits for goes too."""
    mine = and_(envelopes.c.account_id == account_id, *((envelopes.c.device_id == device_id,) if device_id else ()))
    rows = await conn.execute(
        select(envelopes.c.group_message_id, func.count())
        .where(mine, envelopes.c.group_message_id.is_not(None))
        .group_by(envelopes.c.group_message_id)
    )
    counts = {message: n for message, n in rows}
    await conn.execute(delete(envelopes).where(mine))
    await conn.run_sync(lambda sync: lower_remaining(sync, counts))


async def forget_account(conn: AsyncConnection, account_id: str) -> None:
    """An account's deletion: its queues and the idempotency records of its sends (cove.accounts.deletion says
    what is kept: the mail it sent that still waits for its recipients)."""
    await delete_account_queues(conn, account_id)
    await conn.execute(delete(sent_messages).where(sent_messages.c.sender_account_id == account_id))
