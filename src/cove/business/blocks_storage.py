"""A business's blocklist on the relay: the table, and the block, unblock and list operations its routes run.

The rules are :mod:`cove.business.blocks`; the send path reads the table in two places: a business's send to a
user it blocked is refused (:mod:`cove.business.sending`, in the statement it already runs), and a blocked user's
message to the business is withheld (:mod:`cove.business.hooks`), answered as if queued, as a user's own block
is (cove.safety.defences): the user learns nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, Column, Index, String, Table, delete, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cove.business import blocks
from cove.business.storage import business_by_id, business_user_ids, business_windows
from cove.clock import now_ms
from cove.db import insert_new, metadata
from cove.errors import ApiError

business_blocks = Table(
    "business_blocks",
    metadata,
    Column("business_id", String(36), primary_key=True),
    Column("user_account_id", String(36), primary_key=True),
    Column("blocked_at_ms", BigInteger, nullable=False),
    Index("ix_business_blocks_user", "user_account_id"),
)

LIST_PAGE_MAX = 1000
_INSERT_NEW = insert_new(business_blocks)


@dataclass(frozen=True)
class Page:
    user_ids: list[str]
    before: str | None  # the first id of this page, when a page comes before it
    after: str | None  # the last id of this page, when a page comes after it


async def _own_business(conn: AsyncConnection, business_id: str) -> None:
    if await business_by_id(conn, business_id) is None:
        raise ApiError(403, "not_a_business", "create the business profile first (PUT /v1/business/profile)")


async def _candidates(conn: AsyncConnection, business_id: str, user_ids: list[str]) -> list[blocks.Candidate]:
    """The business's users of these ids: their accounts, last message to the business, block (one query)."""
    u, w, b = business_user_ids, business_windows, business_blocks
    query = (
        select(u.c.bsuid, u.c.user_account_id, w.c.last_user_message_ms, b.c.blocked_at_ms)
        .outerjoin(w, (w.c.business_id == u.c.business_id) & (w.c.user_account_id == u.c.user_account_id))
        .outerjoin(b, (b.c.business_id == u.c.business_id) & (b.c.user_account_id == u.c.user_account_id))
        .where(u.c.business_id == business_id, u.c.bsuid.in_(user_ids))
    )
    found = {r.bsuid: r for r in await conn.execute(query)}
    candidates = []
    for user_id in user_ids:
        r = found.get(user_id)
        if r is None:
            candidates.append(blocks.Candidate(user_id, None, None, False))
        else:
            candidates.append(
                blocks.Candidate(user_id, r.user_account_id, r.last_user_message_ms, r.blocked_at_ms is not None)
            )
    return candidates


async def _size(conn: AsyncConnection, business_id: str) -> int:
    b = business_blocks
    return (await conn.execute(select(func.count()).select_from(b).where(b.c.business_id == business_id))).scalar_one()


async def block(engine: AsyncEngine, business_id: str, user_ids: list[str]) -> list[blocks.Outcome]:
    """Block what :func:`blocks.plan` allows; answer every distinct id's outcome."""
    now = now_ms()
    async with engine.begin() as conn:
        await _own_business(conn, business_id)
        outcomes = blocks.plan(await _candidates(conn, business_id, user_ids), await _size(conn, business_id), now)
        rows = [
            {"business_id": business_id, "user_account_id": o.account_id, "blocked_at_ms": now}
            for o in outcomes
            if o.new
        ]
        if rows:
            # Two requests at once may both add a user: the second insert of a pair does nothing.
            await conn.execute(_INSERT_NEW[conn.dialect.name], rows)
    return outcomes


async def unblock(engine: AsyncEngine, business_id: str, user_ids: list[str]) -> list[str]:
    """Unblock these users; every id the business knows is answered as removed (unblocking twice is no error),
    an id it does not know is not."""
    b, u = business_blocks, business_user_ids
    async with engine.begin() as conn:
        await _own_business(conn, business_id)
        query = select(u.c.bsuid, u.c.user_account_id).where(u.c.business_id == business_id, u.c.bsuid.in_(user_ids))
        found = {r.bsuid: r.user_account_id for r in await conn.execute(query)}
        if found:
            await conn.execute(
                delete(b).where(b.c.business_id == business_id, b.c.user_account_id.in_(list(found.values())))
            )
    return [user_id for user_id in dict.fromkeys(user_ids) if user_id in found]


async def listed(
    engine: AsyncEngine, business_id: str, limit: int, after: str | None = None, before: str | None = None
) -> Page:
    """A page of the blocklist, by user id: the first ``limit`` after ``after`` (an id a page ended with), or the
    last ``limit`` before ``before`` (an id a page began with); with both, the first between them."""
    b, u = business_blocks, business_user_ids
    query = select(u.c.bsuid).join(
        b, (b.c.business_id == u.c.business_id) & (b.c.user_account_id == u.c.user_account_id)
    )
    query = query.where(u.c.business_id == business_id)
    if after is not None:
        query = query.where(u.c.bsuid > after)
    if before is not None:
        query = query.where(u.c.bsuid < before)
    backwards = before is not None and after is None
    query = query.order_by(u.c.bsuid.desc() if backwards else u.c.bsuid)
    async with engine.connect() as conn:
        await _own_business(conn, business_id)
        ids = list((await conn.execute(query.limit(limit + 1))).scalars())
    more = len(ids) > limit
    ids = ids[:limit]
    if backwards:
        ids.reverse()
        earlier, later = more, True
    else:
        earlier, later = after is not None, more or before is not None
    return Page(
        ids,
        before=ids[0] if ids and earlier else None,
        after=ids[-1] if ids and later else None,
    )


async def blocked_by_business(conn: AsyncConnection, business_id: str, account_id: str) -> bool:
    b = business_blocks
    found = await conn.execute(
        select(b.c.blocked_at_ms).where(b.c.business_id == business_id, b.c.user_account_id == account_id)
    )
    return found.first() is not None


def is_blocked(business_id: str, account_id: str) -> Any:
    """A scalar subquery for the send path's one statement: when the business blocked this user, or NULL."""
    b = business_blocks
    return (
        select(b.c.blocked_at_ms)
        .where(b.c.business_id == business_id, b.c.user_account_id == account_id)
        .scalar_subquery()
    )


async def forget_account(conn: AsyncConnection, account_id: str) -> None:
    """On AccountDeleted: a deleted business's blocklist goes, and a deleted user leaves every blocklist."""
    b = business_blocks
    await conn.execute(delete(b).where(b.c.business_id == account_id))
    await conn.execute(delete(b).where(b.c.user_account_id == account_id))
