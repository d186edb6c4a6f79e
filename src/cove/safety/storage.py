"""Safety tables: the verdict per account, and the banned phone numbers registration is refused for.

Neither table has a foreign key to ``accounts``: a verdict outlives the account it judged (deleting your
account does not erase that you were banned, and the sharing gateway exports verdicts as safety signals).
"""

from __future__ import annotations

from typing import NamedTuple

from sqlalchemy import BigInteger, Column, Index, String, Table, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from cove.db import metadata
from cove.safety.verdicts import ReasonCode, Verdict

safety_verdicts = Table(
    "safety_verdicts",
    metadata,
    Column("account_id", String(36), primary_key=True),
    Column("reason_code", String(40), nullable=False),
    Column("banned_at_ms", BigInteger, nullable=False),
    Column("lifted_at_ms", BigInteger, nullable=True),
    # When the row last changed (a ban or a lift): the incremental export reads rows changed since an
    # instant, and a lift changes no banned_at_ms.
    Column("updated_at_ms", BigInteger, nullable=False),
    Index("ix_safety_verdicts_banned", "banned_at_ms"),
    Index("ix_safety_verdicts_updated", "updated_at_ms"),
)

# The person, not only the account, is kept out: a banned user could otherwise delete the account (which
# erases the accounts row and with it the number) and register the same number again. So the number itself
# is kept here, in clear, for as long as the ban runs; a hash would protect nothing (phone numbers are a
# small space, enumerated in seconds) while pretending to. The row goes when the ban is lifted.
banned_numbers = Table(
    "banned_numbers",
    metadata,
    Column("phone_number", String(20), primary_key=True),
    Column("reason_code", String(40), nullable=False),
    Column("banned_at_ms", BigInteger, nullable=False),
    # The account banned with this number, if it had one: lifting the ban then lifts that account's verdict
    # even after the account (and with it the link from number to account) was deleted.
    Column("account_id", String(36), nullable=True),
)


class BannedNumber(NamedTuple):
    phone_number: str
    reason: ReasonCode
    banned_at_ms: int
    account_id: str | None


async def banned_reason(conn: AsyncConnection, phone_number: str) -> ReasonCode | None:
    row = (
        await conn.execute(select(banned_numbers.c.reason_code).where(banned_numbers.c.phone_number == phone_number))
    ).first()
    return ReasonCode(row.reason_code) if row else None


async def load_verdict(conn: AsyncConnection, account_id: str) -> Verdict | None:
    t = safety_verdicts
    row = (
        await conn.execute(
            select(t.c.account_id, t.c.reason_code, t.c.banned_at_ms, t.c.lifted_at_ms).where(
                t.c.account_id == account_id
            )
        )
    ).first()
    return Verdict(row.account_id, ReasonCode(row.reason_code), row.banned_at_ms, row.lifted_at_ms) if row else None


async def save_verdict(conn: AsyncConnection, verdict: Verdict, now_ms: int) -> None:
    values = {
        "reason_code": verdict.reason.value,
        "banned_at_ms": verdict.banned_at_ms,
        "lifted_at_ms": verdict.lifted_at_ms,
        "updated_at_ms": now_ms,
    }
    t = safety_verdicts
    updated = await conn.execute(update(t).where(t.c.account_id == verdict.account_id).values(values))
    if updated.rowcount == 0:
        await conn.execute(insert(t).values(account_id=verdict.account_id, **values))


async def add_banned_number(
    conn: AsyncConnection, phone_number: str, reason: ReasonCode, account_id: str | None, now_ms: int
) -> None:
    """Ban the number (a second ban of a banned number keeps its first instant and takes the new reason)."""
    t = banned_numbers
    changes = {"reason_code": reason.value} | ({"account_id": account_id} if account_id else {})
    updated = await conn.execute(update(t).where(t.c.phone_number == phone_number).values(changes))
    if updated.rowcount == 0:
        await conn.execute(
            insert(t).values(
                phone_number=phone_number, reason_code=reason.value, banned_at_ms=now_ms, account_id=account_id
            )
        )


async def remove_banned_number(conn: AsyncConnection, phone_number: str) -> BannedNumber | None:
    """Lift the ban on a number; returns what it was, or ``None`` when the number was not banned."""
    t = banned_numbers
    removed = (
        await conn.execute(
            delete(t)
            .where(t.c.phone_number == phone_number)
            .returning(t.c.phone_number, t.c.reason_code, t.c.banned_at_ms, t.c.account_id)
        )
    ).first()
    return BannedNumber(removed[0], ReasonCode(removed[1]), removed[2], removed[3]) if removed else None


async def all_banned_numbers(conn: AsyncConnection) -> list[BannedNumber]:
    t = banned_numbers
    rows = await conn.execute(
        select(t.c.phone_number, t.c.reason_code, t.c.banned_at_ms, t.c.account_id).order_by(t.c.banned_at_ms)
    )
    return [BannedNumber(r.phone_number, ReasonCode(r.reason_code), r.banned_at_ms, r.account_id) for r in rows]
