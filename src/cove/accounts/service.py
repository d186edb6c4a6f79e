"""Account use cases: request a code, register (or re-register) a device, update it, log out, discover."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from cove.accounts import codes, cohort, reglock, reglock_service, reglock_storage, storage, usage_storage
from cove.accounts.models import ChallengeAnswer, DeviceInfo, IdentityKeys
from cove.accounts.storage import accounts, devices
from cove.accounts.tokens import new_token, token_digest
from cove.activity import DeviceSignals, RegistrationAttempt
from cove.clock import now_ms, to_datetime, to_ms
from cove.context import Relay
from cove.errors import ApiError
from cove.events import AccountChanged, DevicesLoggedOut, IdentityChanged, NumberClaimed
from cove.limits.table import Limiter
from cove.protocol import signing, usage
from cove.protocol.phone import normalise, try_normalise

PRIMARY_DEVICE_ID = 1
# The close reasons a logged-out device's socket gets (close code 4401).
REREGISTERED = "logged out: the number was registered on another phone"
LOGGED_OUT = "logged out: this device logged out"
# Each lost compare-and-set means another request for the same number changed its code record; the
# rules stop those after a handful (max sends, max attempts), so this bound is only a safety net.
_MAX_RACES = 100


def _busy() -> ApiError:
    err = ApiError(429, "rate_limited", "too many simultaneous requests for this number; retry", retry_after=1)
    err.headers["Retry-After"] = "1"
    return err


def _code_policy(relay: Relay) -> codes.CodePolicy:
    s = relay.settings
    return codes.CodePolicy(ttl=timedelta(seconds=s.code_ttl_seconds), max_attempts=s.code_max_attempts)


async def _refuse_banned(relay: Relay, conn: AsyncConnection, phone: str, purpose: str = codes.REGISTER) -> None:
    # Safety refuses a banned number, unless it asks for a code to appeal with (cove.safety.hooks).
    await relay.hooks.in_transaction(conn, NumberClaimed(phone, purpose))


def _signals(info: DeviceInfo | None) -> DeviceSignals | None:
    if info is None:
        return None
    return DeviceSignals(info.model, info.os_name, info.os_version, info.app_version, info.vendor_device_id)


async def request_code(
    relay: Relay,
    raw_phone: str,
    source: str,
    info: DeviceInfo | None = None,
    answer: ChallengeAnswer | None = None,
    purpose: str = codes.REGISTER,
) -> tuple[codes.PendingCode, int]:
    """Send a fresh code to the number. Returns it and how many more ``source`` may ask for in this window.

    The registration gate (``Relay.registration_checks``) judges the request first, so that a request it
    challenges spends none of the number's or the source's codes."""
    phone = normalise(raw_phone)
    await relay.check_registration(
        RegistrationAttempt(
            phone,
            source,
            _signals(info),
            now_ms(),
            answer.seed if answer else None,
            answer.nonce if answer else None,
        )
    )
    sends_left = await relay.code_limits.spend(phone, source)
    policy = _code_policy(relay)
    code = codes.new_code()
    code_hash = codes.hash_code(relay.code_secret, phone, code, purpose)
    for _ in range(_MAX_RACES):
        async with relay.engine.begin() as conn:
            await _refuse_banned(relay, conn, phone, purpose)
            previous = await storage.load_code(conn, phone)
            pending = codes.issue(phone, code_hash, to_datetime(now_ms()), policy)
            if await storage.replace_code(conn, previous, pending):
                break
    else:
        raise _busy()
    # Sent after the commit: a code the database does not know must never reach a phone.
    await relay.code_sender.send(phone, code)
    return pending, sends_left


async def _verify(relay: Relay, phone: str, code: str, pin: str | None, now: int) -> bool:
    """Check the code and, while the number is locked, the PIN; the code is used up only when both pass.

    Returns whether a lock held (and the PIN opened it). The lock is looked at only once the code is right,
    so nobody without the code learns that a number has one. A wrong code or PIN is counted before it is
    refused; the PIN's slow hash runs outside any transaction, and a lock changed meanwhile is judged again.
    """
    policy = _code_policy(relay)
    lock_policy = reglock_service.policy(relay.settings)
    submitted = codes.hash_code(relay.code_secret, phone, code.strip())
    hashed: tuple[reglock.PinHash, bool] | None = None  # a PIN hash and whether ``pin`` matched it
    for _ in range(_MAX_RACES):
        refusal: Exception | None = None
        locked = False
        try:
            async with relay.engine.begin() as conn:
                await _refuse_banned(relay, conn, phone)
                pending = await storage.load_code(conn, phone)
                try:
                    codes.check(pending, submitted, to_datetime(now), policy)
                except codes.WrongCode as wrong:
                    refusal, judged_code = wrong, wrong.counted
                else:
                    judged_code = None
                    gate = await reglock_service.gate(conn, phone)
                    if gate is not None and reglock.guard(
                        gate.lock, gate.last_active_ms, pin is not None, now, lock_policy
                    ):
                        if hashed is None or hashed[0] != gate.lock.pin:
                            raise _NeedsHash(gate.lock.pin)
                        locked = True
                        try:
                            judged_lock = reglock.judge(gate.lock, hashed[1], gate.last_active_ms, now, lock_policy)
                        except reglock.WrongPin as wrong_pin:
                            refusal, judged_lock, judged_code = wrong_pin, wrong_pin.counted, pending
                        if not await reglock_storage.replace_if_same(conn, gate.account_id, gate.lock, judged_lock):
                            raise _LostRace
                # A wrong guess is counted, a right one uses the code up; either only if no concurrent request
                # got there first, so that every guess counts and a code registers at most one device.
                if judged_code is not pending and not await storage.replace_code(conn, pending, judged_code):
                    raise _LostRace
        except _LostRace:
            continue
        except _NeedsHash as need:
            assert pin is not None
            hashed = (need.pin_hash, await reglock_service.matches(need.pin_hash, pin))
            continue
        if refusal is not None:
            raise refusal
        return locked
    raise _busy()


async def use_code(relay: Relay, raw_phone: str, code: str, purpose: str) -> str:
    """Check a code sent for ``purpose`` (not registration: :func:`register` checks its own) and use it up; a wrong
    one is counted as at registration. Returns the number in E.164 form."""
    phone = normalise(raw_phone)
    submitted = codes.hash_code(relay.code_secret, phone, code.strip(), purpose)
    for _ in range(_MAX_RACES):
        async with relay.engine.begin() as conn:
            pending = await storage.load_code(conn, phone)
            try:
                codes.check(pending, submitted, to_datetime(now_ms()), _code_policy(relay))
            except codes.WrongCode as wrong:
                if await storage.replace_code(conn, pending, wrong.counted):
                    refusal: ApiError = wrong
                    break
                continue
            if await storage.replace_code(conn, pending, None):
                return phone
    else:
        raise _busy()
    raise refusal


class _NeedsHash(Exception):
    def __init__(self, pin_hash: reglock.PinHash) -> None:
        self.pin_hash = pin_hash


async def register(
    relay: Relay,
    raw_phone: str,
    code: str,
    registration_id: int,
    identity: IdentityKeys,
    info: DeviceInfo,
    pin: str | None = None,
    source: str = "unknown",
) -> tuple[str, int, str, int, bool]:
    """Verify the code (and the PIN if the number is locked) and create the account's primary device.
    Returns ``(account_id, device_id, token, identity_generation, reregistered)``. ``source``: the caller's
    address (code_limits.source_key), for ``Relay.registered_hooks``."""
    phone = normalise(raw_phone)
    signing.check_public_key(identity.ed25519, "identity_key.ed25519")
    signing.verify(identity.ed25519, signing.IDENTITY, identity.curve25519, identity.signature, "identity_key")
    now = now_ms()
    unlocked = await _verify(relay, phone, code, pin, now)

    token = new_token()
    async with relay.engine.begin() as conn:
        await _refuse_banned(relay, conn, phone)  # banned since the code was checked
        existing = await storage.account_by_phone(conn, phone)
        if existing is None:
            account_id, generation, old_devices = str(uuid.uuid4()), 1, []
            await conn.execute(
                insert(accounts).values(
                    id=account_id,
                    phone_number=phone,
                    created_at_ms=now,
                    identity_generation=1,
                    rollout_bucket=cohort.bucket(account_id),
                    calling_code=cohort.calling_code(phone),
                )
            )
        else:
            # A new phone is a new identity: log out every old device, drop its keys and undelivered
            # envelopes (they were encrypted to keys that no longer exist) and tell contacts via the
            # generation counter in the key directory.
            account_id, generation = existing.id, existing.identity_generation + 1
            old_devices = [d.device_id for d in await storage.devices_of(conn, account_id, current_only=False)]
            await conn.execute(delete(devices).where(devices.c.account_id == account_id))
            await relay.hooks.in_transaction(conn, IdentityChanged(account_id))
            await conn.execute(
                update(accounts)
                .where(accounts.c.id == account_id)
                .values(identity_generation=generation, identity_changed_at_ms=now)
            )
            if not unlocked:  # the lock had lapsed: it was the old owner's, not this phone's
                await reglock_storage.remove(conn, account_id)
        await add_device(conn, account_id, PRIMARY_DEVICE_ID, registration_id, identity, token, info, now)
    # An empty device list would mean all of them: a new account has none to log out.
    if old_devices:
        await relay.hooks.emit(DevicesLoggedOut(account_id, tuple(old_devices), REREGISTERED, now))
    else:
        await relay.hooks.emit(AccountChanged(account_id))
    await relay.registered(RegistrationAttempt(phone, source, _signals(info), now), account_id)
    return account_id, PRIMARY_DEVICE_ID, token, generation, existing is not None


async def add_device(
    conn: AsyncConnection,
    account_id: str,
    device_id: int,
    registration_id: int,
    identity: IdentityKeys,
    token: str,
    info: DeviceInfo,
    now: int,
) -> None:
    """A device's row: its keys, its token's digest, what it reported about itself (a primary or a companion)."""
    await conn.execute(
        insert(devices).values(
            account_id=account_id,
            device_id=device_id,
            registration_id=registration_id,
            identity_curve25519=identity.curve25519,
            identity_ed25519=identity.ed25519,
            token_hash=token_digest(token),
            created_at_ms=now,
            updated_at_ms=now,
            last_seen_at_ms=now,
            **_device_columns(info),
        )
    )


def _device_columns(info: DeviceInfo) -> dict[str, str | None]:
    return {
        "device_model": info.model,
        "os_name": info.os_name,
        "os_version": info.os_version,
        "app_version": info.app_version,
        "vendor_device_id": info.vendor_device_id,
    }


async def update_device(relay: Relay, account_id: str, device_id: int, info: DeviceInfo) -> None:
    now = now_ms()
    async with relay.engine.begin() as conn:
        await conn.execute(
            update(devices)
            .where(devices.c.account_id == account_id, devices.c.device_id == device_id)
            .values(updated_at_ms=now, last_seen_at_ms=now, **_device_columns(info))
        )


async def record_usage(relay: Relay, account_id: str, report: list[tuple[str, usage.DayCounts]]) -> None:
    """Store a usage report: each day's counters grow to the reported totals, never shrink."""
    now = now_ms()
    days = usage.validate(report, now)
    for _ in range(_MAX_RACES):
        try:
            async with relay.engine.begin() as conn:
                stored = await usage_storage.load_days(conn, account_id, sorted(days))
                for day, counts in sorted(days.items()):
                    merged = usage.merge(stored.get(day), counts)
                    if merged is not None and not await usage_storage.write_day(
                        conn, account_id, day, stored.get(day), merged, now
                    ):
                        raise _LostRace
            return
        except (_LostRace, IntegrityError):
            continue  # another report for this account changed a day meanwhile: judge again
    raise _busy()


class _LostRace(Exception):
    pass


async def log_out(relay: Relay, account_id: str, device_id: int) -> None:
    now = now_ms()
    async with relay.engine.begin() as conn:
        await conn.execute(
            update(devices)
            .where(devices.c.account_id == account_id, devices.c.device_id == device_id)
            .values(token_hash=None)
        )
    await relay.hooks.emit(DevicesLoggedOut(account_id, (device_id,), LOGGED_OUT, now))


async def describe(relay: Relay, account_id: str):  # noqa: ANN201
    async with relay.engine.connect() as conn:
        account = await storage.account_by_id(conn, account_id)
        rows = (
            await conn.execute(select(devices).where(devices.c.account_id == account_id).order_by(devices.c.device_id))
        ).all()
    return account, rows


async def lookup(relay: Relay, caller_account_id: str, raw_numbers: list[str]) -> list[tuple[str, str]]:
    """Which of these numbers are registered. The numbers are only compared, never stored or logged."""
    limit = relay.settings.discovery_max_numbers
    if len(raw_numbers) > limit:
        raise ApiError(400, "too_many_numbers", f"look up at most {limit} numbers per request")
    await relay.limits.check(Limiter.CONTACT_DISCOVERY, caller_account_id, cost=max(1, len(raw_numbers)))
    numbers = {n for n in (try_normalise(raw) for raw in raw_numbers) if n}
    if not numbers:
        return []
    async with relay.engine.connect() as conn:
        rows = await conn.execute(
            select(accounts.c.phone_number, accounts.c.id).where(accounts.c.phone_number.in_(sorted(numbers)))
        )
        return sorted((row.phone_number, row.id) for row in rows)


def code_expiry_ms(pending: codes.PendingCode) -> int:
    return to_ms(pending.expires_at)
