"""The business capability's part of an account's data export: what the account is to each business it deals
with (its per-business id, the name it shows, whether it shares its number), its opt-ins and preferences, when a
service window is open and which marketing reached it; and, for a business account, its own profile.

The names are the businesses' display names, so a person can tell which business each row is about.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncConnection

from cove.accounts.export import listed
from cove.business.storage import (
    business_accounts,
    business_marketing,
    business_optins,
    business_preferences,
    business_user_ids,
    business_windows,
)


async def _per_business(
    conn: AsyncConnection, account_id: str, table: Table, *columns: Any, order: Any
) -> dict[str, Any]:
    """The account's rows of a per-(business, user) table, each with the business's id and display name."""
    t, b = table.c, business_accounts.c
    return await listed(
        conn,
        select(t.business_id, b.display_name.label("business_name"), *columns)
        .outerjoin_from(table, business_accounts, b.account_id == t.business_id)
        .where(t.user_account_id == account_id)
        .order_by(order),
    )


async def section(conn: AsyncConnection, account_id: str) -> dict[str, Any]:
    ids, o, p = business_user_ids.c, business_optins.c, business_preferences.c
    w, m, b = business_windows.c, business_marketing.c, business_accounts.c
    profile = (
        await conn.execute(
            select(
                b.display_name,
                b.about,
                b.description,
                b.address,
                b.email,
                b.websites,
                b.vertical,
                b.verification,
                b.quality,
                b.tier,
                b.created_at_ms.label("created_at"),
            ).where(b.account_id == account_id)
        )
    ).first()
    return {
        "business": {
            "ids": await _per_business(
                conn,
                account_id,
                business_user_ids,
                ids.bsuid,
                ids.shown_name,
                ids.number_shared_at_ms.label("number_shared_at"),
                ids.created_at_ms.label("created_at"),
                order=ids.created_at_ms,
            ),
            "opt_ins": await _per_business(
                conn,
                account_id,
                business_optins,
                o.category,
                o.source,
                o.at_ms.label("at"),
                o.withdrawn_at_ms.label("withdrawn_at"),
                order=o.at_ms,
            ),
            "preferences": await _per_business(
                conn,
                account_id,
                business_preferences,
                p.promotions_stopped_at_ms.label("promotions_stopped_at"),
                p.block_reason,
                p.blocked_at_ms.label("blocked_at"),
                p.updated_at_ms.label("updated_at"),
                order=p.updated_at_ms,
            ),
            "service_windows": await _per_business(
                conn,
                account_id,
                business_windows,
                w.last_user_message_ms.label("last_message_at"),
                order=w.last_user_message_ms,
            ),
            "marketing_received": await _per_business(
                conn, account_id, business_marketing, m.at_ms.label("at"), order=m.at_ms
            ),
            "profile": None if profile is None else dict(profile._mapping),
        }
    }
