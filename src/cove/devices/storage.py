"""Device lists, one-time link tokens and provisioning channels.

The relay keeps the signed list as the primary uploaded it, and the device ids it names in a table of their own, so
that the accounts capability can select the current devices (registered and named) in SQL
(``cove.accounts.storage.count_only_listed``). Link tokens and channel secrets are stored only as SHA-256 digests;
the channel's messages only as the sealed text the devices wrote.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Table,
    Text,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from cove.accounts import storage as account_storage
from cove.accounts.storage import devices
from cove.db import metadata

_account_fk = (["account_id"], ["accounts.id"])

device_lists = Table(
    "device_lists",
    metadata,
    Column("account_id", String(36), primary_key=True),
    Column("version", BigInteger, nullable=False),
    Column("list", Text, nullable=False),
    Column("signature", String(128), nullable=False),
    Column("updated_at_ms", BigInteger, nullable=False),
    ForeignKeyConstraint(*_account_fk, ondelete="CASCADE"),
)

device_list_members = Table(
    "device_list_members",
    metadata,
    Column("account_id", String(36), primary_key=True),
    Column("device_id", Integer, primary_key=True),
    ForeignKeyConstraint(*_account_fk, ondelete="CASCADE"),
)

link_tokens = Table(
    "link_tokens",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("account_id", String(36), nullable=False),
    Column("expires_at_ms", BigInteger, nullable=False),
    ForeignKeyConstraint(*_account_fk, ondelete="CASCADE"),
    Index("ix_link_tokens_account", "account_id"),
)

provisioning_channels = Table(
    "provisioning_channels",
    metadata,
    Column("address", String(32), primary_key=True),
    Column("secret_hash", String(64), nullable=False),
    Column("expires_at_ms", BigInteger, nullable=False),
    # The account whose primary wrote the message: only it reads the reply.
    Column("account_id", String(36), nullable=True),
    Column("message", Text, nullable=True),
    Column("reply", Text, nullable=True),
    Index("ix_provisioning_expiry", "expires_at_ms"),
)

account_storage.count_only_listed(device_lists, device_list_members)


@dataclass(frozen=True)
class StoredList:
    version: int
    text: str
    signature: str


@dataclass(frozen=True)
class Channel:
    address: str
    secret_hash: str
    expires_at_ms: int
    account_id: str | None
    message: str | None
    reply: str | None


async def load_list(conn: AsyncConnection, account_id: str) -> StoredList | None:
    row = (await conn.execute(select(device_lists).where(device_lists.c.account_id == account_id))).first()
    return StoredList(row.version, row.list, row.signature) if row else None


async def replace_list(
    conn: AsyncConnection, account_id: str, judged: StoredList | None, new: StoredList, device_ids: set[int], now: int
) -> bool:
    """Store ``new`` only if the stored list is still ``judged`` (a compare-and-set on the version)."""
    values = {"version": new.version, "list": new.text, "signature": new.signature, "updated_at_ms": now}
    if judged is None:
        if await load_list(conn, account_id) is not None:
            return False
        await conn.execute(insert(device_lists).values(account_id=account_id, **values))
    else:
        changed = await conn.execute(
            update(device_lists)
            .where(device_lists.c.account_id == account_id, device_lists.c.version == judged.version)
            .values(values)
        )
        if changed.rowcount != 1:
            return False
    await conn.execute(delete(device_list_members).where(device_list_members.c.account_id == account_id))
    await conn.execute(
        insert(device_list_members), [{"account_id": account_id, "device_id": d} for d in sorted(device_ids)]
    )
    return True


async def companion_count(conn: AsyncConnection, account_id: str) -> int:
    return (
        await conn.execute(
            select(func.count()).select_from(devices).where(devices.c.account_id == account_id, devices.c.device_id > 1)
        )
    ).scalar_one()


async def used_device_ids(conn: AsyncConnection, account_id: str) -> set[int]:
    rows = await conn.execute(select(devices.c.device_id).where(devices.c.account_id == account_id))
    return {row.device_id for row in rows}


async def account_devices(conn: AsyncConnection, account_id: str):  # noqa: ANN201
    """Every registered device of the account with what ``GET /v1/devices`` shows, and whether the list names it."""
    listed = select(device_list_members.c.device_id).where(device_list_members.c.account_id == account_id)
    return (
        await conn.execute(
            select(devices, devices.c.device_id.in_(listed.scalar_subquery()).label("listed"))
            .where(devices.c.account_id == account_id)
            .order_by(devices.c.device_id)
        )
    ).all()


async def add_link_token(conn: AsyncConnection, account_id: str, token_hash: str, expires_at_ms: int) -> None:
    await conn.execute(
        insert(link_tokens).values(token_hash=token_hash, account_id=account_id, expires_at_ms=expires_at_ms)
    )


async def take_link_token(conn: AsyncConnection, token_hash: str, now: int) -> str | None:
    """Use the token up: the account it links to, or ``None`` when it is unknown, used or expired."""
    row = (
        await conn.execute(
            delete(link_tokens)
            .where(link_tokens.c.token_hash == token_hash)
            .returning(link_tokens.c.account_id, link_tokens.c.expires_at_ms)
        )
    ).first()
    return row.account_id if row is not None and row.expires_at_ms > now else None


async def remove_device(conn: AsyncConnection, account_id: str, device_id: int) -> bool:
    gone = await conn.execute(
        delete(devices).where(devices.c.account_id == account_id, devices.c.device_id == device_id)
    )
    return gone.rowcount == 1


async def forget_account(conn: AsyncConnection, account_id: str) -> None:
    """A new identity (or a deleted account): the old primary's list, link tokens and channels mean nothing any more."""
    for table in (device_lists, device_list_members, link_tokens, provisioning_channels):
        await conn.execute(delete(table).where(table.c.account_id == account_id))


async def open_channel(conn: AsyncConnection, address: str, secret_hash: str, expires_at_ms: int) -> None:
    await conn.execute(
        insert(provisioning_channels).values(address=address, secret_hash=secret_hash, expires_at_ms=expires_at_ms)
    )


async def load_channel(conn: AsyncConnection, address: str, now: int) -> Channel | None:
    row = (
        await conn.execute(
            select(provisioning_channels).where(
                provisioning_channels.c.address == address, provisioning_channels.c.expires_at_ms > now
            )
        )
    ).first()
    return Channel(*row) if row else None


async def write_message(conn: AsyncConnection, address: str, account_id: str, message: str, now: int) -> bool:
    """The primary's message, once: ``False`` when the channel is gone or already has one."""
    c = provisioning_channels.c
    written = await conn.execute(
        update(provisioning_channels)
        .where(c.address == address, c.expires_at_ms > now, c.message.is_(None))
        .values(account_id=account_id, message=message)
    )
    return written.rowcount == 1


async def write_reply(conn: AsyncConnection, address: str, reply: str, now: int) -> bool:
    c = provisioning_channels.c
    written = await conn.execute(
        update(provisioning_channels)
        .where(c.address == address, c.expires_at_ms > now, c.message.isnot(None), c.reply.is_(None))
        .values(reply=reply)
    )
    return written.rowcount == 1


async def purge_channels(conn: AsyncConnection, now: int) -> None:
    await conn.execute(delete(provisioning_channels).where(provisioning_channels.c.expires_at_ms <= now))
    await conn.execute(delete(link_tokens).where(link_tokens.c.expires_at_ms <= now))
