"""The business rules on the relay's send path, from metadata only.

A send whose sender account is a business goes through :func:`cove.business.decision.may_send` before it is
queued. The relay sees the envelope's visible ``business`` header (template id, version, language, category:
VISION.md), never the parameter values inside the ciphertext. :func:`check` loads the snapshot the decision
reads in two queries (three for a template) and answers what to store with the envelopes
(:class:`BusinessWrites`), which the queue writer stores in the same transaction as the envelopes, and only for
a send that was not a duplicate. A user's message to a business opens the business's service window the same
way. Plain sends pay nothing: whether an account is a business comes with its devices (cached), not a query.

The number's quality and tier, the template's pauses and the marketing log come from the tables that
:mod:`cove.business.standing` keeps. The first send of a day per business runs that day's re-rating and tier
move. Not modelled: the marketing experiment holdout (Cove runs no such experiment), and pacing
(``Allowed.paced`` is computed, not acted on).

Across a fleet of relays (one database, one Redis):

- Throughput per number, pair rate per number and user, and the marketing deliveries in flight are the
  decision's last steps (10-12). The decision runs without them; then the relay's limits
  (:class:`cove.limits.limiters.Limits`) apply them in one atomic call, all or nothing, with the same order and
  arithmetic: in Redis for a fleet, so they hold fleet-wide exactly (up to the hosts' clock skew).
- The marketing cap counts the database's log plus the deliveries held in flight: a delivery is held from its
  decision for ``IN_FLIGHT_MS``, past its commit, so two relays cannot both take a user's last slot.
- The tier (unique users reached outside a window in 24 h) is counted from the shared database: sends decided at
  the same moment, on any relays, can each see a tier's last free slot and all pass. A tier is overshot by at
  most the sends in flight across the fleet (decided, not yet committed), never by more.
- While Redis is away these limits fail open (:mod:`cove.limits.table`): each relay keeps them alone, so N
  relays allow N times the throughput and pair rate, and a marketing delivery in flight on another relay is
  not seen (the committed log still is).
"""

from __future__ import annotations

import hashlib
import math
import uuid
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from cove.business import blocks_storage, limits, standing, tiers
from cove.business.decision import TEMPLATE, SendRequest, SendState, TemplateState, may_send
from cove.business.errors import CloudApiError
from cove.business.optin import Block, OptIn, PairConsent
from cove.business.quality import Quality
from cove.business.storage import (
    business_accounts,
    business_marketing,
    business_optins,
    business_preferences,
    business_reach,
    business_templates,
    business_windows,
)
from cove.errors import ApiError
from cove.limits.limiters import Limits
from cove.limits.store import Hold, Spend
from cove.limits.table import IN_FLIGHT_MS, Limiter
from cove.messaging.models import FREE_FORM, BusinessHeader
from cove.protocol.business import BlockReason, Category, OptInSource
from cove.protocol.templates import ReviewStatus

BLOCKED_BY_BUSINESS = "You blocked this user: unblock them (DELETE block_users) to message them."


@dataclass(frozen=True)
class BusinessWrites:
    """What a send stores with its envelopes: a window the user opened, or a reach outside one (with its
    template, a marketing delivery for the per-user cap, and whether the user is new to today's count)."""

    business_id: str
    user_id: str
    opens_window_at_ms: int | None = None
    reached_at_ms: int | None = None
    template_id: str | None = None
    marketing_at_ms: int | None = None
    new_today: bool = False
    quality: Quality = Quality.GREEN  # the number's rating when sent, for a first row of the day


def refusal(error: CloudApiError) -> ApiError:
    """The project's error shape plus the Cloud API error a business integration branches on."""
    graph = error.to_graph_error(uuid.uuid4().hex)["error"]
    api = ApiError(error.spec.http_status, "business_rule", f"{error.spec.title}: {error.details}", cloud_api=graph)
    if error.retry_after_ms is not None:
        seconds = max(1, math.ceil(error.retry_after_ms / 1000))
        api.details["retry_after"] = seconds
        api.headers["Retry-After"] = str(seconds)
    return api


def _pair(t: Any, business_id: str, user_id: str) -> Any:
    return and_(t.c.business_id == business_id, t.c.user_account_id == user_id)


async def _load(
    engine: AsyncEngine, business_id: str, user_id: str, header: BusinessHeader, now: int
) -> tuple[SendState, Any, list[tuple[str, int]], int | None]:
    """The decision's snapshot, the business's row, the user's stored marketing deliveries, and when the business
    last reached this user outside a window."""
    p, w, r, b = business_preferences, business_windows, business_reach, business_accounts
    since = now - tiers.COUNTING_PERIOD_MS
    counting = and_(r.c.business_id == business_id, r.c.reached_at_ms > since, r.c.reached_at_ms <= now)

    def one(column: Any, where: Any) -> Any:
        return select(column).where(where).scalar_subquery()

    # One statement for the business's row and everything about the pair (each await is a thread hop on SQLite).
    pair_query = select(
        b.c.quality,
        b.c.tier,
        b.c.tier_evaluated_day,
        b.c.throughput_mps,
        one(p.c.promotions_stopped_at_ms, _pair(p, business_id, user_id)).label("stopped"),
        one(p.c.block_reason, _pair(p, business_id, user_id)).label("block_reason"),
        one(p.c.blocked_at_ms, _pair(p, business_id, user_id)).label("blocked"),
        blocks_storage.is_blocked(business_id, user_id).label("business_blocked"),
        one(w.c.last_user_message_ms, _pair(w, business_id, user_id)).label("last_user_message"),
        one(r.c.reached_at_ms, _pair(r, business_id, user_id)).label("mine"),
        select(func.count()).select_from(r).where(counting).scalar_subquery().label("reached"),
        select(func.min(r.c.reached_at_ms)).where(counting).scalar_subquery().label("oldest"),
    ).where(b.c.account_id == business_id)
    o, m = business_optins, business_marketing
    async with engine.connect() as conn:
        row = business = (await conn.execute(pair_query)).one()
        opt_rows = (await conn.execute(select(o).where(_pair(o, business_id, user_id)))).all()
        template_row = None
        marketing: list[tuple[str, int]] = []
        if header.kind == TEMPLATE:
            t = business_templates
            template_row = (
                await conn.execute(
                    select(t).where(t.c.template_id == header.template_id, t.c.business_id == business_id)
                )
            ).first()
            if header.category == "MARKETING":
                period = now - limits.MARKETING_CAP_PERIOD_MS
                marketing = [
                    (x.business_id, x.at_ms)
                    for x in await conn.execute(
                        select(m.c.business_id, m.c.at_ms).where(m.c.user_account_id == user_id, m.c.at_ms > period)
                    )
                ]

    limit = tiers.LIMITS[tiers.Tier(business.tier)]
    reached: dict[str, int] = {}
    if row.mine is not None and since < row.mine <= now:
        reached[user_id] = row.mine
    elif limit is not None and row.reached >= limit:
        # Only the count and the oldest matter to the rule; the map is built only when the limit is reached.
        reached = {f"counted-{i}": row.oldest for i in range(row.reached)}
    block = Block(BlockReason(row.block_reason), row.blocked) if row.blocked is not None else None
    consent = PairConsent(
        opt_ins=MappingProxyType(
            {
                Category(x.category): OptIn(Category(x.category), OptInSource(x.source), x.at_ms, x.withdrawn_at_ms)
                for x in opt_rows
            }
        ),
        promotions_stopped_at_ms=row.stopped,
        block=block,
    )
    state = SendState(
        consent=consent,
        last_user_message_ms=row.last_user_message,
        template=_template_state(template_row, header),
        number_quality=Quality(business.quality),
        messaging_limit=limit,
        reached=MappingProxyType(reached),
        throughput_mps=business.throughput_mps,
    )
    return state, business, marketing, row.mine


def _template_state(row: Any, header: BusinessHeader) -> TemplateState | None:
    """The template as the registry holds it; None (132001) unless the header names its current approved
    version, language and category exactly: the client renders what the recipient will verify."""
    if row is None:
        return None
    if (row.version, row.language, row.category.upper()) != (
        header.template_version,
        header.language,
        header.category,
    ):
        return None
    status = ReviewStatus(row.status)
    return TemplateState(
        category=Category(row.category.lower()),
        # The relay never sees parameter values (nor their count): the recipient's client checks them against
        # the signed text. The request below supplies the template's own count, so the rule always holds here.
        param_count=0,
        approved=status in (ReviewStatus.APPROVED, ReviewStatus.PAUSED, ReviewStatus.DISABLED),
        quality=Quality(row.quality),
        health=standing.template_health(row),
    )


async def check(
    engine: AsyncEngine,
    relay_limits: Limits,
    business_id: str,
    user_id: str,
    header: BusinessHeader | None,
    now: int,
) -> BusinessWrites | None:
    """Apply the business rules to one send; raises the refusal, or returns what to store with it."""
    header = header or FREE_FORM
    state, business, marketing, mine = await _load(engine, business_id, user_id, header, now)
    if business.tier_evaluated_day < standing.day_of(now):
        await standing.evaluate_day(engine, business_id, now)
        state, business, marketing, mine = await _load(engine, business_id, user_id, header, now)
    if business.business_blocked is not None:  # the business's own block is two-way (cove.business.blocks)
        raise refusal(CloudApiError(131026, BLOCKED_BY_BUSINESS))
    # Steps 10-12 (marketing cap, pair rate, throughput) are left to _spend, which applies them atomically.
    state = replace(state, throughput=None, pair=None, user_marketing_ms=())
    request = SendRequest(user_id=user_id, type=header.kind, template_params=0)
    decided = may_send(request, state, now)
    if isinstance(decided, CloudApiError):
        raise refusal(decided)
    marketing_at = None
    if decided.category is Category.MARKETING and decided.reached_at_ms is not None:
        marketing_at = now
    refused = await _spend(relay_limits, business_id, user_id, business.throughput_mps, marketing, marketing_at, now)
    if refused is not None:
        raise refusal(refused)
    if decided.reached_at_ms is None:
        return None
    return BusinessWrites(
        business_id,
        user_id,
        reached_at_ms=decided.reached_at_ms,
        template_id=header.template_id,
        marketing_at_ms=marketing_at,
        new_today=mine is None or standing.day_of(mine) < standing.day_of(now),
        quality=Quality(business.quality),
    )


async def _spend(
    relay_limits: Limits,
    business_id: str,
    user_id: str,
    mps: int,
    recorded: list[tuple[str, int]],
    marketing_at: int | None,
    now: int,
) -> CloudApiError | None:
    """The decision's steps 10-12 in its order, all or nothing: a marketing delivery held against the user's cap
    (with the ``recorded`` ones), a permit of this number's pair bucket for the user, and one of its throughput."""
    spends = [
        Spend((Limiter.BUSINESS_PAIR, f"{business_id}>{user_id}"), limits.PAIR_LIMIT),
        Spend((Limiter.BUSINESS_THROUGHPUT, business_id), limits.throughput_limit(mps)),
    ]
    hold = None
    if marketing_at is not None:
        hold = Hold(
            (Limiter.MARKETING_HELD, user_id),
            _delivery(business_id, marketing_at),
            marketing_at,
            tuple((_delivery(b, at), at) for b, at in recorded),
            limits.MARKETING_CAP_PER_USER,
            limits.MARKETING_CAP_PERIOD_MS,
            IN_FLIGHT_MS,
        )
    taken = await relay_limits.take(spends, hold, now=now / 1000)  # seconds, as limits.spend counts buckets
    if taken.held_wait is not None:
        return CloudApiError(131049, retry_after_ms=taken.held_wait)
    for code, wait in zip((131056, 130429), taken.waits, strict=True):
        if wait:
            return CloudApiError(code, retry_after_ms=math.ceil(wait * 1000))
    return None


def _delivery(business_id: str, at: int) -> str:
    """A marketing delivery's name in a hold: one business at one time, without the business's id in Redis."""
    return f"{hashlib.blake2b(business_id.encode(), digest_size=8).hexdigest()}@{at}"


def store(conn: Connection, writes: list[BusinessWrites]) -> None:
    """Store what the sends committed in one queue transaction did (sync: the writer's): windows opened, users
    reached outside one with the template, marketing deliveries, and today's count of new users reached."""
    insert_ = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    opened: dict[tuple[str, str], int] = {}
    reached: dict[tuple[str, str], BusinessWrites] = {}
    for x in writes:
        key = (x.business_id, x.user_id)
        if x.opens_window_at_ms is not None:
            opened[key] = max(x.opens_window_at_ms, opened.get(key, x.opens_window_at_ms))
        if x.reached_at_ms is not None and (key not in reached or reached[key].reached_at_ms <= x.reached_at_ms):
            reached[key] = x
    if opened:
        w = business_windows
        statement = insert_(w).values(
            [{"business_id": b, "user_account_id": u, "last_user_message_ms": at} for (b, u), at in opened.items()]
        )
        conn.execute(
            statement.on_conflict_do_update(
                index_elements=["business_id", "user_account_id"],
                set_={"last_user_message_ms": statement.excluded.last_user_message_ms},
            )
        )
    if reached:
        r = business_reach
        statement = insert_(r).values(
            [
                {"business_id": b, "user_account_id": u, "reached_at_ms": x.reached_at_ms, "template_id": x.template_id}
                for (b, u), x in reached.items()
            ]
        )
        excluded = statement.excluded
        conn.execute(
            statement.on_conflict_do_update(
                index_elements=["business_id", "user_account_id"],
                set_={"reached_at_ms": excluded.reached_at_ms, "template_id": excluded.template_id},
            )
        )
    marketing = [
        {"user_account_id": x.user_id, "business_id": x.business_id, "at_ms": x.marketing_at_ms}
        for x in writes
        if x.marketing_at_ms is not None
    ]
    if marketing:
        conn.execute(business_marketing.insert(), marketing)
    new_users: dict[tuple[str, int], tuple[int, Quality]] = {}
    for x in reached.values():  # once per pair, however many sends to the user this batch holds
        if x.new_today and x.reached_at_ms is not None:
            key = (x.business_id, standing.day_of(x.reached_at_ms))
            new_users[key] = (new_users.get(key, (0, x.quality))[0] + 1, x.quality)
    for (business_id, day), (n, rated) in new_users.items():
        conn.execute(standing.daily_upsert(conn.dialect.name, business_id, day, rated, n, rerated=False))
