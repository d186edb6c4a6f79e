"""The business rules on the relay's send path, from metadata only.

A send whose sender account is a business goes through :func:`cove.business.decision.may_send` before it is
queued. The relay sees the envelope's visible ``business`` header (template id, version, language, category:
VISION.md), never the parameter values inside the ciphertext. :func:`check` loads the snapshot the decision
reads in one statement (plus the tier's count when it matters, and the marketing log for a marketing template)
and answers what to store with the envelopes
(:class:`BusinessWrites`), which the queue writer stores in the same transaction as the envelopes, and only for
a send that was not a duplicate. A user's message to a business opens the business's service window the same
way. Plain sends pay nothing: whether an account is a business comes with its devices (cached), not a query.

The number's quality and tier, the template's pauses and the marketing log come from the tables that
:mod:`cove.business.standing` keeps. The first send of a day per business runs that day's re-rating and tier
move. A paced template's send past its episode's sample is held (:mod:`cove.business.pacing`): the queue writer
keeps its envelopes in ``business_held`` instead of the queue, and the relay's sweep releases or drops them. Not
modelled: the marketing experiment holdout (Cove runs no such experiment).

Across a fleet of relays (one database, one Redis):

- Throughput per number, pair rate per number and user, and the marketing deliveries in flight are the
  decision's last steps (10-12). The decision runs without them; then the relay's limits
  (:class:`cove.limits.limiters.Limits`) apply them in one atomic call, all or nothing, with the same order and
  arithmetic: in Redis for a fleet, so they hold fleet-wide exactly (up to the hosts' clock skew).
- The marketing cap counts the database's log plus the deliveries held in flight: a delivery is held from its
  decision for ``IN_FLIGHT_MS``, past its commit, so two relays cannot both take a user's last slot.
- The tier (unique users reached outside a window in 24 h) is counted from the shared database, exactly: a send
  that would add a user claims the slot in its own transaction under the business's row lock
  (:mod:`cove.business.reach`), so sends decided at the same moment, on any relays, cannot all take the last
  free slot, and two sends to one new user count them once.
- While Redis is away these limits fail open (:mod:`cove.limits.table`): each relay keeps them alone, so N
  relays allow N times the throughput and pair rate, and a marketing delivery in flight on another relay is
  not seen (the committed log still is).
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import uuid
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any

from sqlalchemy import and_, false, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from cove.business import blocks_storage, limits, pacing, reach, standing, tiers
from cove.business.decision import TEMPLATE, SendRequest, SendState, TemplateState, may_send, tier_refusal
from cove.business.errors import CloudApiError
from cove.business.optin import Block, OptIn, PairConsent
from cove.business.quality import Quality
from cove.business.storage import (
    business_accounts,
    business_held,
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
from cove.messaging.writer import SendJob
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
    held_until_ms: int | None = None  # template pacing: the envelopes are held until then (cove.business.pacing)


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
    last reached this user outside a window.

    One statement reads the business's row, everything about the pair, its opt-ins (a row each: outer-joined)
    and the header's template (outer-joined): on SQLite each statement is a thread hop, and these were three.
    The count of users reached in the tier's period is a second statement, read only when the rule needs it: a
    user reached in the period already counts, and an unlimited tier has nothing to count against."""
    p, w, r, b, o, t = (
        business_preferences,
        business_windows,
        business_reach,
        business_accounts,
        business_optins,
        business_templates,
    )
    since = now - tiers.COUNTING_PERIOD_MS

    def one(column: Any, where: Any) -> Any:
        return select(column).where(where).scalar_subquery()

    template_id = header.template_id if header.kind == TEMPLATE else None
    query = (
        select(
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
            o.c.category.label("opt_category"),
            o.c.source.label("opt_source"),
            o.c.at_ms.label("opt_at"),
            o.c.withdrawn_at_ms.label("opt_withdrawn"),
            t.c.template_id.label("template_found"),
            t.c.version.label("template_version"),
            t.c.language.label("template_language"),
            t.c.category.label("template_category"),
            t.c.status.label("template_status"),
            t.c.quality.label("template_quality"),
            t.c.pauses,
            t.c.paused_until_ms,
        )
        .select_from(
            b.outerjoin(o, and_(o.c.business_id == b.c.account_id, o.c.user_account_id == user_id)).outerjoin(
                t,
                and_(t.c.template_id == template_id, t.c.business_id == b.c.account_id)
                if template_id is not None
                else false(),
            )
        )
        .where(b.c.account_id == business_id)
    )
    m = business_marketing
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
        row = business = rows[0]
        limit = tiers.LIMITS[tiers.Tier(business.tier)]
        counts = None
        mine_counts = row.mine is not None and since < row.mine <= now
        if limit is not None and not mine_counts:
            counting = and_(r.c.business_id == business_id, r.c.reached_at_ms > since, r.c.reached_at_ms <= now)
            counts = (await conn.execute(select(func.count(), func.min(r.c.reached_at_ms)).where(counting))).one()
        marketing: list[tuple[str, int]] = []
        if header.kind == TEMPLATE and header.category == "MARKETING":
            period = now - limits.MARKETING_CAP_PERIOD_MS
            marketing = [
                (x.business_id, x.at_ms)
                for x in await conn.execute(
                    select(m.c.business_id, m.c.at_ms).where(m.c.user_account_id == user_id, m.c.at_ms > period)
                )
            ]

    reached: dict[str, int] = {}
    if mine_counts:
        reached[user_id] = row.mine
    elif counts is not None and counts[0] >= limit:
        # Only the count and the oldest matter to the rule; the map is built only when the limit is reached.
        reached = {f"counted-{i}": counts[1] for i in range(counts[0])}
    block = Block(BlockReason(row.block_reason), row.blocked) if row.blocked is not None else None
    consent = PairConsent(
        opt_ins=MappingProxyType(
            {
                Category(x.opt_category): OptIn(
                    Category(x.opt_category), OptInSource(x.opt_source), x.opt_at, x.opt_withdrawn
                )
                for x in rows
                if x.opt_category is not None
            }
        ),
        promotions_stopped_at_ms=row.stopped,
        block=block,
    )
    state = SendState(
        consent=consent,
        last_user_message_ms=row.last_user_message,
        template=_template_state(_TemplateRow.of(row), header),
        number_quality=Quality(business.quality),
        messaging_limit=limit,
        reached=MappingProxyType(reached),
        throughput_mps=business.throughput_mps,
    )
    return state, business, marketing, row.mine


@dataclass(frozen=True)
class _TemplateRow:
    """The template's columns the rules read, from the joined statement (the names standing.template_health
    reads)."""

    version: int
    language: str
    category: str
    status: str
    quality: str
    pauses: int
    paused_until_ms: int | None

    @classmethod
    def of(cls, row: Any) -> _TemplateRow | None:
        if row.template_found is None:
            return None
        return cls(
            row.template_version,
            row.template_language,
            row.template_category,
            row.template_status,
            row.template_quality,
            row.pauses,
            row.paused_until_ms,
        )


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
    if decided.reached_at_ms is None and not decided.paced:
        return None
    new_today = mine is None or standing.day_of(mine) < standing.day_of(now)
    limit = state.messaging_limit
    if decided.reached_at_ms is not None and limit is not None and not reach.counts(mine, now):
        # A user not yet counted: claim the slot atomically (the snapshot above may be one of many at once).
        rated = Quality(business.quality)
        wait = await reach.claim(engine, business_id, user_id, limit, header.template_id, rated, now)
        if wait is not None:
            raise refusal(tier_refusal(limit, wait))
        new_today = False  # the claim counted them today, once
    held_until = None
    if decided.paced and header.template_id is not None:
        held_until = await pacing.admit(engine, business_id, header.template_id, now)
        if isinstance(held_until, CloudApiError):
            raise refusal(held_until)
    return BusinessWrites(
        business_id,
        user_id,
        reached_at_ms=decided.reached_at_ms,
        template_id=header.template_id,
        marketing_at_ms=marketing_at,
        new_today=new_today,
        quality=Quality(business.quality),
        held_until_ms=held_until,
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


def store(conn: Connection, jobs: list[SendJob]) -> list[SendJob]:
    """Store what the sends committed in one queue transaction did (sync: the writer's): windows opened, users
    reached outside one with the template, marketing deliveries, today's count of new users reached, and the
    sends held for pacing with their envelopes. Returns the held ones: the writer does not queue them."""
    writes: list[BusinessWrites] = [job.business for job in jobs]
    held = [job for job in jobs if job.business.held_until_ms is not None]
    if held:
        conn.execute(business_held.insert(), [_held_row(job) for job in held])
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
    return held


def _held_row(job: SendJob) -> dict[str, Any]:
    writes: BusinessWrites = job.business
    rows = [{**e.row(), "body": base64.b64encode(e.body).decode()} for e in job.envelopes]
    return {
        "business_id": writes.business_id,
        "template_id": writes.template_id,
        "user_account_id": writes.user_id,
        "client_message_id": job.client_message_id,
        "envelopes": json.dumps(rows),
        "held_at_ms": job.envelopes[0].server_ts_ms,
        "release_at_ms": writes.held_until_ms,
    }
