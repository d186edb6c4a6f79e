"""The consent ledger in the relay's database: append in the caller's transaction, checkpoint, load, verify.

Entries are written in the same transaction as the choice they record (the caller passes its
``AsyncConnection``), so a choice never exists without its ledger entry, or the reverse. Appending reads
the account's head and inserts one row. Two concurrent appends to one account both compute the same
``seq``; the unique ``(account_id, seq)`` constraint lets one through and makes the other's transaction
fail with ``IntegrityError`` (retry the whole transaction). Appends to different accounts never conflict.

There is no foreign key to ``accounts``: the record of what a person agreed to must outlive their account.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, NamedTuple

from sqlalchemy import (
    BigInteger,
    Column,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.engine import Connection, Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cove.clock import now_ms
from cove.consent import ledger
from cove.consent.ledger import Checkpoint, Entry, Head, Problem
from cove.db import metadata

log = logging.getLogger(__name__)

# SQLite only auto-increments an INTEGER PRIMARY KEY (the rowid); PostgreSQL gets a BIGINT identity.
_row_id = BigInteger().with_variant(Integer, "sqlite")

ledger_entries = Table(
    "ledger_entries",
    metadata,
    Column("id", _row_id, primary_key=True, autoincrement=True),
    Column("account_id", String(36), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("payload", Text, nullable=False),
    Column("at_ms", BigInteger, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    # Also the index on account_id: the head lookup (account_id = ? ORDER BY seq DESC LIMIT 1) and
    # loading one account both use it, so a separate account_id index would only cost writes.
    UniqueConstraint("account_id", "seq", name="uq_ledger_entries_account_seq"),
    # Row ids are never reused (SQLite would otherwise reuse the highest deleted rowid): checkpoints
    # name rows by id, and a reused id could stand in for a deleted entry.
    sqlite_autoincrement=True,
)

ledger_checkpoints = Table(
    "ledger_checkpoints",
    metadata,
    Column("id", _row_id, primary_key=True, autoincrement=True),
    Column("last_entry_id", BigInteger, nullable=False),
    Column("heads", Text, nullable=False),  # JSON [[account_id, seq, hash], ...] sorted by account
    Column("at_ms", BigInteger, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    # One successor per checkpoint: two checkpointers racing cannot fork the chain.
    UniqueConstraint("prev_hash", name="uq_ledger_checkpoints_prev_hash"),
    sqlite_autoincrement=True,
)

_ENTRY_COLUMNS = (
    ledger_entries.c.id,
    ledger_entries.c.account_id,
    ledger_entries.c.seq,
    ledger_entries.c.kind,
    ledger_entries.c.payload,
    ledger_entries.c.at_ms,
    ledger_entries.c.prev_hash,
    ledger_entries.c.hash,
)

_CHECKPOINT_COLUMNS = (
    ledger_checkpoints.c.id,
    ledger_checkpoints.c.last_entry_id,
    ledger_checkpoints.c.heads,
    ledger_checkpoints.c.at_ms,
    ledger_checkpoints.c.prev_hash,
    ledger_checkpoints.c.hash,
)

_BATCH = 5000


class Ledger(NamedTuple):
    entries: list[Entry]
    checkpoints: list[Checkpoint]


def _entry(row: Row) -> Entry:
    try:
        payload = json.loads(row.payload)
    except (TypeError, ValueError):
        payload = None
    if not isinstance(payload, dict):
        payload = {ledger.UNREADABLE: row.payload}  # its hash cannot match: verify reports it
    return Entry(row.account_id, row.seq, row.kind, payload, row.at_ms, row.prev_hash, row.hash, row.id)


def _checkpoint(row: Row) -> Checkpoint:
    try:
        heads = tuple(Head(str(a), int(s), str(h)) for a, s, h in json.loads(row.heads))
    except (TypeError, ValueError):
        heads = ()  # its hash cannot match: verify reports the checkpoint as edited
    return Checkpoint(row.last_entry_id, heads, row.at_ms, row.prev_hash, row.hash, row.id)


async def head(conn: AsyncConnection, account_id: str) -> Head | None:
    """The account's newest entry (seq and hash), or None before its first."""
    t = ledger_entries
    row = (
        await conn.execute(
            select(t.c.seq, t.c.hash).where(t.c.account_id == account_id).order_by(t.c.seq.desc()).limit(1)
        )
    ).first()
    return Head(account_id, row.seq, row.hash) if row else None


def _row(entry: Entry) -> dict[str, Any]:
    return {
        "account_id": entry.account_id,
        "seq": entry.seq,
        "kind": entry.kind,
        "payload": ledger.canonical_json(entry.payload),
        "at_ms": entry.at_ms,
        "prev_hash": entry.prev_hash,
        "hash": entry.hash,
    }


async def append(conn: AsyncConnection, account_id: str, kind: str, payload: Mapping[str, Any], at_ms: int) -> Entry:
    """Append an entry to the account's chain, in the caller's transaction; returns it with its row id."""
    entry = ledger.next_entry(await head(conn, account_id), account_id, kind, payload, at_ms)
    result = await conn.execute(insert(ledger_entries).values(_row(entry)).returning(ledger_entries.c.id))
    return replace(entry, id=result.scalar_one())


def heads_of(conn: Connection, account_ids: list[str]) -> dict[str, Head]:
    """The newest entry of each account (synchronous: for batched writers on one connection)."""
    t = ledger_entries
    newest = (
        select(t.c.account_id, func.max(t.c.seq).label("seq"))
        .where(t.c.account_id.in_(account_ids))
        .group_by(t.c.account_id)
        .subquery()
    )
    rows = conn.execute(
        select(t.c.account_id, t.c.seq, t.c.hash).join(
            newest, and_(t.c.account_id == newest.c.account_id, t.c.seq == newest.c.seq)
        )
    )
    return {r.account_id: Head(r.account_id, r.seq, r.hash) for r in rows}


def insert_entries(conn: Connection, entries: list[Entry]) -> None:
    if entries:
        conn.execute(insert(ledger_entries), [_row(e) for e in entries])


async def checkpoint(conn: AsyncConnection, at_ms: int) -> Checkpoint | None:
    """Seal the heads that changed since the previous checkpoint; None when nothing was appended since.

    On PostgreSQL the entries table is locked against appends for the moment this takes: row ids are
    handed out before commit, so without the lock a transaction still in flight could commit a row below
    ``last_entry_id`` after the checkpoint, and no checkpoint would ever cover it. The lock also makes
    concurrent checkpointers take turns. (SQLite has one writer at a time: ids follow commit order.)
    """
    e, c = ledger_entries, ledger_checkpoints
    if conn.dialect.name == "postgresql":
        await conn.execute(text("LOCK TABLE ledger_entries IN SHARE ROW EXCLUSIVE MODE"))
    previous = (await conn.execute(select(c.c.last_entry_id, c.c.hash).order_by(c.c.id.desc()).limit(1))).first()
    after = previous.last_entry_id if previous else 0
    changed = (
        select(e.c.account_id, func.max(e.c.seq).label("seq")).where(e.c.id > after).group_by(e.c.account_id).subquery()
    )
    rows = (
        await conn.execute(
            select(e.c.id, e.c.account_id, e.c.seq, e.c.hash).join(
                changed, and_(e.c.account_id == changed.c.account_id, e.c.seq == changed.c.seq)
            )
        )
    ).all()
    if not rows:
        return None
    last_entry_id = max(row.id for row in rows)
    heads = [Head(row.account_id, row.seq, row.hash) for row in rows]
    made = ledger.make_checkpoint(previous.hash if previous else ledger.GENESIS, last_entry_id, heads, at_ms)
    result = await conn.execute(
        insert(c)
        .values(
            last_entry_id=made.last_entry_id,
            heads=ledger.canonical_json([list(h) for h in made.heads]),
            at_ms=made.at_ms,
            prev_hash=made.prev_hash,
            hash=made.hash,
        )
        .returning(c.c.id)
    )
    return replace(made, id=result.scalar_one())


async def count(conn: AsyncConnection) -> tuple[int, int]:
    """How many entries and checkpoints the ledger holds."""
    entries = (await conn.execute(select(func.count()).select_from(ledger_entries))).scalar_one()
    checkpoints = (await conn.execute(select(func.count()).select_from(ledger_checkpoints))).scalar_one()
    return entries, checkpoints


async def load_all(conn: AsyncConnection, on_rows: Callable[[int], None] | None = None) -> Ledger:
    """Every entry and checkpoint, in row-id order; ``on_rows(n)`` is told as batches of rows arrive.

    Checkpoints are read first: everything a checkpoint names was committed before it, so the entries
    read afterwards include it even while the relay keeps appending.
    """
    checkpoints = [
        _checkpoint(row) for row in await conn.execute(select(*_CHECKPOINT_COLUMNS).order_by(ledger_checkpoints.c.id))
    ]
    if on_rows:
        on_rows(len(checkpoints))
    entries: list[Entry] = []
    result = await conn.stream(
        select(*_ENTRY_COLUMNS).order_by(ledger_entries.c.id).execution_options(yield_per=_BATCH)
    )
    async for batch in result.partitions(_BATCH):
        entries += [_entry(row) for row in batch]
        if on_rows:
            on_rows(len(batch))
    return Ledger(entries, checkpoints)


async def load_account(conn: AsyncConnection, account_id: str, limit: int | None = None) -> list[Entry]:
    """One account's entries in seq order (empty for an account the ledger has never seen), the first ``limit``."""
    t = ledger_entries
    statement = select(*_ENTRY_COLUMNS).where(t.c.account_id == account_id).order_by(t.c.seq, t.c.id)
    rows = await conn.execute(statement if limit is None else statement.limit(limit))
    return [_entry(row) for row in rows]


async def verify_database(conn: AsyncConnection) -> list[Problem]:
    """Load the whole ledger and verify it (see :func:`cove.consent.ledger.verify`)."""
    loaded = await load_all(conn)
    return ledger.verify(loaded.entries, loaded.checkpoints)


async def checkpoint_forever(engine: AsyncEngine, every_seconds: float = 60.0) -> None:
    """Checkpoint the ledger every so often, for the relay's background; failures are logged, not fatal.

    Each new checkpoint's hash is logged: a copy outside the database anchors the newest checkpoint.
    """
    while True:
        try:
            async with engine.begin() as conn:
                made = await checkpoint(conn, now_ms())
            if made is not None:
                log.info(
                    "consent ledger checkpoint %d: rows up to %d, %d accounts changed, hash %s",
                    made.id,
                    made.last_entry_id,
                    len(made.heads),
                    made.hash,
                )
        except Exception:
            log.exception("consent ledger checkpoint failed")
        await asyncio.sleep(every_seconds)
