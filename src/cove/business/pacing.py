"""Template pacing: part of a campaign goes at once, the rest is held until early feedback on it is in.

Meta paces marketing and utility templates that are not GREEN or were just unpaused: "templates sent as part of a
campaign are sent normally until a threshold is reached, after which further sends are held to allow for
customer feedback"; good (or no) feedback releases them, a template paused meanwhile drops them with 132015
([M] https://developers.facebook.com/documentation/business-messaging/whatsapp/templates/template-pacing). The
send is answered with ``message_status: "held_for_quality_assessment"`` instead of ``"accepted"``. Which
templates are paced is :func:`cove.business.quality.paced`; this module holds their sends. Meta publishes neither
the threshold nor the wait, so Cove's are written down:

- an *episode* starts with a paced template's first send: its first ``SAMPLE`` sends go at once;
- the sends after those are held until ``HOLD_MS`` after the episode began (Meta's integrators report the wait
  as 15 minutes to an hour); the relay's sweep (:mod:`cove.business.upkeep`) then queues them for their
  recipients, or drops them with 132015 (paused) or 132016 (disabled) as soon as the template is paused: the
  feedback on the sample is what pauses it (:mod:`cove.business.standing`);
- a paced send after the episode's end starts the next one, so a template that stays YELLOW is sampled again
  each time rather than held for ever;
- at most ``MAX_HELD_PER_BUSINESS`` sends are held for a business; past that a paced send is refused with
  130429 (try again when the held ones are released), so a hold is bounded like every queue.

A held send counts as sent for the tier and the marketing cap (it was decided and counted when accepted); one
dropped later still counts. Its envelopes are kept as the queue would have stored them (ciphertext only).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from cove.business.errors import CloudApiError
from cove.business.storage import business_held, business_pacing

SAMPLE = 100  # sends of an episode that go at once (Cove's choice)
HOLD_MS = 30 * 60_000  # from an episode's start to the release of what it held (Cove's choice)
MAX_HELD_PER_BUSINESS = 100_000  # a tier's worth at 100K (Cove's choice): the bound on what one business holds

HELD_STATUS = "held_for_quality_assessment"  # the send answer's ``message_status`` for a held send (Meta's)


@dataclass(frozen=True)
class Episode:
    started_at_ms: int
    sent: int


def release_at(episode: Episode | None, now_ms: int) -> int | None:
    """None: this paced send goes now (in the sample, or starting an episode); else when it is released."""
    if episode is None or now_ms >= episode.started_at_ms + HOLD_MS or episode.sent < SAMPLE:
        return None
    return episode.started_at_ms + HOLD_MS


async def admit(engine: AsyncEngine, business_id: str, template_id: str, now: int) -> int | CloudApiError | None:
    """Count a paced send in its template's episode: None if it goes now, else when it is released, or the 130429
    refusal when the business already holds ``MAX_HELD_PER_BUSINESS`` sends."""
    p = business_pacing
    running = and_(p.c.template_id == template_id, p.c.started_at_ms > now - HOLD_MS)
    async with engine.begin() as conn:
        # One conditional step takes a sample slot, so sends at once cannot all take the last one.
        taken = await conn.execute(update(p).where(running, p.c.sent < SAMPLE).values(sent=p.c.sent + 1))
        if taken.rowcount == 1:
            return None
        row = (await conn.execute(select(p.c.started_at_ms, p.c.sent).where(p.c.template_id == template_id))).first()
        release = release_at(Episode(row.started_at_ms, row.sent) if row is not None else None, now)
        if release is None:  # no episode, or it ended: this send starts the next one
            insert_ = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
            statement = insert_(p).values(template_id=template_id, business_id=business_id, started_at_ms=now, sent=1)
            await conn.execute(
                statement.on_conflict_do_update(
                    index_elements=["template_id"],
                    set_={"started_at_ms": now, "sent": 1},
                    where=p.c.started_at_ms <= now - HOLD_MS,
                )
            )
            return None
        h = business_held
        held = (await conn.execute(select(func.count()).where(h.c.business_id == business_id))).scalar_one()
    if held >= MAX_HELD_PER_BUSINESS:
        details = "Too many messages are held for template pacing; try again once they are released."
        return CloudApiError(130429, details, retry_after_ms=max(1, release - now))
    return release
