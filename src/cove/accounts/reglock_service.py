"""Registration-lock use cases: a device sets or removes its account's PIN; a registration reads the lock."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection

from cove.accounts import reglock, reglock_storage, storage
from cove.accounts.reglock import Lock, PinHash, RegLockPolicy
from cove.clock import now_ms
from cove.config import Settings
from cove.context import Relay
from cove.limits.table import Limiter

# Each hash takes 128 MiB for a few hundred ms: at most two at once bounds the memory, whatever arrives.
_HASHING = asyncio.Semaphore(2)
_T = TypeVar("_T")


def policy(settings: Settings) -> RegLockPolicy:
    return RegLockPolicy(
        inactivity_ms=int(settings.registration_lock_days * 86_400_000),
        max_guesses=settings.registration_lock_max_guesses,
    )


async def _off_loop(fn: Callable[..., _T], *args: object) -> _T:
    async with _HASHING:
        return await asyncio.to_thread(fn, *args)


async def matches(pin_hash: PinHash, pin: str) -> bool:
    return await _off_loop(reglock.pin_matches, pin_hash, pin)


async def set_pin(relay: Relay, account_id: str, pin: str) -> None:
    """Lock the account's number with ``pin`` (replacing an earlier PIN); the guess count starts afresh."""
    reglock.check_new_pin(pin)
    await relay.limits.check(Limiter.PIN_CHANGE, account_id)
    hashed = await _off_loop(reglock.hash_pin, pin)
    async with relay.engine.begin() as conn:
        await reglock_storage.put(conn, account_id, Lock(hashed, now_ms()))


async def remove_pin(relay: Relay, account_id: str) -> None:
    async with relay.engine.begin() as conn:
        await reglock_storage.remove(conn, account_id)


async def lock_of(relay: Relay, account_id: str) -> Lock | None:
    async with relay.engine.connect() as conn:
        return await reglock_storage.load(conn, account_id)


@dataclass(frozen=True)
class Gate:
    """What a registration of a number must get past: its account's lock and when a device was last active."""

    account_id: str
    lock: Lock
    last_active_ms: int


async def gate(conn: AsyncConnection, phone_number: str) -> Gate | None:
    account = await storage.account_by_phone(conn, phone_number)
    if account is None:
        return None
    lock = await reglock_storage.load(conn, account.id)
    if lock is None:
        return None
    return Gate(account.id, lock, await reglock_storage.last_active_ms(conn, account.id))
