"""One-time and fallback key tables; taking a key for a bundle is a delete-returning, so no key is used twice."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Column, ForeignKeyConstraint, Integer, String, Table, delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from cove.db import metadata

_device_fk = (["account_id", "device_id"], ["devices.account_id", "devices.device_id"])

one_time_keys = Table(
    "one_time_keys",
    metadata,
    Column("account_id", String(36), primary_key=True),
    Column("device_id", Integer, primary_key=True),
    Column("key_id", String(64), primary_key=True),
    Column("public_key", String(64), nullable=False),
    Column("signature", String(128), nullable=False),
    ForeignKeyConstraint(*_device_fk, ondelete="CASCADE"),
)

fallback_keys = Table(
    "fallback_keys",
    metadata,
    Column("account_id", String(36), primary_key=True),
    Column("device_id", Integer, primary_key=True),
    Column("key_id", String(64), nullable=False),
    Column("public_key", String(64), nullable=False),
    Column("signature", String(128), nullable=False),
    ForeignKeyConstraint(*_device_fk, ondelete="CASCADE"),
)


@dataclass(frozen=True)
class SignedKey:
    key_id: str
    public_key: str
    signature: str


async def count_one_time_keys(conn: AsyncConnection, account_id: str, device_id: int) -> int:
    return (
        await conn.execute(
            select(func.count())
            .select_from(one_time_keys)
            .where(one_time_keys.c.account_id == account_id, one_time_keys.c.device_id == device_id)
        )
    ).scalar_one()


async def existing_key_ids(conn: AsyncConnection, account_id: str, device_id: int, key_ids: list[str]) -> set[str]:
    rows = await conn.execute(
        select(one_time_keys.c.key_id).where(
            one_time_keys.c.account_id == account_id,
            one_time_keys.c.device_id == device_id,
            one_time_keys.c.key_id.in_(key_ids),
        )
    )
    return {row.key_id for row in rows}


async def add_one_time_keys(conn: AsyncConnection, account_id: str, device_id: int, keys: list[SignedKey]) -> None:
    if keys:
        await conn.execute(
            insert(one_time_keys),
            [{"account_id": account_id, "device_id": device_id, **k.__dict__} for k in keys],
        )


async def set_fallback_key(conn: AsyncConnection, account_id: str, device_id: int, key: SignedKey) -> None:
    where = (fallback_keys.c.account_id == account_id, fallback_keys.c.device_id == device_id)
    await conn.execute(delete(fallback_keys).where(*where))
    await conn.execute(insert(fallback_keys).values(account_id=account_id, device_id=device_id, **key.__dict__))


async def has_fallback_key(conn: AsyncConnection, account_id: str, device_id: int) -> bool:
    row = await conn.execute(
        select(fallback_keys.c.key_id).where(
            fallback_keys.c.account_id == account_id, fallback_keys.c.device_id == device_id
        )
    )
    return row.first() is not None


async def take_key(conn: AsyncConnection, account_id: str, device_id: int) -> tuple[SignedKey, bool] | None:
    """Consume one one-time key of the device, or return its fallback key. ``(key, is_fallback)``."""
    where = (one_time_keys.c.account_id == account_id, one_time_keys.c.device_id == device_id)
    # A concurrent fetch may take the same oldest key first; the delete then returns nothing and we try
    # the next one, so each one-time key goes to exactly one caller.
    for _ in range(5):
        candidate = (
            await conn.execute(select(one_time_keys.c.key_id).where(*where).order_by(one_time_keys.c.key_id).limit(1))
        ).first()
        if candidate is None:
            break
        taken = (
            await conn.execute(
                delete(one_time_keys)
                .where(*where, one_time_keys.c.key_id == candidate.key_id)
                .returning(one_time_keys.c.key_id, one_time_keys.c.public_key, one_time_keys.c.signature)
            )
        ).first()
        if taken is not None:
            return SignedKey(taken.key_id, taken.public_key, taken.signature), False
    fallback = (
        await conn.execute(
            select(fallback_keys.c.key_id, fallback_keys.c.public_key, fallback_keys.c.signature).where(
                fallback_keys.c.account_id == account_id, fallback_keys.c.device_id == device_id
            )
        )
    ).first()
    if fallback is None:
        return None
    return SignedKey(fallback.key_id, fallback.public_key, fallback.signature), True


async def forget_account(conn: AsyncConnection, account_id: str, device_id: int | None = None) -> None:
    """An account's deletion (or one device's): its one-time and fallback keys go (the devices' rows cascade too,
    but this does not rely on SQLite's per-connection foreign-key pragma)."""
    for table in (one_time_keys, fallback_keys):
        one = (table.c.device_id == device_id,) if device_id is not None else ()
        await conn.execute(delete(table).where(table.c.account_id == account_id, *one))
