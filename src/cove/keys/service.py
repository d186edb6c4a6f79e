"""Key directory use cases: upload signed keys, count them, hand out one bundle per device."""

from __future__ import annotations

from cove.accounts import storage as account_storage
from cove.accounts.storage import DeviceRecord
from cove.context import Relay
from cove.devices import storage as device_storage
from cove.errors import ApiError
from cove.keys import storage
from cove.keys.models import (
    AccountIdentity,
    DeviceBundle,
    DeviceIdentity,
    KeyBundles,
    KeyCount,
    KeyUpload,
    ServedDeviceList,
    SignedKeyBody,
)
from cove.keys.storage import SignedKey
from cove.limits.table import Limiter
from cove.protocol import signing


async def upload(relay: Relay, device: DeviceRecord, body: KeyUpload) -> KeyCount:
    for i, key in enumerate(body.one_time_keys):
        signing.verify(device.identity_ed25519, signing.ONE_TIME, key.public_key, key.signature, f"one_time_keys.{i}")
    if body.fallback_key:
        fb = body.fallback_key
        signing.verify(device.identity_ed25519, signing.FALLBACK, fb.public_key, fb.signature, "fallback_key")
    new_ids = [k.key_id for k in body.one_time_keys]
    if len(set(new_ids)) != len(new_ids):
        raise ApiError(400, "duplicate_key_id", "one_time_keys repeats a key_id")
    limit = relay.settings.max_one_time_keys
    async with relay.engine.begin() as conn:
        held = await storage.count_one_time_keys(conn, device.account_id, device.device_id)
        if await storage.existing_key_ids(conn, device.account_id, device.device_id, new_ids):
            raise ApiError(409, "duplicate_key_id", "a one-time key with this key_id is already uploaded")
        if held + len(new_ids) > limit:
            raise ApiError(
                400,
                "too_many_keys",
                f"a device may hold at most {limit} one-time keys; it holds {held}, so upload at most {limit - held}",
            )
        await storage.add_one_time_keys(
            conn,
            device.account_id,
            device.device_id,
            [SignedKey(**k.model_dump()) for k in body.one_time_keys],
        )
        if body.fallback_key:
            await storage.set_fallback_key(
                conn, device.account_id, device.device_id, SignedKey(**body.fallback_key.model_dump())
            )
        return await _count(conn, relay, device)


async def count(relay: Relay, device: DeviceRecord) -> KeyCount:
    async with relay.engine.connect() as conn:
        return await _count(conn, relay, device)


async def _count(conn, relay: Relay, device: DeviceRecord) -> KeyCount:  # noqa: ANN001
    return KeyCount(
        one_time_keys=await storage.count_one_time_keys(conn, device.account_id, device.device_id),
        max_one_time_keys=relay.settings.max_one_time_keys,
        has_fallback_key=await storage.has_fallback_key(conn, device.account_id, device.device_id),
    )


async def _account_or_404(conn, account_id: str):  # noqa: ANN001, ANN202
    account = await account_storage.account_by_id(conn, account_id)
    if account is None:
        raise ApiError(404, "unknown_account", "no account has this id")
    return account


async def _device_list(conn, account_id: str) -> ServedDeviceList | None:  # noqa: ANN001
    stored = await device_storage.load_list(conn, account_id)
    return ServedDeviceList(list=stored.text, signature=stored.signature) if stored else None


async def identity(relay: Relay, account_id: str) -> AccountIdentity:
    async with relay.engine.connect() as conn:
        account = await _account_or_404(conn, account_id)
        found = await account_storage.devices_of(conn, account_id)
        served = await _device_list(conn, account_id)
    return AccountIdentity(
        account_id=account_id,
        identity_generation=account.identity_generation,
        identity_changed_at=account.identity_changed_at_ms,
        devices=[
            DeviceIdentity(
                device_id=d.device_id,
                registration_id=d.registration_id,
                identity_curve25519=d.identity_curve25519,
                identity_ed25519=d.identity_ed25519,
            )
            for d in found
        ],
        device_list=served,
    )


async def bundles(
    relay: Relay, caller: DeviceRecord, account_id: str, only_devices: list[int] | None = None
) -> KeyBundles:
    await relay.limits.check(Limiter.KEY_FETCH, f"{caller.account_id}>{account_id}")
    async with relay.engine.begin() as conn:
        account = await _account_or_404(conn, account_id)
        result = []
        for device in await account_storage.devices_of(conn, account_id):
            if device.account_id == caller.account_id and device.device_id == caller.device_id:
                continue
            if only_devices and device.device_id not in only_devices:
                continue
            taken = await storage.take_key(conn, account_id, device.device_id)
            result.append(
                DeviceBundle(
                    device_id=device.device_id,
                    registration_id=device.registration_id,
                    identity_curve25519=device.identity_curve25519,
                    identity_ed25519=device.identity_ed25519,
                    one_time_key=SignedKeyBody(**taken[0].__dict__) if taken else None,
                    is_fallback=bool(taken and taken[1]),
                )
            )
        served = await _device_list(conn, account_id)
    return KeyBundles(
        account_id=account_id,
        identity_generation=account.identity_generation,
        identity_changed_at=account.identity_changed_at_ms,
        devices=result,
        device_list=served,
    )
