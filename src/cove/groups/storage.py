"""Groups' tables: membership (account ids, roles, a revision) and hashed invite codes. Nothing else about a
group (its name, description, avatar) reaches the relay: members send those to each other encrypted."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Table,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from cove.db import metadata
from cove.groups.rules import Member, Role

groups = Table(
    "groups",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("revision", Integer, nullable=False),
    Column("created_at_ms", BigInteger, nullable=False),
)

group_members = Table(
    "group_members",
    metadata,
    Column("group_id", String(32), primary_key=True),
    Column("account_id", String(36), primary_key=True),
    Column("role", String(8), nullable=False),
    Column("joined_revision", Integer, nullable=False),
    ForeignKeyConstraint(["group_id"], ["groups.id"], ondelete="CASCADE"),
    # No foreign key to the account: a deleted account leaves its groups through cove.groups.hooks, which also
    # passes the admin role on and tells the others, where a cascade would have dropped the row silently.
    Index("ix_group_members_account", "account_id"),
)

group_invites = Table(
    "group_invites",
    metadata,
    Column("code_hash", String(64), primary_key=True),
    Column("group_id", String(32), nullable=False),
    Column("created_by", String(36), nullable=False),
    Column("created_at_ms", BigInteger, nullable=False),
    ForeignKeyConstraint(["group_id"], ["groups.id"], ondelete="CASCADE"),
    Index("ix_group_invites_group", "group_id"),
)


async def create(conn: AsyncConnection, group_id: str, members: list[tuple[str, Role]], now_ms: int) -> None:
    await conn.execute(insert(groups).values(id=group_id, revision=1, created_at_ms=now_ms))
    await add(conn, group_id, members, 1)


async def add(conn: AsyncConnection, group_id: str, members: list[tuple[str, Role]], revision: int) -> None:
    if members:
        rows = [{"group_id": group_id, "account_id": a, "role": r, "joined_revision": revision} for a, r in members]
        await conn.execute(insert(group_members), rows)


async def next_revision(conn: AsyncConnection, group_id: str) -> int | None:
    """Bump the group's revision, first in a change's transaction: on PostgreSQL it locks the group's row, so
    changes to one group run one after another and each sees the membership the one before left. None: no group."""
    row = await conn.execute(
        update(groups)
        .where(groups.c.id == group_id)
        .values(revision=groups.c.revision + 1)
        .returning(groups.c.revision)
    )
    return row.scalar_one_or_none()


async def revision(conn: AsyncConnection, group_id: str) -> int | None:
    return (await conn.execute(select(groups.c.revision).where(groups.c.id == group_id))).scalar_one_or_none()


async def members(conn: AsyncConnection, group_id: str) -> list[Member]:
    """The group's members, longest-standing first."""
    rows = await conn.execute(
        select(group_members.c.account_id, group_members.c.role, group_members.c.joined_revision)
        .where(group_members.c.group_id == group_id)
        .order_by(group_members.c.joined_revision, group_members.c.account_id)
    )
    return [Member(*row) for row in rows]


async def groups_of(conn: AsyncConnection, account_id: str) -> list[tuple[str, int, str, int]]:
    """(group id, revision, the account's role, member count) of every group the account is in."""
    mine = group_members.alias("mine")
    size = select(func.count()).where(group_members.c.group_id == mine.c.group_id).scalar_subquery().label("size")
    rows = await conn.execute(
        select(mine.c.group_id, groups.c.revision, mine.c.role, size)
        .join(groups, groups.c.id == mine.c.group_id)
        .where(mine.c.account_id == account_id)
        .order_by(mine.c.group_id)
    )
    return [tuple(row) for row in rows]  # type: ignore[misc]


async def remove(conn: AsyncConnection, group_id: str, account_ids: list[str]) -> None:
    await conn.execute(
        delete(group_members).where(group_members.c.group_id == group_id, group_members.c.account_id.in_(account_ids))
    )


async def set_role(conn: AsyncConnection, group_id: str, account_id: str, role: Role) -> None:
    await conn.execute(
        update(group_members)
        .where(group_members.c.group_id == group_id, group_members.c.account_id == account_id)
        .values(role=role)
    )


async def delete_group(conn: AsyncConnection, group_id: str) -> None:
    """A group nobody is in any more, with its invites."""
    await conn.execute(delete(group_invites).where(group_invites.c.group_id == group_id))
    await conn.execute(delete(groups).where(groups.c.id == group_id))


async def add_invite(conn: AsyncConnection, code_hash: str, group_id: str, created_by: str, now_ms: int) -> None:
    await conn.execute(
        insert(group_invites).values(
            code_hash=code_hash, group_id=group_id, created_by=created_by, created_at_ms=now_ms
        )
    )


async def revoke_invite(conn: AsyncConnection, group_id: str, code_hash: str) -> bool:
    result = await conn.execute(
        delete(group_invites).where(group_invites.c.group_id == group_id, group_invites.c.code_hash == code_hash)
    )
    return bool(result.rowcount)


async def invite_group(conn: AsyncConnection, code_hash: str) -> str | None:
    query = select(group_invites.c.group_id).where(group_invites.c.code_hash == code_hash)
    return (await conn.execute(query)).scalar_one_or_none()


async def memberships(conn: AsyncConnection, account_id: str) -> list[str]:
    query = select(group_members.c.group_id).where(group_members.c.account_id == account_id)
    return list((await conn.execute(query)).scalars())
