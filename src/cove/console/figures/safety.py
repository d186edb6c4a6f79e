"""Safety, for the console: the operator's queue (automatic restricts and bans awaiting review, open appeals) as
`cove safety queue` reads it, how often decisions overturned an action, and the actions taken per day by step
and by reason code."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from cove.console.figures.timeline import Timeline, days_ending
from cove.safety import appeals as cases
from cove.safety.actions_storage import Appeal, safety_actions
from cove.safety.ladder import Step, Taken

CASES_SHOWN = 100  # of each kind, oldest first: the page says how many more wait


@dataclass
class SafetyFigures:
    window: Timeline  # days_ending(now)
    reviews: list[Taken] = field(default_factory=list)
    appeals: list[Appeal] = field(default_factory=list)
    reviews_waiting: int = 0
    appeals_waiting: int = 0
    stats: cases.Stats = cases.Stats({}, {})
    per_step: dict[str, dict[int, int]] = field(default_factory=dict)  # step -> day -> actions taken
    per_reason: dict[str, dict[int, int]] = field(default_factory=dict)  # reason code -> day -> actions taken


async def safety_figures(engine: AsyncEngine, now_ms: int) -> SafetyFigures:
    figures = SafetyFigures(days_ending(now_ms))
    queue = await cases.queue(engine)
    figures.reviews, figures.reviews_waiting = queue.reviews[:CASES_SHOWN], len(queue.reviews)
    figures.appeals, figures.appeals_waiting = queue.appeals[:CASES_SHOWN], len(queue.appeals)
    figures.stats = await cases.stats(engine)
    t = safety_actions
    day = figures.window.index_of(t.c.created_at_ms)
    figures.per_step = {s.label: {} for s in Step}
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(day.label("day"), t.c.step, t.c.reason, func.count().label("n"))
            .where(t.c.created_at_ms >= figures.window.start_ms)
            .group_by(day, t.c.step, t.c.reason)
        )
        for r in rows:
            for series, key in ((figures.per_step, r.step), (figures.per_reason, r.reason)):
                per_day = series.setdefault(key, {})
                per_day[int(r.day)] = per_day.get(int(r.day), 0) + int(r.n)
    figures.per_reason = dict(sorted(figures.per_reason.items()))
    return figures
