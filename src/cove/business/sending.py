"""The business rules on the relay's send path, from metadata only.

A send whose sender account is a business goes through :func:`cove.business.decision.may_send` before it is
queued. The relay sees the envelope's visible ``business`` header (template id, version, language, category:
VISION.md), never the parameter values inside the ciphertext. :func:`check` loads the snapshot the decision
reads in two queries (three for a template) and answers what to store with the envelopes
(:class:`BusinessWrites`), which the queue writer stores in the same transaction as the envelopes, and only for
a send that was not a duplicate. A user's message to a business opens the business's service window the same
way. Plain sends pay nothing: whether an account is a business comes with its devices (cached), not a query.

Not yet modelled here (so ``may_send`` sees their neutral values): stored throughput and pair buckets, the
cross-business marketing cap, the marketing holdout, quality ratings from feedback, and tier moves over days
(an unverified business has the 250 tier, a verified one 2,000: ``tiers.evaluate``'s verification path).
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator
from sqlalchemy import and_, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from cove.business import tiers
from cove.business.decision import TEMPLATE, Allowed, SendRequest, SendState, TemplateState, may_send
from cove.business.errors import CloudApiError
from cove.business.optin import Block, BlockReason, Category, OptIn, OptInSource, PairConsent
from cove.business.quality import PAUSE_DURATIONS_MS, TemplateHealth
from cove.business.storage import (
    business_accounts,
    business_optins,
    business_preferences,
    business_reach,
    business_templates,
    business_windows,
)
from cove.business.templates import ReviewStatus
from cove.errors import ApiError


class BusinessHeader(BaseModel):
    """The visible header of a business's message: what the send rules need, and nothing of the content."""

    kind: Literal["text", "template"] = Field(description="`text`: a free-form message; `template`: an approved one")
    template_id: str | None = Field(None, max_length=36, description="Templates only: the approved template's id")
    template_version: int | None = Field(None, ge=1, description="Templates only: the approved version rendered")
    language: str | None = Field(None, max_length=16, description="Templates only: its language")
    category: Literal["MARKETING", "UTILITY", "AUTHENTICATION"] | None = Field(
        None, description="Templates only: its category, as approved"
    )

    @model_validator(mode="after")
    def _consistent(self) -> BusinessHeader:
        template_fields = (self.template_id, self.template_version, self.language, self.category)
        if self.kind == TEMPLATE and any(f is None for f in template_fields):
            raise ValueError("a template header names template_id, template_version, language and category")
        if self.kind == "text" and any(f is not None for f in template_fields):
            raise ValueError("a text header names no template")
        return self


FREE_FORM = BusinessHeader(kind="text")


@dataclass(frozen=True)
class BusinessWrites:
    """What a send stores with its envelopes: a window the user opened, or a reach outside one."""

    business_id: str
    user_id: str
    opens_window_at_ms: int | None = None
    reached_at_ms: int | None = None


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
) -> tuple[SendState, int | None]:
    """The decision's snapshot. Returns it and this user's stored reach (to know if the reach changes)."""
    p, w, r, b = business_preferences, business_windows, business_reach, business_accounts
    since = now - tiers.COUNTING_PERIOD_MS
    counting = and_(r.c.business_id == business_id, r.c.reached_at_ms > since, r.c.reached_at_ms <= now)

    def one(column: Any, where: Any) -> Any:
        return select(column).where(where).scalar_subquery()

    pair_query = select(
        one(b.c.verification, b.c.account_id == business_id).label("verification"),
        one(p.c.promotions_stopped_at_ms, _pair(p, business_id, user_id)).label("stopped"),
        one(p.c.block_reason, _pair(p, business_id, user_id)).label("block_reason"),
        one(p.c.blocked_at_ms, _pair(p, business_id, user_id)).label("blocked"),
        one(w.c.last_user_message_ms, _pair(w, business_id, user_id)).label("last_user_message"),
        one(r.c.reached_at_ms, _pair(r, business_id, user_id)).label("mine"),
        select(func.count()).select_from(r).where(counting).scalar_subquery().label("reached"),
        select(func.min(r.c.reached_at_ms)).where(counting).scalar_subquery().label("oldest"),
    )
    o = business_optins
    async with engine.connect() as conn:
        row = (await conn.execute(pair_query)).one()
        opt_rows = (await conn.execute(select(o).where(_pair(o, business_id, user_id)))).all()
        template_row = None
        if header.kind == TEMPLATE:
            t = business_templates
            template_row = (
                await conn.execute(
                    select(t).where(t.c.template_id == header.template_id, t.c.business_id == business_id)
                )
            ).first()

    limit = tiers.LIMITS[tiers.Tier.T2K if row.verification == "verified" else tiers.Tier.T250]
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
        template=_template_state(template_row, header, now),
        messaging_limit=limit,
        reached=MappingProxyType(reached),
    )
    return state, row.mine


def _template_state(row: Any, header: BusinessHeader, now: int) -> TemplateState | None:
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
    health = TemplateHealth()
    if status is ReviewStatus.PAUSED:
        # The registry does not store when the pause ends yet: the first pause's length from the last change.
        health = TemplateHealth(pauses=1, paused_until_ms=max(row.updated_at_ms + PAUSE_DURATIONS_MS[0], now + 1))
    elif status is ReviewStatus.DISABLED:
        health = TemplateHealth(disabled=True)
    return TemplateState(
        category=Category(row.category.lower()),
        # The relay never sees parameter values (nor their count): the recipient's client checks them against
        # the signed text. The request below supplies the template's own count, so the rule always holds here.
        param_count=0,
        approved=status in (ReviewStatus.APPROVED, ReviewStatus.PAUSED, ReviewStatus.DISABLED),
        health=health,
    )


async def check(
    engine: AsyncEngine, business_id: str, user_id: str, header: BusinessHeader | None, now: int
) -> BusinessWrites | None:
    """Apply the business rules to one send; raises the refusal, or returns what to store with it."""
    header = header or FREE_FORM
    state, mine = await _load(engine, business_id, user_id, header, now)
    request = SendRequest(user_id=user_id, type=header.kind, template_params=0)
    decided = may_send(request, state, now)
    if isinstance(decided, CloudApiError):
        raise refusal(decided)
    return _writes(business_id, user_id, decided, mine)


def _writes(business_id: str, user_id: str, allowed: Allowed, mine: int | None) -> BusinessWrites | None:
    if allowed.reached_at_ms is None or allowed.reached_at_ms == mine:
        return None
    return BusinessWrites(business_id, user_id, reached_at_ms=allowed.reached_at_ms)


def store(conn: Connection, writes: list[BusinessWrites]) -> None:
    """Upsert the windows and reaches of the sends committed in one queue transaction (sync: the writer's)."""
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    for table, column, attr in (
        (business_windows, "last_user_message_ms", "opens_window_at_ms"),
        (business_reach, "reached_at_ms", "reached_at_ms"),
    ):
        latest: dict[tuple[str, str], int] = {}
        for x in writes:
            at = getattr(x, attr)
            if at is not None:
                key = (x.business_id, x.user_id)
                latest[key] = max(at, latest.get(key, at))
        if not latest:
            continue
        statement = insert(table).values(
            [{"business_id": b, "user_account_id": u, column: at} for (b, u), at in latest.items()]
        )
        conn.execute(
            statement.on_conflict_do_update(
                index_elements=["business_id", "user_account_id"], set_={column: statement.excluded[column]}
            )
        )
