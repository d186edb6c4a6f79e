"""Counting a user against the messaging tier exactly, however many sends are decided at the same moment.

The send decision reads the tier's count from a snapshot (:mod:`cove.business.sending`), and the queue writer
stores the reach later, with the envelopes. Sends decided together, on one relay or several, could each see
the tier's last free slot and all pass; two sends to one new user could each count them as new today. So a
send that would count a user not yet counted claims the slot first, in its own short transaction:

1. an UPDATE of the business's row, which changes nothing but locks it until the commit (PostgreSQL: the
   row; SQLite: the database's write lock), so every relay's claims for one business run one after another;
2. under that lock, the user's own reach row: already counted in the last 24 h costs nothing;
3. else the count of users reached in the last 24 h: at the limit, refused (131048 with the wait);
4. else the user's reach row is written now, and today's count of new users grows by one, once.

The queue writer then refreshes the same row with its commit (the same time and template), and adds nothing
to today's count. Only a send that may add a user pays this transaction, and only under a finite limit: an
unlimited tier cannot be overshot, so its sends keep the writer's path alone (the benchmark's set-up).

A claimed user whose send then fails to commit (a relay crashing between the claim and the queue commit) stays
counted for the 24 h: the count errs towards fewer users, never more.
"""

from __future__ import annotations

from sqlalchemy import and_, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from cove.business import standing, tiers
from cove.business.quality import Quality
from cove.business.storage import business_accounts, business_reach


def counts(mine: int | None, now: int) -> bool:
    """Whether a user last reached at ``mine`` already counts against the tier at ``now``. A time after ``now``
    counts too: a send decided a moment later, here or on another relay, claimed first."""
    return mine is not None and now - tiers.COUNTING_PERIOD_MS < mine


async def claim(
    engine: AsyncEngine,
    business_id: str,
    user_id: str,
    limit: int,
    template_id: str | None,
    rated: Quality,
    now: int,
) -> int | None:
    """Count ``user_id`` against the business's ``limit`` now: None once counted (now or before), or the ms
    until a slot frees when the limit is reached."""
    b, r = business_accounts, business_reach
    since = now - tiers.COUNTING_PERIOD_MS
    async with engine.begin() as conn:
        await conn.execute(update(b).where(b.c.account_id == business_id).values(tier=b.c.tier))
        pair = and_(r.c.business_id == business_id, r.c.user_account_id == user_id)
        mine = (await conn.execute(select(r.c.reached_at_ms).where(pair))).scalar()
        if counts(mine, now):
            return None
        # No upper bound: a claim stamped a millisecond after ``now`` (decided later, committed first) counts.
        counting = and_(r.c.business_id == business_id, r.c.reached_at_ms > since)
        used, oldest = (await conn.execute(select(func.count(), func.min(r.c.reached_at_ms)).where(counting))).one()
        if used >= limit:
            return max(1, oldest + tiers.COUNTING_PERIOD_MS - now)
        insert_ = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
        statement = insert_(r).values(
            business_id=business_id, user_account_id=user_id, reached_at_ms=now, template_id=template_id
        )
        await conn.execute(
            statement.on_conflict_do_update(
                index_elements=["business_id", "user_account_id"],
                set_={"reached_at_ms": statement.excluded.reached_at_ms, "template_id": statement.excluded.template_id},
            )
        )
        if mine is None or standing.day_of(mine) < standing.day_of(now):
            await conn.execute(
                standing.daily_upsert(conn.dialect.name, business_id, standing.day_of(now), rated, 1, rerated=False)
            )
    return None
