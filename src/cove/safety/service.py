"""Bans: the operator bans or unbans a phone number (``cove safety ban|unban``), and the relay enforces it.

A ban writes the account's verdict, adds the number to ``banned_numbers`` (registration and code requests for
it are refused with 403 ``account_banned``) and logs out every device of the account (its tokens are cleared)
in one transaction. The command runs in another process than the relay, so the relay learns of it from the
database:

- HTTP: a relay caches who a token belongs to for ``cove.accounts.directory.TTL_SECONDS`` (5 s), so a revoked
  token is refused within 5 seconds.
- WebSocket: an open socket was authenticated when it connected; :func:`enforce_bans_forever` reads the bans
  that started since its last look every ``COVE_BAN_SWEEP_SECONDS`` (5 s) and handles ``DevicesLoggedOut``
  for each (cove.events), on which messaging closes those accounts' sockets (close code 4401).
"""

from __future__ import annotations

import asyncio
import logging
from typing import NamedTuple

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from cove.accounts import storage as account_storage
from cove.accounts.storage import devices
from cove.clock import now_ms
from cove.events import DevicesLoggedOut, Hooks
from cove.protocol.phone import normalise
from cove.safety import storage, verdicts
from cove.safety.storage import BannedNumber
from cove.safety.verdicts import ReasonCode

log = logging.getLogger("cove.safety")

# How far back each sweep looks beyond its previous one: covers a ban whose commit landed after its
# banned_at instant was taken, and a small clock difference between the command's host and the relay's.
SWEEP_OVERLAP_MS = 60_000
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
    now = now_ms()
    async with engine.begin() as conn:
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
    return Banned(phone, account_id, reason, logged_out)


async def unban(engine: AsyncEngine, raw_phone: str) -> Unbanned | None:
    """Lift the ban on a number: it may register again (its old devices stay logged out). ``None``: not banned."""
    phone = normalise(raw_phone)
    now = now_ms()
    async with engine.begin() as conn:
        removed = await storage.remove_banned_number(conn, phone)
        account = await account_storage.account_by_phone(conn, phone)
        account_id = account.id if account else removed.account_id if removed else None
        lifted = None
        if account_id is not None:
            lifted = verdicts.lift(await storage.load_verdict(conn, account_id), now)
            if lifted is not None:
                await storage.save_verdict(conn, lifted, now)
    if removed is None and lifted is None:
        return None
    return Unbanned(phone, account_id, lifted is not None)


async def banned_numbers(engine: AsyncEngine) -> list[BannedNumber]:
    async with engine.connect() as conn:
        return await storage.all_banned_numbers(conn)


async def enforce_bans_forever(engine: AsyncEngine, hooks: Hooks, every_seconds: float = 5.0) -> None:
    """Log out the accounts banned by another process: handles ``DevicesLoggedOut`` for each in this process, on
    which messaging closes their open sockets and accounts drops them from the token cache."""
    since = now_ms() - SWEEP_OVERLAP_MS
    handled: set[tuple[str, int]] = set()
    while True:
        await asyncio.sleep(every_seconds)
        try:
            started = now_ms()
            async with engine.connect() as conn:
                found = await storage.banned_since(conn, since)
            for account_id, banned_at in found:
                if (account_id, banned_at) in handled:
                    continue
                handled.add((account_id, banned_at))
                # Every process sweeps, so each handles the event itself: emitting would send the fleet one copy
                # per process.
                await hooks.handle(DevicesLoggedOut(account_id, (), BANNED_REASON))
            since = started - SWEEP_OVERLAP_MS
            handled = {h for h in handled if h[1] >= since}
        except Exception:
            log.exception("enforcing bans failed")
