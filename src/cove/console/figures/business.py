"""Business messaging, for the console: each business's standing now, and what the business tables keep of its
history.

The relay keeps no tier or rating history of its own beyond what its rules read, so the charts show exactly that:
``business_daily`` (one row per business and day on which it sent outside a window or was rated, with the rating
at the day's end), the tier moves and template pauses announced in ``business_events``, and the blocks and
reports in ``business_feedback``; each is kept 30 days (cove.business.upkeep).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cove.business import service, standing, tiers
from cove.business.quality import Quality
from cove.business.storage import (
    business_accounts,
    business_daily,
    business_events,
    business_feedback,
    business_templates,
)
from cove.console.figures.timeline import Timeline, days_ending
from cove.protocol.templates import ReviewStatus

BUSINESSES_SHOWN = 200
TEMPLATES_SHOWN = 100
EVENTS_READ = 20_000  # tier and template events of the window read at most (a 30-day window holds far fewer)
QUALITIES = tuple(q.value for q in Quality)


def tier_label(tier: int) -> str:
    limit = tiers.LIMITS[tiers.Tier(tier)]
    return "unlimited" if limit is None else f"{limit:,}"


@dataclass(frozen=True)
class Business:
    account_id: str
    name: str
    verified: bool
    tier: str
    quality: str
    throughput_mps: int
    paused_templates: int
    disabled_templates: int


@dataclass(frozen=True)
class Pending:
    template_id: str
    business: str
    name: str
    language: str
    category: str
    components: list[tuple[str, str]]  # (type, text) of each component, as the business wrote it
    warnings: list[str]
    submitted_at_ms: int


@dataclass
class BusinessFigures:
    window: Timeline  # days_ending(now)
    businesses: list[Business] = field(default_factory=list)
    total: int = 0
    tiers_now: dict[str, int] = field(default_factory=dict)  # tier label -> businesses
    quality_per_day: dict[str, dict[int, int]] = field(default_factory=dict)  # rating -> day -> businesses
    tier_moves: dict[str, dict[int, int]] = field(default_factory=dict)  # "up" | "down" -> day -> moves
    pauses: dict[str, dict[int, int]] = field(default_factory=dict)  # "paused" | "disabled" -> day -> templates
    feedback: dict[str, dict[int, int]] = field(default_factory=dict)  # "block" | "report" -> day -> count


async def _stopped(conn: AsyncConnection, business_ids: list[str], now_ms: int) -> dict[str, Counter[ReviewStatus]]:
    """Paused and disabled templates of these businesses (a pause whose time is up is over, swept or not)."""
    t = business_templates
    stopped = await conn.execute(
        select(t.c.business_id, t.c.status, t.c.pauses, t.c.paused_until_ms).where(
            t.c.business_id.in_(business_ids), t.c.status.in_([ReviewStatus.PAUSED.value, ReviewStatus.DISABLED.value])
        )
    )
    counted: dict[str, Counter[ReviewStatus]] = {}
    for row in stopped:
        counted.setdefault(row.business_id, Counter())[standing.effective_status(row, now_ms)] += 1
    return counted


async def _businesses(conn: AsyncConnection, figures: BusinessFigures, now_ms: int) -> None:
    b = business_accounts
    figures.total = (await conn.execute(select(func.count()).select_from(b))).scalar_one()
    for tier, count in await conn.execute(select(b.c.tier, func.count()).group_by(b.c.tier).order_by(b.c.tier)):
        figures.tiers_now[tier_label(tier)] = int(count)
    rows = (await conn.execute(select(b).order_by(b.c.display_name, b.c.account_id).limit(BUSINESSES_SHOWN))).all()
    stopped = await _stopped(conn, [r.account_id for r in rows], now_ms)
    figures.businesses = [
        Business(
            r.account_id,
            r.display_name,
            r.verification == standing.VERIFIED,
            tier_label(r.tier),
            r.quality,
            r.throughput_mps,
            stopped.get(r.account_id, Counter())[ReviewStatus.PAUSED],
            stopped.get(r.account_id, Counter())[ReviewStatus.DISABLED],
        )
        for r in rows
    ]


async def _history(conn: AsyncConnection, figures: BusinessFigures) -> None:
    window = figures.window
    d, f, e = business_daily, business_feedback, business_events
    # business_daily.day counts days since the epoch, as the window's bucket indexes do
    daily = await conn.execute(
        select(d.c.day, d.c.quality, func.count()).where(d.c.day >= window.first).group_by(d.c.day, d.c.quality)
    )
    figures.quality_per_day = {q: {} for q in QUALITIES}
    for day, rated, count in daily:
        figures.quality_per_day.setdefault(rated, {})[int(day)] = int(count)
    day = window.index_of(f.c.at_ms)
    figures.feedback = {"block": {}, "report": {}}
    for kind, on, count in await conn.execute(
        select(f.c.kind, day, func.count()).where(f.c.at_ms >= window.start_ms).group_by(f.c.kind, day)
    ):
        figures.feedback.setdefault(kind, {})[int(on)] = int(count)
    figures.tier_moves = {"up": {}, "down": {}}
    figures.pauses = {"paused": {}, "disabled": {}}
    events = await conn.execute(
        select(e.c.kind, e.c.body, e.c.at_ms)
        .where(e.c.kind.in_(["tier", "template_status"]), e.c.at_ms >= window.start_ms)
        .order_by(e.c.seq.desc())
        .limit(EVENTS_READ)
    )
    for kind, body, at_ms in events:
        into = _counted(kind, json.loads(body), figures)
        if into is not None:
            on = window.index_of(at_ms)
            into[on] = into.get(on, 0) + 1


def _counted(kind: str, body: dict[str, Any], figures: BusinessFigures) -> dict[int, int] | None:
    """The series an event counts in: a tier move, or a template paused or disabled for quality (the same feed
    also announces reviews and unpauses, which are not pauses)."""
    event = body.get("event")
    if kind == "tier":
        return figures.tier_moves["up" if event == "UPGRADE" else "down"]
    if event == ReviewStatus.PAUSED.value:
        return figures.pauses["paused"]
    if event == ReviewStatus.DISABLED.value:
        return figures.pauses["disabled"]
    return None


async def business_figures(engine: AsyncEngine, now_ms: int) -> BusinessFigures:
    figures = BusinessFigures(days_ending(now_ms))
    async with engine.connect() as conn:
        await _businesses(conn, figures, now_ms)
        await _history(conn, figures)
    return figures


async def pending_templates(engine: AsyncEngine) -> tuple[list[Pending], int]:
    """Templates awaiting review, oldest first (as `cove business templates --status PENDING` lists them): the
    first TEMPLATES_SHOWN, and how many there are."""
    listed = await service.list_templates(engine, ReviewStatus.PENDING)
    shown = []
    for item in listed[:TEMPLATES_SHOWN]:
        r = item.row
        components = [(c.get("type", ""), c.get("text", "")) for c in json.loads(r.body).get("components", [])]
        shown.append(
            Pending(
                r.template_id,
                item.business_name or r.business_id,
                r.name,
                r.language,
                r.category,
                components,
                [f["code"] for f in json.loads(r.findings)],
                r.created_at_ms,
            )
        )
    return shown, len(listed)
