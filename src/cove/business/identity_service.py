"""What a user shows a business about themselves, as the relay stores it: the per-business user id, the name
the user chose to show, and whether the user shares their number (Meta's request-phone-number flow).

Only the user changes these (their own switches, by their own device); the business reads them through its
user-id resolution and its event feed:

- ``user_identity`` ``{"user_id", "name", "wa_id", "shared"}``: the name or the sharing changed. ``wa_id`` (the
  number's digits) is set only while the user shares it; ``shared`` is true on the event of a new share, which the
  gateway reports as Meta's ``contacts`` message with ``origin: contact_request``.
- ``user_id_changed`` ``{"previous_user_id", "user_id", "wa_id"}``: the id changed (a new number, or the 0018
  migration to Meta's format); ``wa_id`` is the new number if the user shares it, so the gateway sends Meta's
  ``user_changed_number`` then and ``user_changed_user_id`` otherwise.

Why the relay and not the message payload: the number must be the one the relay verified (a user's client could
put any number into a payload), the business must learn a withdrawal even when the user writes nothing, and the
name is needed for the webhooks of every message, receipts and events included, which carry no payload. The cost,
said in docs/business.md: the relay knows the name a user shows each business, as it knows the business's own
profile.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cove.accounts import storage as account_storage
from cove.business import standing
from cove.business.identity import wa_id_of_number
from cove.business.keys import BusinessKeys
from cove.business.storage import business_by_id, business_user_ids
from cove.clock import now_ms
from cove.errors import ApiError


async def phone_of(conn: AsyncConnection, account_id: str) -> str | None:
    a = account_storage.accounts
    return (await conn.execute(select(a.c.phone_number).where(a.c.id == account_id))).scalar()


def identity_view(bsuid: str, name: str | None, shared_at_ms: int | None, phone: str | None) -> dict[str, Any]:
    """The user's identity as the business may see it (the user's own view says the same)."""
    return {
        "user_id": bsuid,
        "name": name,
        "wa_id": wa_id_of_number(phone) if shared_at_ms is not None and phone else None,
    }


async def identities(conn: AsyncConnection, business_id: str, account_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The identity of each of these accounts that has an id with the business, by account id."""
    if not account_ids:
        return {}
    u, a = business_user_ids, account_storage.accounts
    query = (
        select(u.c.user_account_id, u.c.bsuid, u.c.shown_name, u.c.number_shared_at_ms, a.c.phone_number)
        .join(a, a.c.id == u.c.user_account_id)
        .where(u.c.business_id == business_id, u.c.user_account_id.in_(account_ids))
    )
    return {
        r.user_account_id: identity_view(r.bsuid, r.shown_name, r.number_shared_at_ms, r.phone_number)
        for r in await conn.execute(query)
    }


async def user_id_for(conn: AsyncConnection, keys: BusinessKeys, business_id: str, user_id: str) -> str:
    """The user's per-business id, recorded the first time the pair meets (from the number the user has then)."""
    u = business_user_ids
    where = (u.c.business_id == business_id, u.c.user_account_id == user_id)
    found = (await conn.execute(select(u.c.bsuid).where(*where))).scalar()
    if found is None:
        phone = await phone_of(conn, user_id)
        if phone is None:
            raise ApiError(404, "unknown_account", "no account has this id")
        found = keys.bsuid(business_id, user_id, phone)
        await conn.execute(
            insert(u).values(business_id=business_id, user_account_id=user_id, bsuid=found, created_at_ms=now_ms())
        )
    return found


async def business_exists(engine: AsyncEngine, business_id: str) -> None:
    async with engine.connect() as conn:
        await _business(conn, business_id)


async def _business(conn: AsyncConnection, business_id: str) -> None:
    if await business_by_id(conn, business_id) is None:
        raise ApiError(404, "unknown_business", "no business has this account id")


async def _pair(conn: AsyncConnection, keys: BusinessKeys, business_id: str, user_id: str) -> Any:
    await user_id_for(conn, keys, business_id, user_id)
    u = business_user_ids
    where = (u.c.business_id == business_id, u.c.user_account_id == user_id)
    return (await conn.execute(select(u).where(*where))).one()


async def my_identity(engine: AsyncEngine, business_id: str, user_id: str) -> dict[str, Any]:
    """What this business sees of me. Reading records nothing: with no id yet, it sees nothing yet."""
    async with engine.connect() as conn:
        found = (await identities(conn, business_id, [user_id])).get(user_id)
    return found or {"user_id": None, "name": None, "wa_id": None}


async def set_identity(
    engine: AsyncEngine,
    keys: BusinessKeys,
    business_id: str,
    user_id: str,
    *,
    name: str | None = None,
    forget_name: bool = False,
    share_number: bool | None = None,
) -> dict[str, Any]:
    """Change the name shown to the business (or remove it) and/or share or stop sharing the number (None:
    leave it); tells the business in its feed when anything changed."""
    if business_id == user_id:
        raise ApiError(400, "own_business", "this is your own business")
    now = now_ms()
    u = business_user_ids
    async with engine.begin() as conn:
        await _business(conn, business_id)
        row = await _pair(conn, keys, business_id, user_id)
        values: dict[str, Any] = {}
        if name is not None or forget_name:
            values["shown_name"] = name
        if share_number is True and row.number_shared_at_ms is None:
            values["number_shared_at_ms"] = now
        elif share_number is False and row.number_shared_at_ms is not None:
            values["number_shared_at_ms"] = None
        changed = {k: v for k, v in values.items() if getattr(row, k) != v}
        phone = await phone_of(conn, user_id)
        name_now = changed.get("shown_name", row.shown_name)
        shared_now = changed.get("number_shared_at_ms", row.number_shared_at_ms)
        view = identity_view(row.bsuid, name_now, shared_now, phone)
        if changed:
            where = (u.c.business_id == business_id, u.c.user_account_id == user_id)
            await conn.execute(update(u).where(*where).values(**changed))
            new_share = "number_shared_at_ms" in changed and shared_now is not None
            await standing.emit(conn, business_id, "user_identity", view | {"shared": new_share}, now)
    return view


async def number_changed(conn: AsyncConnection, keys: BusinessKeys, account_id: str, new_phone: str) -> int:
    """The account moved to a new number: every business it deals with gets a new id for it, as Meta gives a
    new BSUID with a new number, and is told in its feed. Returns how many businesses were told."""
    u = business_user_ids
    now = now_ms()
    rows = (await conn.execute(select(u).where(u.c.user_account_id == account_id))).all()
    for row in rows:
        new = keys.bsuid(row.business_id, account_id, new_phone)
        where = (u.c.business_id == row.business_id, u.c.user_account_id == account_id)
        await conn.execute(update(u).where(*where).values(bsuid=new))
        shared = row.number_shared_at_ms is not None
        body = {"previous_user_id": row.bsuid, "user_id": new, "wa_id": wa_id_of_number(new_phone) if shared else None}
        await standing.emit(conn, row.business_id, "user_id_changed", body, now)
    return len(rows)
