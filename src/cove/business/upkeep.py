"""The business capability's sweep, run by the relay beside its envelope purge: pauses that ended, sends held for
pacing (:mod:`cove.business.pacing`) released or dropped, and retention.

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
- ``business_pacing``: a day after its episode began (an episode lasts 30 minutes; a missing one reads the same
  as one that is over).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cove.business import standing
from cove.business.storage import (
    business_daily,
    business_events,
    business_feedback,
    business_held,
    business_marketing,
    business_pacing,
    business_reach,
    business_templates,
)
from cove.business.window import DAY_MS
from cove.clock import now_ms
from cove.messaging import storage as messaging_storage
from cove.messaging.envelope import Envelope
from cove.protocol.templates import ReviewStatus

log = logging.getLogger("cove.business")

EVENTS_KEPT_MS = 30 * DAY_MS
MARKETING_KEPT_MS = 2 * DAY_MS
FEEDBACK_KEPT_MS = 30 * DAY_MS
REACH_KEPT_MS = 30 * DAY_MS
DAILY_KEPT_DAYS = 30
PACING_KEPT_MS = DAY_MS  # an episode lasts 30 minutes; an older one is read only as "over"
PAUSES_PER_SWEEP = 1000  # bounds one sweep's transaction; the rest wait for the next sweep


HELD_PER_SWEEP = 200  # held sends per transaction (each up to a few ciphertexts); a sweep runs until none is due

Deliver = Callable[[list[Envelope]], Awaitable[None]]


@dataclass(frozen=True)
class Swept:
    pauses_ended: int
    pruned: int
    released: int = 0
    dropped: int = 0


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


def _drop_code(status: str | None, paused_until_ms: int | None, now: int) -> int | None:
    """Why a held send is dropped (Meta's codes for a send of such a template), or None: it goes."""
    if status is None:
        return 132001  # deleted since
    if status == ReviewStatus.DISABLED.value:
        return 132016
    if status == ReviewStatus.PAUSED.value and paused_until_ms is not None and paused_until_ms > now:
        return 132015
    return None


async def release_held(engine: AsyncEngine, now: int, deliver: Deliver | None = None) -> tuple[int, int]:
    """Queue the held sends whose episode is over, and drop those whose template was paused or disabled meanwhile
    (at once, not at the episode's end); the business hears of each from a ``held`` event. Returns how many
    were released and dropped. Each row is claimed by its DELETE, so relays sweeping together act once."""
    h, t = business_held, business_templates
    stopped = or_(t.c.status.in_([ReviewStatus.PAUSED.value, ReviewStatus.DISABLED.value]), t.c.template_id.is_(None))
    query = (
        select(h, t.c.status, t.c.paused_until_ms)
        .select_from(h.outerjoin(t, t.c.template_id == h.c.template_id))
        .where(or_(h.c.release_at_ms <= now, stopped))
        .order_by(h.c.id)
        .limit(HELD_PER_SWEEP)
    )
    released = dropped = 0
    while True:
        queued: list[Envelope] = []
        done = released + dropped
        async with engine.begin() as conn:
            rows = (await conn.execute(query)).all()
            going: list[Envelope] = []
            for row in rows:
                code = _drop_code(row.status, row.paused_until_ms, now)
                if code is None and row.release_at_ms > now:
                    continue  # paused and resumed meanwhile: it waits for its episode's end
                if (await conn.execute(delete(h).where(h.c.id == row.id))).rowcount != 1:
                    continue
                body: dict[str, object] = {"message_id": row.client_message_id, "status": "sent"}
                if code is None:
                    going += [_envelope(e) for e in json.loads(row.envelopes)]
                    released += 1
                else:
                    body = {"message_id": row.client_message_id, "status": "failed", "code": code}
                    dropped += 1
                await standing.emit(conn, row.business_id, "held", body, now)
            if going:
                queued = await conn.run_sync(messaging_storage.insert_envelopes, going)
        if queued and deliver is not None:
            await deliver(queued)
        if len(rows) < HELD_PER_SWEEP or released + dropped == done:  # all done, or none of these could be
            return released, dropped


def _envelope(row: dict[str, object]) -> Envelope:
    return Envelope(id=None, **{**row, "body": base64.b64decode(str(row["body"]))})  # type: ignore[arg-type]


async def prune(conn: AsyncConnection, now: int) -> int:
    """Delete what outlived its retention (see the module docstring); the number of rows deleted."""
    statements = (
        delete(business_events).where(business_events.c.at_ms < now - EVENTS_KEPT_MS),
        delete(business_marketing).where(business_marketing.c.at_ms < now - MARKETING_KEPT_MS),
        delete(business_feedback).where(business_feedback.c.at_ms < now - FEEDBACK_KEPT_MS),
        delete(business_reach).where(business_reach.c.reached_at_ms < now - REACH_KEPT_MS),
        delete(business_daily).where(business_daily.c.day < standing.day_of(now) - DAILY_KEPT_DAYS),
        delete(business_pacing).where(business_pacing.c.started_at_ms < now - PACING_KEPT_MS),
    )
    pruned = 0
    for statement in statements:
        pruned += (await conn.execute(statement)).rowcount
    return pruned


async def sweep(engine: AsyncEngine, now: int, deliver: Deliver | None = None) -> Swept:
    """One sweep: pauses that ended, then held sends (a pause just ended releases rather than drops), then
    retention. ``deliver`` hands released envelopes to their devices' sockets (the relay's hub); without it they
    wait in the queue for the next read."""
    async with engine.begin() as conn:
        ended = await end_pauses(conn, now)
    released, dropped = await release_held(engine, now, deliver)
    async with engine.begin() as conn:
        pruned = await prune(conn, now)
    return Swept(ended, pruned, released, dropped)


async def sweep_forever(engine: AsyncEngine, every_seconds: float = 60.0, deliver: Deliver | None = None) -> None:
    while True:
        try:
            swept = await sweep(engine, now_ms(), deliver)
            if any(vars(swept).values()):
                log.info(
                    "business sweep: %d pauses ended, %d rows past retention deleted, %d held sends released, "
                    "%d dropped",
                    *vars(swept).values(),
                )
        except Exception:
            log.exception("the business sweep failed")
        await asyncio.sleep(every_seconds)
