"""The business capability's part of an account's data export: what the account is to each business it deals
with (its per-business id, the name it shows, whether it shares its number), its opt-ins and preferences, when a
service window is open and which marketing reached it; and, for a business account, its own profile.

The names are the businesses' display names, so a person can tell which business each row is about.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, select
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

_name = business_accounts.c.display_name.label("business_name")


def _named(statement: Select[Any], business_id: Any) -> Select[Any]:
    return statement.add_columns(_name).outerjoin_from(
        business_id.table, business_accounts, business_accounts.c.account_id == business_id
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
            "ids": await listed(
                conn,
                _named(
                    select(
                        ids.business_id,
                        ids.bsuid,
                        ids.shown_name,
                        ids.number_shared_at_ms.label("number_shared_at"),
                        ids.created_at_ms.label("created_at"),
                    ),
                    ids.business_id,
                )
                .where(ids.user_account_id == account_id)
                .order_by(ids.created_at_ms),
            ),
            "opt_ins": await listed(
                conn,
                _named(
                    select(
                        o.business_id,
                        o.category,
                        o.source,
                        o.at_ms.label("at"),
                        o.withdrawn_at_ms.label("withdrawn_at"),
                    ),
                    o.business_id,
                )
                .where(o.user_account_id == account_id)
                .order_by(o.at_ms),
            ),
            "preferences": await listed(
                conn,
                _named(
                    select(
                        p.business_id,
                        p.promotions_stopped_at_ms.label("promotions_stopped_at"),
                        p.block_reason,
                        p.blocked_at_ms.label("blocked_at"),
                        p.updated_at_ms.label("updated_at"),
                    ),
                    p.business_id,
                )
                .where(p.user_account_id == account_id)
                .order_by(p.updated_at_ms),
            ),
            "service_windows": await listed(
                conn,
                select(w.business_id, w.last_user_message_ms.label("last_message_at"))
                .where(w.user_account_id == account_id)
                .order_by(w.last_user_message_ms),
            ),
            "marketing_received": await listed(
                conn,
                select(m.business_id, m.at_ms.label("at")).where(m.user_account_id == account_id).order_by(m.at_ms),
            ),
            "profile": None if profile is None else dict(profile._mapping),
        }
    }
