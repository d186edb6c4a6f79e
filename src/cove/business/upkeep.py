"""The business capability's sweep, run by the relay beside its envelope purge: pauses that ended, and retention.

A template's quality pause ends by itself when its time is up (``standing.effective_status`` already reads it
so); this sweep also stores the end and tells the business, as Meta does: a paused template that returns to
normal comes as a ``message_template_status_update`` with event ``APPROVED``
([M] https://developers.facebook.com/documentation/business-messaging/whatsapp/templates/template-pausing).
Each pause is claimed by one conditional UPDATE, so relays sweeping one database together announce it once.

Retention: every table here that gains rows with use (not with users or templates) loses them once no rule reads
them and a person looking into a complaint would not need them any more. Each period is stated with the rule it
outlives:

- ``business_events``: 30 days. The gateway reads the feed within seconds; a gateway that is down longer than a
  month starts again from what is left (Meta itself retries a webhook for 7 days, then drops it).
- ``business_marketing``: 2 days. The per-user marketing cap reads the last 24 h.
- ``business_feedback``: 30 days. Ratings read the last 7; the block itself stays in the user's preferences.
- ``business_reach``: 30 days. The tier reads 24 h and the rating's denominator 7 days; a block later than a
  month after a business last wrote to the user outside a window is blamed on no template (it still counts
  against the number).
- ``business_daily``: 30 days. Tier moves read the last 7.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cove.business import standing
from cove.business.storage import (
    business_daily,
    business_events,
    business_feedback,
    business_marketing,
    business_reach,
    business_templates,
)
from cove.business.window import DAY_MS
from cove.clock import now_ms
from cove.protocol.templates import ReviewStatus

log = logging.getLogger("cove.business")

EVENTS_KEPT_MS = 30 * DAY_MS
MARKETING_KEPT_MS = 2 * DAY_MS
FEEDBACK_KEPT_MS = 30 * DAY_MS
REACH_KEPT_MS = 30 * DAY_MS
DAILY_KEPT_DAYS = 30
PAUSES_PER_SWEEP = 1000  # bounds one sweep's transaction; the rest wait for the next sweep


@dataclass(frozen=True)
class Swept:
    pauses_ended: int
    pruned: int


async def end_pauses(conn: AsyncConnection, now: int) -> int:
    """Store the end of every quality pause whose time is up, and announce each as APPROVED to its business."""
    t = business_templates
    due = (
        await conn.execute(
            select(t.c.template_id, t.c.business_id, t.c.name, t.c.language, t.c.category)
            .where(t.c.status == ReviewStatus.PAUSED.value, t.c.paused_until_ms <= now)
            .order_by(t.c.paused_until_ms)
            .limit(PAUSES_PER_SWEEP)
        )
    ).all()
    ended = 0
    paused = t.c.status == ReviewStatus.PAUSED.value
    for row in due:
        # paused_until_ms stays: pacing reads when the template was last unpaused (quality.paced).
        claimed = await conn.execute(
            update(t)
            .where(t.c.template_id == row.template_id, paused, t.c.paused_until_ms <= now)
            .values(status=ReviewStatus.APPROVED.value, updated_at_ms=now)
        )
        if claimed.rowcount != 1:
            continue  # another relay's sweep ended it first
        body = {
            "template_id": row.template_id,
            "name": row.name,
            "language": row.language,
            "category": row.category,
            "event": ReviewStatus.APPROVED.value,
            "reason": None,  # Meta's webhook says "NONE" for an unpause
            "paused_until": None,
        }
        await standing.emit(conn, row.business_id, "template_status", body, now)
        ended += 1
    return ended


async def prune(conn: AsyncConnection, now: int) -> int:
    """Delete what outlived its retention (see the module docstring); the number of rows deleted."""
    statements = (
        delete(business_events).where(business_events.c.at_ms < now - EVENTS_KEPT_MS),
        delete(business_marketing).where(business_marketing.c.at_ms < now - MARKETING_KEPT_MS),
        delete(business_feedback).where(business_feedback.c.at_ms < now - FEEDBACK_KEPT_MS),
        delete(business_reach).where(business_reach.c.reached_at_ms < now - REACH_KEPT_MS),
        delete(business_daily).where(business_daily.c.day < standing.day_of(now) - DAILY_KEPT_DAYS),
    )
    pruned = 0
    for statement in statements:
        pruned += (await conn.execute(statement)).rowcount
    return pruned


async def sweep(engine: AsyncEngine, now: int) -> Swept:
    async with engine.begin() as conn:
        ended = await end_pauses(conn, now)
    async with engine.begin() as conn:
        pruned = await prune(conn, now)
    return Swept(ended, pruned)


async def sweep_forever(engine: AsyncEngine, every_seconds: float = 60.0) -> None:
    while True:
        try:
            swept = await sweep(engine, now_ms())
            if swept.pauses_ended or swept.pruned:
                log.info("business sweep: %d pauses ended, %d rows past retention deleted", *vars(swept).values())
        except Exception:
            log.exception("the business sweep failed")
        await asyncio.sleep(every_seconds)
