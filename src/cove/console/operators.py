"""The console's operators, kept in the relay's database (table ``console_operators``, migration 0023).

Only a name and a scrypt hash (cove.console.passwords) are kept; the console never learns anything else about
its operators. Names are checked here before they reach a query or a page.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import BigInteger, Column, String, Table, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from cove.db import metadata

NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")

console_operators = Table(
    "console_operators",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("password_hash", String(255), nullable=False),
    Column("created_at_ms", BigInteger, nullable=False),
    Column("last_login_ms", BigInteger, nullable=True),
)


class BadName(ValueError):
    """An operator name outside NAME: refused before it reaches the database."""


class OperatorExists(Exception):
    pass


@dataclass(frozen=True)
class Operator:
    name: str
    created_at_ms: int
    last_login_ms: int | None


def checked_name(name: str) -> str:
    if not NAME.fullmatch(name):
        raise BadName(
            "an operator name is 1 to 64 characters: lower-case letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


async def add(conn: AsyncConnection, name: str, password_hash: str, now_ms: int) -> None:
    try:
        await conn.execute(
            insert(console_operators).values(name=checked_name(name), password_hash=password_hash, created_at_ms=now_ms)
        )
    except IntegrityError:
        raise OperatorExists(name) from None


async def remove(conn: AsyncConnection, name: str) -> bool:
    done = await conn.execute(delete(console_operators).where(console_operators.c.name == name))
    return done.rowcount == 1


async def all_operators(conn: AsyncConnection) -> list[Operator]:
    t = console_operators
    rows = await conn.execute(select(t.c.name, t.c.created_at_ms, t.c.last_login_ms).order_by(t.c.name))
    return [Operator(r.name, r.created_at_ms, r.last_login_ms) for r in rows]


async def password_hash(conn: AsyncConnection, name: str) -> str | None:
    t = console_operators
    return await conn.scalar(select(t.c.password_hash).where(t.c.name == name))


async def logged_in(conn: AsyncConnection, name: str, now_ms: int) -> None:
    t = console_operators
    await conn.execute(update(t).where(t.c.name == name).values(last_login_ms=now_ms))
