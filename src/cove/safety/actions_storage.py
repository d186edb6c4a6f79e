"""Tables of the graduated actions and the appeals against them, and the queries cove.safety.actions needs.

An action row records the step, a reason code, who took it (a rule, the model, an operator), the score that
led to it and its instants: never content. An appeal keeps the person's own words about their case (at most
1,000 characters) and, while it is open, the phone number of a banned account (its ban is lifted by number);
the number is erased when the appeal is decided.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, NamedTuple

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    String,
    Table,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from cove.db import metadata
from cove.safety.ladder import Review, Source, Step, Taken
from cove.safety.verdicts import ReasonCode

MAX_APPEAL_CHARS = 1000

safety_actions = Table(
    "safety_actions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("account_id", String(36), nullable=False),
    Column("step", String(10), nullable=False),
    Column("reason", String(40), nullable=False),
    Column("source", String(10), nullable=False),
    Column("score", Float, nullable=True),
    Column("created_at_ms", BigInteger, nullable=False),
    Column("expires_at_ms", BigInteger, nullable=True),
    Column("lifted_at_ms", BigInteger, nullable=True),
    Column("lifted_by", String(20), nullable=True),
    Column("review", String(10), nullable=False),
    Column("note", String(MAX_APPEAL_CHARS), nullable=True),  # the reviewer's, about the case, never content
    Index("ix_safety_actions_account", "account_id", "lifted_at_ms"),
    Index("ix_safety_actions_review", "review"),
)

safety_appeals = Table(
    "safety_appeals",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("account_id", String(36), nullable=False),
    # The account while the appeal is open, NULL once decided: unique, so an account has one open appeal at most
    # (both SQLite and PostgreSQL let NULLs repeat under a unique constraint).
    Column("open_for", String(36), nullable=True, unique=True),
    Column("phone_number", String(20), nullable=True),
    Column("message", String(MAX_APPEAL_CHARS), nullable=False),
    Column("state", String(10), nullable=False),
    Column("created_at_ms", BigInteger, nullable=False),
    Column("decided_at_ms", BigInteger, nullable=True),
    Column("decided_by", String(20), nullable=True),
    Column("note", String(MAX_APPEAL_CHARS), nullable=True),
    Index("ix_safety_appeals_account", "account_id"),
)


class Appeal(NamedTuple):
    id: int
    account_id: str
    phone_number: str | None
    message: str
    state: str  # open | granted | denied
    created_at_ms: int
    decided_at_ms: int | None
    note: str | None


def _taken(row: Row[Any]) -> Taken:
    return Taken(
        id=row.id,
        account_id=row.account_id,
        step=Step.named(row.step),
        reason=ReasonCode(row.reason),
        source=Source(row.source),
        score=row.score,
        created_at_ms=row.created_at_ms,
        expires_at_ms=row.expires_at_ms,
        lifted_at_ms=row.lifted_at_ms,
        lifted_by=row.lifted_by,
        review=Review(row.review),
    )


def _appeal(row: Row[Any]) -> Appeal:
    t = safety_appeals
    return Appeal(
        *(
            row._mapping[c]
            for c in (
                t.c.id,
                t.c.account_id,
                t.c.phone_number,
                t.c.message,
                t.c.state,
                t.c.created_at_ms,
                t.c.decided_at_ms,
                t.c.note,
            )
        )
    )


async def add(conn: AsyncConnection, a: Taken) -> Taken:
    values = {
        "account_id": a.account_id,
        "step": a.step.label,
        "reason": a.reason.value,
        "source": a.source.value,
        "score": a.score,
        "created_at_ms": a.created_at_ms,
        "expires_at_ms": a.expires_at_ms,
        "review": a.review.value,
    }
    new_id = (await conn.execute(insert(safety_actions).values(values).returning(safety_actions.c.id))).scalar_one()
    return replace(a, id=new_id)


async def in_force(conn: AsyncConnection, account_id: str, now_ms: int) -> list[Taken]:
    """The account's actions neither lifted nor expired at ``now_ms``."""
    t = safety_actions
    live = (t.c.account_id == account_id, t.c.lifted_at_ms.is_(None))
    rows = await conn.execute(select(t).where(*live, or_(t.c.expires_at_ms.is_(None), t.c.expires_at_ms > now_ms)))
    return [_taken(r) for r in rows]


async def action(conn: AsyncConnection, action_id: int) -> Taken | None:
    row = (await conn.execute(select(safety_actions).where(safety_actions.c.id == action_id))).first()
    return _taken(row) if row else None


async def lift(conn: AsyncConnection, ids: list[int], now_ms: int, by: str, review: Review | None = None) -> None:
    t = safety_actions
    values: dict[str, Any] = {"lifted_at_ms": now_ms, "lifted_by": by}
    if review is not None:
        values["review"] = review.value
    await conn.execute(update(t).where(t.c.id.in_(ids), t.c.lifted_at_ms.is_(None)).values(values))


async def lift_step(conn: AsyncConnection, account_id: str, step: Step, now_ms: int, by: str) -> int:
    """Lift the account's actions of ``step`` not lifted yet; how many there were."""
    t = safety_actions
    where = (t.c.account_id == account_id, t.c.step == step.label, t.c.lifted_at_ms.is_(None))
    done = await conn.execute(update(t).where(*where).values(lifted_at_ms=now_ms, lifted_by=by))
    return done.rowcount or 0


async def set_review(conn: AsyncConnection, action_id: int, review: Review, note: str | None) -> None:
    t = safety_actions
    await conn.execute(update(t).where(t.c.id == action_id).values(review=review.value, note=note))


async def pending_reviews(conn: AsyncConnection) -> list[Taken]:
    t = safety_actions
    rows = await conn.execute(select(t).where(t.c.review == Review.PENDING.value).order_by(t.c.created_at_ms))
    return [_taken(r) for r in rows]


async def review_counts(conn: AsyncConnection) -> dict[str, int]:
    t = safety_actions
    rows = await conn.execute(select(t.c.review, func.count()).group_by(t.c.review))
    return {r[0]: r[1] for r in rows}


async def file_appeal(
    conn: AsyncConnection, account_id: str, phone_number: str | None, message: str, now_ms: int
) -> Appeal | None:
    """File an appeal; ``None`` when the account already has one open."""
    t = safety_appeals
    if (await conn.execute(select(t.c.id).where(t.c.open_for == account_id))).first() is not None:
        return None
    values = {
        "account_id": account_id,
        "open_for": account_id,
        "phone_number": phone_number,
        "message": message,
        "state": "open",
        "created_at_ms": now_ms,
    }
    new_id = (await conn.execute(insert(t).values(values).returning(t.c.id))).scalar_one()
    return Appeal(new_id, account_id, phone_number, message, "open", now_ms, None, None)


async def appeal(conn: AsyncConnection, appeal_id: int) -> Appeal | None:
    row = (await conn.execute(select(safety_appeals).where(safety_appeals.c.id == appeal_id))).first()
    return _appeal(row) if row else None


async def latest_appeal(conn: AsyncConnection, account_id: str) -> Appeal | None:
    t = safety_appeals
    row = (await conn.execute(select(t).where(t.c.account_id == account_id).order_by(t.c.id.desc()).limit(1))).first()
    return _appeal(row) if row else None


async def open_appeals(conn: AsyncConnection) -> list[Appeal]:
    t = safety_appeals
    rows = await conn.execute(select(t).where(t.c.state == "open").order_by(t.c.created_at_ms))
    return [_appeal(r) for r in rows]


async def decide_appeal(conn: AsyncConnection, appeal_id: int, state: str, note: str | None, now_ms: int) -> bool:
    """Decide an open appeal (the number it kept is erased); False when it was not open."""
    t = safety_appeals
    values = {
        "state": state,
        "open_for": None,
        "phone_number": None,
        "decided_at_ms": now_ms,
        "decided_by": "operator",
        "note": note,
    }
    done = await conn.execute(update(t).where(t.c.id == appeal_id, t.c.state == "open").values(values))
    return done.rowcount == 1


async def forget_appeals(conn: AsyncConnection, account_id: str) -> None:
    """A deleted account's appeals go: they are the person's own words. Its actions stay, as verdicts do."""
    await conn.execute(delete(safety_appeals).where(safety_appeals.c.account_id == account_id))


async def appeal_counts(conn: AsyncConnection) -> dict[str, int]:
    t = safety_appeals
    rows = await conn.execute(select(t.c.state, func.count()).group_by(t.c.state))
    return {r[0]: r[1] for r in rows}
