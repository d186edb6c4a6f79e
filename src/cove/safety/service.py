"""Bans: the operator bans or unbans a phone number (``cove safety ban|unban``), and the relay enforces it.

A ban writes the account's verdict, adds the number to ``banned_numbers`` (registration and code requests for
it are refused with 403 ``account_banned``) and logs out every device of the account (its tokens are cleared)
in one transaction, with a fleet event (``DevicesLoggedOut``, cove.fleet.broadcast) that every relay process
reads within ``COVE_FLEET_POLL_SECONDS`` (2 s): messaging closes the account's open sockets (close code 4401)
and accounts drops its tokens from the cache, so the old tokens are refused from then on.
"""

from __future__ import annotations

import logging
from typing import NamedTuple

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cove.accounts import storage as account_storage
from cove.accounts.storage import devices
from cove.clock import now_ms
from cove.events import DevicesLoggedOut, SafetyActionChanged
from cove.fleet import storage as fleet_storage
from cove.fleet.broadcast import stored
from cove.protocol.phone import normalise
from cove.safety import actions_storage, storage, verdicts
from cove.safety.ladder import Step
from cove.safety.storage import BannedNumber
from cove.safety.verdicts import ReasonCode

log = logging.getLogger("cove.safety")

BANNED_REASON = "logged out: this account was banned"


class Banned(NamedTuple):
    phone_number: str
    account_id: str | None  # None: the number has no account (yet); it can never register one
    reason: ReasonCode
    devices_logged_out: int


class Unbanned(NamedTuple):
    phone_number: str
    account_id: str | None
    verdict_lifted: bool


async def ban(engine: AsyncEngine, raw_phone: str, reason: ReasonCode) -> Banned:
    phone = normalise(raw_phone)
    async with engine.begin() as conn:
        return await ban_in(conn, phone, reason, now_ms())


async def ban_in(conn: AsyncConnection, phone: str, reason: ReasonCode, now: int) -> Banned:
    """:func:`ban` inside the caller's transaction (cove.safety.actions bans as the top step of its ladder)."""
    account = await account_storage.account_by_phone(conn, phone)
    account_id = account.id if account else None
    await storage.add_banned_number(conn, phone, reason, account_id, now)
    logged_out = 0
    if account_id is not None:
        verdict = verdicts.ban(await storage.load_verdict(conn, account_id), account_id, reason, now)
        await storage.save_verdict(conn, verdict, now)
        result = await conn.execute(
            update(devices)
            .where(devices.c.account_id == account_id, devices.c.token_hash.is_not(None))
            .values(token_hash=None)
        )
        logged_out = result.rowcount or 0
        await fleet_storage.append(conn, stored(DevicesLoggedOut(account_id, (), BANNED_REASON, now), now))
    return Banned(phone, account_id, reason, logged_out)


async def unban(engine: AsyncEngine, raw_phone: str) -> Unbanned | None:
    """Lift the ban on a number: it may register again (its old devices stay logged out). ``None``: not banned."""
    phone = normalise(raw_phone)
    async with engine.begin() as conn:
        return await unban_in(conn, phone, now_ms())


async def unban_in(conn: AsyncConnection, phone: str, now: int) -> Unbanned | None:
    """:func:`unban` inside the caller's transaction."""
    removed = await storage.remove_banned_number(conn, phone)
    account = await account_storage.account_by_phone(conn, phone)
    account_id = account.id if account else removed.account_id if removed else None
    lifted = None
    if account_id is not None:
        lifted = verdicts.lift(await storage.load_verdict(conn, account_id), now)
        if lifted is not None:
            await storage.save_verdict(conn, lifted, now)
        # A ban taken as the actions' top step (cove.safety.actions) ends with it, in every process.
        if await actions_storage.lift_step(conn, account_id, Step.BAN, now, "unban"):
            await fleet_storage.append(conn, stored(SafetyActionChanged(account_id), now))
    if removed is None and lifted is None:
        return None
    return Unbanned(phone, account_id, lifted is not None)


async def banned_numbers(engine: AsyncEngine) -> list[BannedNumber]:
    async with engine.connect() as conn:
        return await storage.all_banned_numbers(conn)
