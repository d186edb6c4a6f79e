""" "Download my data" (``GET /v1/me/export``): everything the relay holds about an account, as one JSON document.

Each capability contributes its own sections through ``Relay.export_sections`` (registered in its ``hooks``), so
accounts names none of them. Every section is read in one read-only snapshot (REPEATABLE READ on PostgreSQL,
one read transaction on SQLite's WAL), so the parts agree with each other as of one instant.

Bounded by capping, not streaming: every list is ``{"items": [...], "truncated": bool}`` with at most
:data:`LIST_LIMIT` items (oldest first where there is an order), so a huge account costs at most a few MB; a
``truncated`` list says more exists than was sent. Counts beside a list are exact. Secrets never appear: no
token or PIN hash, no ciphertext, only whether a registration lock is set and the sizes of what is queued.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import Select, exists, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cove.accounts.reglock_storage import registration_locks
from cove.accounts.storage import accounts, devices
from cove.accounts.usage_storage import usage_daily
from cove.clock import now_ms
from cove.context import Relay
from cove.errors import ApiError
from cove.limits.table import Limiter

FORMAT = "cove.export/1"
LIST_LIMIT = 1000  # items per list: 15 lists of 1,000 short rows stay under a few MB of JSON

Section = Callable[[AsyncConnection, str], Awaitable[dict[str, Any]]]


async def listed(
    conn: AsyncConnection,
    statement: Select[Any],
    shape: Callable[[Mapping[str, Any]], dict[str, Any]] = dict,
    limit: int = LIST_LIMIT,
) -> dict[str, Any]:
    """At most ``limit`` rows of ``statement`` (its columns, by label, unless ``shape`` says otherwise), and
    whether more were left out: one row more is read to know it."""
    rows = (await conn.execute(statement.limit(limit + 1))).mappings().all()
    return {"items": [shape(row) for row in rows[:limit]], "truncated": len(rows) > limit}


def capped(items: list[Any], limit: int = LIST_LIMIT) -> dict[str, Any]:
    """A list another capability built, in the same shape as :func:`listed`'s."""
    return {"items": items[:limit], "truncated": len(items) > limit}


@asynccontextmanager
async def snapshot(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A read-only connection whose every statement sees the database as of its first read."""
    async with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            # pysqlite opens a transaction only before a write: each SELECT alone would see its own instant.
            await conn.exec_driver_sql("BEGIN")
        else:
            await conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        try:
            yield conn
        finally:
            await conn.rollback()


async def export(relay: Relay, account_id: str) -> dict[str, Any]:
    """The whole export for one account; raises 429 ``rate_limited`` past the account's few an hour."""
    await relay.limits.check(Limiter.DATA_EXPORT, account_id)
    sections: dict[str, Any] = {}
    async with snapshot(relay.engine) as conn:
        generated_at = now_ms()
        for section in relay.export_sections:
            sections.update(await section(conn, account_id))
    if sections.get("account") is None:
        raise ApiError(404, "unknown_account", "this account was deleted")
    return {"format": FORMAT, "generated_at": generated_at, "account_id": account_id, "sections": sections}


async def account_sections(conn: AsyncConnection, account_id: str) -> dict[str, Any]:
    """Accounts' own: the account, its devices and their public identity keys, its daily usage counters."""
    locked = exists().where(registration_locks.c.account_id == account_id)
    row = (
        await conn.execute(
            select(
                accounts.c.phone_number,
                accounts.c.created_at_ms,
                accounts.c.identity_generation,
                accounts.c.identity_changed_at_ms,
                accounts.c.rollout_bucket,
                locked.label("registration_lock"),
            ).where(accounts.c.id == account_id)
        )
    ).first()
    d, u = devices.c, usage_daily.c
    return {
        "account": None
        if row is None
        else {
            "phone_number": row.phone_number,
            "created_at": row.created_at_ms,
            "identity_generation": row.identity_generation,
            "identity_changed_at": row.identity_changed_at_ms,
            "rollout_bucket": row.rollout_bucket,  # which wave of a policy rollout reaches it first
            "registration_lock_set": bool(row.registration_lock),  # never its hash or salt
        },
        "devices": await listed(
            conn,
            select(
                d.device_id,
                d.registration_id,
                d.device_model.label("model"),
                d.os_name,
                d.os_version,
                d.app_version,
                d.vendor_device_id,
                d.identity_curve25519,
                d.identity_ed25519,
                d.created_at_ms.label("created_at"),
                d.last_seen_at_ms.label("last_seen_at"),
            )
            .where(d.account_id == account_id)
            .order_by(d.device_id),
        ),
        "usage": await listed(
            conn,
            select(u.day, u.messages_sent, u.messages_received, u.app_opens, u.updated_at_ms.label("updated_at"))
            .where(u.account_id == account_id)
            .order_by(u.day),
        ),
    }
