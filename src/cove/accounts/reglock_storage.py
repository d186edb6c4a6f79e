"""The ``registration_locks`` table: one row per locked account (see cove.accounts.reglock)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKeyConstraint,
    Integer,
    LargeBinary,
    String,
    Table,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from cove.accounts.reglock import Lock, PinHash
from cove.accounts.storage import devices
from cove.db import metadata

registration_locks = Table(
    "registration_locks",
    metadata,
    Column("account_id", String(36), primary_key=True),
    Column("salt", LargeBinary(32), nullable=False),
    Column("pin_hash", LargeBinary(64), nullable=False),
    Column("scrypt_n", Integer, nullable=False),
    Column("scrypt_r", Integer, nullable=False),
    Column("scrypt_p", Integer, nullable=False),
    Column("set_at_ms", BigInteger, nullable=False),
    Column("failures", Integer, nullable=False),
    Column("last_failure_at_ms", BigInteger, nullable=False),
    ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
)


async def load(conn: AsyncConnection, account_id: str) -> Lock | None:
    row = (await conn.execute(select(registration_locks).where(registration_locks.c.account_id == account_id))).first()
    if row is None:
        return None
    pin = PinHash(row.salt, row.pin_hash, row.scrypt_n, row.scrypt_r, row.scrypt_p)
    return Lock(pin, row.set_at_ms, row.failures, row.last_failure_at_ms)


async def last_active_ms(conn: AsyncConnection, account_id: str) -> int:
    """When a device of the account was last seen (cove.accounts.presence), 0 if it has none."""
    seen = await conn.scalar(select(func.max(devices.c.last_seen_at_ms)).where(devices.c.account_id == account_id))
    return seen or 0


async def put(conn: AsyncConnection, account_id: str, lock: Lock) -> None:
    await remove(conn, account_id)
    await conn.execute(insert(registration_locks).values(account_id=account_id, **_columns(lock)))


async def remove(conn: AsyncConnection, account_id: str) -> None:
    await conn.execute(delete(registration_locks).where(registration_locks.c.account_id == account_id))


async def replace_if_same(conn: AsyncConnection, account_id: str, judged: Lock, lock: Lock) -> bool:
    """Store ``lock`` only if the stored one is still ``judged`` (a compare-and-set, so that parallel guesses
    each count); ``False`` when another request changed it meanwhile."""
    t = registration_locks.c
    result = await conn.execute(
        update(registration_locks)
        .where(
            t.account_id == account_id,
            t.salt == judged.pin.salt,
            t.failures == judged.failures,
            t.last_failure_at_ms == judged.last_failure_at_ms,
        )
        .values(**_columns(lock))
    )
    return result.rowcount == 1


def _columns(lock: Lock) -> dict[str, object]:
    return {
        "salt": lock.pin.salt,
        "pin_hash": lock.pin.digest,
        "scrypt_n": lock.pin.n,
        "scrypt_r": lock.pin.r,
        "scrypt_p": lock.pin.p,
        "set_at_ms": lock.set_at_ms,
        "failures": lock.failures,
        "last_failure_at_ms": lock.last_failure_at_ms,
    }
