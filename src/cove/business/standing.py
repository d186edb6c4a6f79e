"""A business's standing on the relay: its quality rating, template pauses, messaging tier, and the event feed.

The rules are pure (:mod:`cove.business.quality`, :mod:`cove.business.tiers`); this module loads what they read
and stores what they decide, inside the caller's transaction, and records each change the business must hear
of as a row of ``business_events`` (its gateway turns them into Cloud API webhooks):

- a block or report (:func:`record_feedback`) re-rates the number and the template the user last got from the
  business; a template that turns RED is paused 3 h, then 6 h, then disabled (``quality.on_rating``);
- once a day per business (:func:`evaluate_day`, run lazily by the first send of the day), the number is
  re-rated (feedback fades with age) and the tier moves at most one step (``tiers.evaluate``);
- template reviews and users' promotion switches are announced with :func:`emit`.

Feedback is blamed on the template the business last sent the user outside a window (``business_reach``): a
user blocks a business, not a message, and that template is what made them.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cove.business import quality, tiers
from cove.business.quality import Feedback, FeedbackKind, Quality, TemplateHealth, TemplateStatus
from cove.business.storage import (
    business_accounts,
    business_daily,
    business_events,
    business_feedback,
    business_reach,
    business_templates,
)
from cove.business.window import DAY_MS
from cove.protocol.business import BlockReason
from cove.protocol.templates import ReviewStatus

VERIFIED = "verified"


def day_of(ms: int) -> int:
    return ms // DAY_MS


async def emit(conn: AsyncConnection, business_id: str, kind: str, body: dict[str, Any], now: int) -> None:
    await conn.execute(
        insert(business_events).values(business_id=business_id, kind=kind, body=json.dumps(body), at_ms=now)
    )


async def record_feedback(
    conn: AsyncConnection, business_id: str, user_id: str, feedback: list[tuple[str, BlockReason]], now: int
) -> None:
    """Store a user's blocks and reports and re-rate the business and the template they are blamed on."""
    r = business_reach
    template_id = (
        await conn.execute(
            select(r.c.template_id).where(r.c.business_id == business_id, r.c.user_account_id == user_id)
        )
    ).scalar()
    for kind, reason in feedback:
        await conn.execute(
            insert(business_feedback).values(
                business_id=business_id,
                user_account_id=user_id,
                kind=kind,
                reason=reason.value,
                template_id=template_id,
                at_ms=now,
            )
        )
    await rerate(conn, business_id, template_id, now)


def _feedback(row: Any) -> Feedback:
    kind = FeedbackKind(row.kind)
    return Feedback(kind, row.at_ms, BlockReason(row.reason) if kind is FeedbackKind.BLOCK else None)


async def _reached_since(conn: AsyncConnection, business_id: str, since: int, template_id: str | None = None) -> int:
    r = business_reach
    query = select(func.count()).where(r.c.business_id == business_id, r.c.reached_at_ms > since)
    if template_id is not None:
        query = query.where(r.c.template_id == template_id)
    return (await conn.execute(query)).scalar_one()


async def rerate(conn: AsyncConnection, business_id: str, template_id: str | None, now: int) -> Quality:
    """Re-rate the number (and ``template_id``) from the last 7 days; store and announce what changed."""
    since = now - quality.RATING_PERIOD_MS
    f = business_feedback
    rows = (
        await conn.execute(
            select(f.c.kind, f.c.reason, f.c.at_ms, f.c.template_id).where(
                f.c.business_id == business_id, f.c.at_ms > since
            )
        )
    ).all()
    rated = quality.rate([_feedback(x) for x in rows], await _reached_since(conn, business_id, since), now)
    b = business_accounts
    current = (await conn.execute(select(b.c.quality, b.c.tier).where(b.c.account_id == business_id))).first()
    if current is not None and Quality(current.quality) is not rated:
        await conn.execute(update(b).where(b.c.account_id == business_id).values(quality=rated.value))
        body = {"previous": current.quality.upper(), "current": rated.value.upper(), "tier": current.tier}
        await emit(conn, business_id, "quality", body, now)
    await _daily(conn, business_id, day_of(now), rated, 0)
    if template_id is not None:
        on_template = [_feedback(x) for x in rows if x.template_id == template_id]
        users = await _reached_since(conn, business_id, since, template_id)
        await _rate_template(conn, template_id, quality.rate(on_template, users, now), now)
    return rated


async def _rate_template(conn: AsyncConnection, template_id: str, rated: Quality, now: int) -> None:
    t = business_templates
    row = (await conn.execute(select(t).where(t.c.template_id == template_id))).first()
    if row is None:  # deleted since it was sent
        return
    health = TemplateHealth(row.pauses, row.paused_until_ms, row.status == ReviewStatus.DISABLED)
    after = quality.on_rating(health, rated, now)
    values: dict[str, Any] = {"quality": rated.value}
    if after != health:
        disabled = after.disabled
        status = ReviewStatus.DISABLED if disabled else ReviewStatus.PAUSED
        values |= {"pauses": after.pauses, "paused_until_ms": after.paused_until_ms, "status": status.value}
        hours = (after.paused_until_ms - now) // 3_600_000 if after.paused_until_ms and not disabled else None
        reason = (
            "Paused too many times for low quality: disabled for good."
            if disabled
            else f"Quality is RED from users' blocks and reports: paused for {hours} hours."
        )
        body = {
            "template_id": row.template_id,
            "name": row.name,
            "language": row.language,
            "event": status.value,
            "reason": reason,
            "paused_until": after.paused_until_ms if not disabled else None,
        }
        await emit(conn, row.business_id, "template_status", body, now)
    await conn.execute(update(t).where(t.c.template_id == template_id).values(**values))


def template_health(row: Any) -> TemplateHealth:
    return TemplateHealth(row.pauses, row.paused_until_ms, row.status == ReviewStatus.DISABLED)


def effective_status(row: Any, now: int) -> ReviewStatus:
    """A quality pause ends by itself when its time is up: the stored PAUSED is read as APPROVED after that."""
    status = ReviewStatus(row.status)
    if status is ReviewStatus.PAUSED and quality.status(template_health(row), now) is TemplateStatus.ACTIVE:
        return ReviewStatus.APPROVED
    return status


def daily_upsert(dialect: str, business_id: str, day: int, rated: Quality, new_users: int, rerated: bool) -> Any:
    """Add ``new_users`` to the day's unique users; with ``rerated``, the day's rating becomes ``rated``."""
    insert_ = pg_insert if dialect == "postgresql" else sqlite_insert
    d = business_daily
    statement = insert_(d).values(business_id=business_id, day=day, unique_users=new_users, quality=rated.value)
    changes: dict[str, Any] = {"unique_users": d.c.unique_users + statement.excluded.unique_users}
    if rerated:
        changes["quality"] = rated.value
    return statement.on_conflict_do_update(index_elements=["business_id", "day"], set_=changes)


async def _daily(conn: AsyncConnection, business_id: str, day: int, rated: Quality, new_users: int) -> None:
    await conn.execute(daily_upsert(conn.dialect.name, business_id, day, rated, new_users, rerated=True))


async def evaluate_day(engine: AsyncEngine, business_id: str, now: int) -> None:
    """Today's re-rating and tier move, once per business and day (a second call the same day does nothing)."""
    today = day_of(now)
    b = business_accounts
    async with engine.begin() as conn:
        claimed = await conn.execute(
            update(b)
            .where(b.c.account_id == business_id, b.c.tier_evaluated_day < today)
            .values(tier_evaluated_day=today)
        )
        if claimed.rowcount != 1:
            return
        await rerate(conn, business_id, None, now)
        row = (await conn.execute(select(b).where(b.c.account_id == business_id))).one()
        d = business_daily
        history = [
            tiers.DayRecord(x.day, x.unique_users, Quality(x.quality))
            for x in await conn.execute(
                select(d).where(d.c.business_id == business_id, d.c.day > today - tiers.EVALUATION_DAYS)
            )
        ]
        before = tiers.TierState(tiers.Tier(row.tier), row.tier_changed_day)
        after = tiers.evaluate(before, history, today, row.verification == VERIFIED)
        if after != before:
            await set_tier(conn, business_id, after.tier, today, now)


async def set_tier(conn: AsyncConnection, business_id: str, tier: tiers.Tier, today: int, now: int) -> None:
    b = business_accounts
    before = (await conn.execute(select(b.c.tier).where(b.c.account_id == business_id))).scalar_one()
    await conn.execute(update(b).where(b.c.account_id == business_id).values(tier=int(tier), tier_changed_day=today))
    if before != tier:
        limit = tiers.LIMITS[tier]
        body = {"event": "UPGRADE" if tier > before else "DOWNGRADE", "tier": int(tier), "messaging_limit": limit}
        await emit(conn, business_id, "tier", body, now)
