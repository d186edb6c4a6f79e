"""Devices use cases: provisioning channels, link tokens, linking a companion, the signed list, unlinking."""

from __future__ import annotations

import asyncio
import hmac
import secrets

from sqlalchemy.exc import IntegrityError

from cove.accounts import service as account_service
from cove.accounts import storage as account_storage
from cove.accounts.models import DeviceInfo, IdentityKeys
from cove.accounts.storage import DeviceRecord
from cove.accounts.tokens import new_token, token_digest
from cove.clock import now_ms
from cove.context import Relay
from cove.devices import rules, storage
from cove.devices.storage import Channel, StoredList
from cove.errors import ApiError
from cove.events import AccountChanged, DeviceRemoved, DevicesLoggedOut
from cove.limits.table import Limiter
from cove.protocol import signing
from cove.protocol.device_list import PRIMARY_DEVICE_ID, DeviceList

CHANNEL_TTL_MS = 10 * 60_000
LINK_TOKEN_TTL_MS = 10 * 60_000
LONG_POLL_SECONDS = 20.0
# A long poll re-reads the channel this often: the other device may write it through any relay process.
POLL_EVERY_SECONDS = 0.25
UNLINKED = "logged out: this device was unlinked"
_MAX_RACES = 10


def _primary_only(device: DeviceRecord) -> None:
    if device.device_id != PRIMARY_DEVICE_ID:
        raise ApiError(403, "not_primary", "only the account's primary device (device 1) may do this")


# provisioning channels --------------------------------------------------------------------------------------
async def open_channel(relay: Relay, source: str) -> tuple[str, str, int]:
    await relay.limits.check(Limiter.PROVISIONING, source)
    address, secret, now = secrets.token_hex(16), new_token(), now_ms()
    async with relay.engine.begin() as conn:
        await storage.purge_channels(conn, now)
        await storage.open_channel(conn, address, token_digest(secret), now + CHANNEL_TTL_MS)
    return address, secret, now + CHANNEL_TTL_MS


async def _channel(relay: Relay, address: str) -> Channel:
    async with relay.engine.connect() as conn:
        channel = await storage.load_channel(conn, address, now_ms())
    if channel is None:
        raise ApiError(404, "unknown_channel", "no provisioning channel has this address, or it expired")
    return channel


def _check_secret(channel: Channel, secret: str | None) -> None:
    if not secret or not hmac.compare_digest(token_digest(secret), channel.secret_hash):
        raise ApiError(401, "unauthenticated", "send 'Authorization: Provisioning <secret>' of this channel")


async def _long_poll(relay: Relay, address: str, field: str) -> str | None:
    deadline = asyncio.get_running_loop().time() + LONG_POLL_SECONDS
    while True:
        channel = await _channel(relay, address)
        value = getattr(channel, field)
        if value is not None or asyncio.get_running_loop().time() >= deadline:
            return value
        await asyncio.sleep(POLL_EVERY_SECONDS)


async def wait_message(relay: Relay, address: str, secret: str | None) -> str | None:
    """The primary's sealed message, waiting up to 20 s for it; ``None`` when it has not come yet."""
    _check_secret(await _channel(relay, address), secret)
    return await _long_poll(relay, address, "message")


async def put_message(relay: Relay, device: DeviceRecord, address: str, body: str) -> None:
    _primary_only(device)
    await _channel(relay, address)
    async with relay.engine.begin() as conn:
        if not await storage.write_message(conn, address, device.account_id, body, now_ms()):
            raise ApiError(409, "channel_used", "this provisioning channel already has a message")


async def put_reply(relay: Relay, address: str, secret: str | None, body: str) -> None:
    _check_secret(await _channel(relay, address), secret)
    async with relay.engine.begin() as conn:
        if not await storage.write_reply(conn, address, body, now_ms()):
            raise ApiError(409, "channel_used", "this channel has no message to answer, or already has a reply")


async def wait_reply(relay: Relay, device: DeviceRecord, address: str) -> str | None:
    """The companion's sealed reply, for the primary that wrote the message; ``None`` when it has not come yet."""
    _primary_only(device)
    if (await _channel(relay, address)).account_id != device.account_id:
        raise ApiError(403, "not_your_channel", "only the device that wrote this channel's message reads its reply")
    return await _long_poll(relay, address, "reply")


# linking ---------------------------------------------------------------------------------------------------
async def link_token(relay: Relay, device: DeviceRecord) -> tuple[str, int]:
    _primary_only(device)
    token, now = new_token(), now_ms()
    async with relay.engine.begin() as conn:
        rules.next_device_id(
            await storage.used_device_ids(conn, device.account_id), relay.settings.max_companion_devices
        )
        await storage.add_link_token(conn, device.account_id, token_digest(token), now + LINK_TOKEN_TTL_MS)
    return token, now + LINK_TOKEN_TTL_MS


async def link(
    relay: Relay, token: str, registration_id: int, identity: IdentityKeys, info: DeviceInfo
) -> tuple[str, int, str, int]:
    """Register a companion with a link token. Returns ``(account_id, device_id, token, identity_generation)``."""
    signing.check_public_key(identity.ed25519, "identity_key.ed25519")
    signing.verify(identity.ed25519, signing.IDENTITY, identity.curve25519, identity.signature, "identity_key")
    device_token, now = new_token(), now_ms()
    for _ in range(_MAX_RACES):
        try:
            async with relay.engine.begin() as conn:
                account_id = await storage.take_link_token(conn, token_digest(token), now)
                if account_id is None:
                    raise ApiError(403, "invalid_link_token", "the link token is unknown, used or expired")
                account = await account_storage.account_by_id(conn, account_id)
                device_id = rules.next_device_id(
                    await storage.used_device_ids(conn, account_id), relay.settings.max_companion_devices
                )
                await account_service.add_device(
                    conn, account_id, device_id, registration_id, identity, device_token, info, now
                )
        except IntegrityError:
            continue  # another companion took this device id meanwhile: the token was not used, try again
        await relay.hooks.emit(AccountChanged(account_id))
        return account_id, device_id, device_token, account.identity_generation
    raise ApiError(409, "busy", "too many devices are being linked at once; retry")


# the signed list -------------------------------------------------------------------------------------------
async def publish_list(relay: Relay, device: DeviceRecord, text: str, signature: str) -> int:
    _primary_only(device)
    for _ in range(_MAX_RACES):
        try:
            listed = await _replace_list(relay, device, text, signature)
        except IntegrityError:
            continue  # a first list stored meanwhile: judge against it
        if listed is not None:
            break
    else:
        raise ApiError(409, "busy", "the device list keeps changing; retry")
    # Every relay process drops its cached devices of the account: sends now address the new list.
    await relay.hooks.emit(AccountChanged(device.account_id))
    return listed.version


async def _replace_list(relay: Relay, device: DeviceRecord, text: str, signature: str) -> DeviceList | None:
    """The list stored, or ``None`` when another upload changed the stored list since it was read."""
    async with relay.engine.begin() as conn:
        registered = {
            d.device_id: (d.identity_curve25519, d.identity_ed25519)
            for d in await account_storage.devices_of(conn, device.account_id, current_only=False)
        }
        stored = await storage.load_list(conn, device.account_id)
        listed = rules.check_list(
            text,
            signature,
            device.account_id,
            registered,
            stored.version if stored else None,
            relay.settings.max_companion_devices,
        )
        new = StoredList(listed.version, text, signature)
        if await storage.replace_list(conn, device.account_id, stored, new, listed.device_ids(), now_ms()):
            return listed
    return None


async def describe(relay: Relay, device: DeviceRecord):  # noqa: ANN201
    async with relay.engine.connect() as conn:
        return await storage.account_devices(conn, device.account_id), await storage.load_list(conn, device.account_id)


async def unlink(relay: Relay, device: DeviceRecord, device_id: int) -> None:
    """Remove a companion (the primary removes any, a companion itself): its row, keys and queue; its sockets close."""
    if device_id == PRIMARY_DEVICE_ID:
        raise ApiError(400, "primary_device", "the primary cannot be unlinked: register the number again instead")
    if device_id != device.device_id:
        _primary_only(device)
    now = now_ms()
    async with relay.engine.begin() as conn:
        await relay.hooks.in_transaction(conn, DeviceRemoved(device.account_id, device_id))
        if not await storage.remove_device(conn, device.account_id, device_id):
            raise ApiError(404, "unknown_device", f"this account has no device {device_id}")
    await relay.hooks.emit(DevicesLoggedOut(device.account_id, (device_id,), UNLINKED, now))
