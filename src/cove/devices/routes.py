"""HTTP routes of linked devices: provisioning channels, linking, the signed device list, unlinking."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import APIRouter, Depends, Header, Path, Request, Response

from cove.accounts import service as account_service
from cove.accounts.auth import current_device
from cove.accounts.code_limits import source_key
from cove.accounts.models import Registered
from cove.accounts.storage import DeviceRecord
from cove.context import Relay, get_relay
from cove.devices import rules, service
from cove.devices.models import (
    AccountDevices,
    ChannelOpened,
    LinkedDevice,
    LinkRequest,
    LinkToken,
    Sealed,
    SignedDeviceList,
)
from cove.errors import ApiError, error_responses
from cove.protocol.device_list import PRIMARY_DEVICE_ID
from cove.protocol.provisioning import ADDRESS_PATTERN

router = APIRouter(tags=["devices"])

Address = Path(pattern=ADDRESS_PATTERN, description="The channel's address: 32 lowercase hex digits")
ProvisioningAuth = Header(None, description="`Provisioning <secret>`, the secret POST /v1/provisioning returned")
_SEALED_OR_NOTHING = {200: {"model": Sealed}, 204: {"description": "Nothing yet: ask again"}}


@contextmanager
def _as_http() -> Iterator[None]:
    try:
        yield
    except rules.DeviceRuleError as exc:
        raise ApiError(exc.status, exc.code, str(exc), **exc.details) from None


def _provisioning_secret(header: str | None) -> str | None:
    if header and header.lower().startswith("provisioning "):
        return header[13:].strip() or None
    return None


def _sealed_or_204(body: str | None) -> Sealed | Response:
    return Sealed(body=body) if body is not None else Response(status_code=204)


@router.post(
    "/v1/provisioning",
    status_code=201,
    response_model=ChannelOpened,
    responses=error_responses(429),
    summary="Open a provisioning channel for linking this (not yet registered) device",
    description="No authentication: rate limited per source address (`COVE_PROVISIONING_PER_SOURCE` per 10 "
    "minutes, 429 `rate_limited`). The device shows `cove-link:1:<address>:<its ephemeral X25519 key>` and waits "
    "for the primary's sealed message. The channel expires after 10 minutes.",
)
async def open_channel(request: Request, relay: Relay = Depends(get_relay)) -> ChannelOpened:
    address, secret, expires = await service.open_channel(
        relay, source_key(request.client.host if request.client else None)
    )
    return ChannelOpened(address=address, secret=secret, expires_at=expires)


@router.get(
    "/v1/provisioning/{address}",
    response_model=Sealed,
    responses={**_SEALED_OR_NOTHING, **error_responses(400, 401, 404)},
    summary="Wait (up to 20 s) for the primary's sealed provisioning message",
    description="Header `Authorization: Provisioning <secret>`. 204 when nothing came yet.",
)
async def wait_message(
    address: str = Address, authorization: str | None = ProvisioningAuth, relay: Relay = Depends(get_relay)
) -> Sealed | Response:
    return _sealed_or_204(await service.wait_message(relay, address, _provisioning_secret(authorization)))


@router.put(
    "/v1/provisioning/{address}",
    status_code=204,
    responses=error_responses(400, 401, 403, 404, 409),
    summary="Put the sealed provisioning message for a device being linked (primary only)",
    description="Sealed to the ephemeral key of the link code: the account, a link token, the primary's identity "
    "keys and a reply key. Once per channel (409 `channel_used`); 403 `not_primary` from a companion.",
)
async def put_message(
    body: Sealed,
    address: str = Address,
    device: DeviceRecord = Depends(current_device),
    relay: Relay = Depends(get_relay),
) -> Response:
    await service.put_message(relay, device, address, body.body)
    return Response(status_code=204)


@router.put(
    "/v1/provisioning/{address}/reply",
    status_code=204,
    responses=error_responses(400, 401, 404, 409),
    summary="Put the new device's sealed reply to the primary",
    description="Header `Authorization: Provisioning <secret>`. Once, after the primary's message (409 "
    "`channel_used` otherwise).",
)
async def put_reply(
    body: Sealed,
    address: str = Address,
    authorization: str | None = ProvisioningAuth,
    relay: Relay = Depends(get_relay),
) -> Response:
    await service.put_reply(relay, address, _provisioning_secret(authorization), body.body)
    return Response(status_code=204)


@router.get(
    "/v1/provisioning/{address}/reply",
    response_model=Sealed,
    responses={**_SEALED_OR_NOTHING, **error_responses(400, 401, 403, 404)},
    summary="Wait (up to 20 s) for the new device's sealed reply (the primary that wrote the message)",
)
async def wait_reply(
    address: str = Address, device: DeviceRecord = Depends(current_device), relay: Relay = Depends(get_relay)
) -> Sealed | Response:
    return _sealed_or_204(await service.wait_reply(relay, device, address))


@router.post(
    "/v1/devices/link-token",
    status_code=201,
    response_model=LinkToken,
    responses=error_responses(401, 403, 409),
    summary="A one-time token that links one more device to this account (primary only)",
    description="Stored hashed; valid 10 minutes, once. 409 `too_many_devices` when the account has "
    "`COVE_MAX_COMPANION_DEVICES` linked devices; 403 `not_primary` from a companion.",
)
async def link_token(device: DeviceRecord = Depends(current_device), relay: Relay = Depends(get_relay)) -> LinkToken:
    with _as_http():
        token, expires = await service.link_token(relay, device)
    return LinkToken(link_token=token, expires_at=expires)


@router.post(
    "/v1/devices/link",
    status_code=201,
    response_model=Registered,
    responses=error_responses(400, 403, 409),
    summary="Register this device as a companion of the account whose link token it holds",
    description="The device gets its own id (2 and up) and token, and uploads its own keys next. Contacts "
    "encrypt to it once the primary names it in a newly signed device list. 403 `invalid_link_token` (unknown, "
    "used or expired), 409 `too_many_devices`, 400 `bad_signature` for an identity key not signed by itself.",
)
async def link(body: LinkRequest, relay: Relay = Depends(get_relay)) -> Registered:
    with _as_http():
        account_id, device_id, token, generation = await service.link(
            relay, body.link_token, body.registration_id, body.identity_key, body.device
        )
    return Registered(
        account_id=account_id, device_id=device_id, token=token, identity_generation=generation, reregistered=False
    )


@router.put(
    "/v1/devices/list",
    status_code=204,
    responses=error_responses(400, 401, 403, 409),
    summary="Publish the account's signed device list (primary only)",
    description="Signed by the primary's registered Ed25519 key, for this account, device 1 first, naming only "
    "registered devices with their keys (400 `invalid_device_list`, `unknown_device`), at a higher version than "
    "the stored list (409 `stale_version` with the stored `version`). Only the devices it names receive messages.",
)
async def publish_list(
    body: SignedDeviceList, device: DeviceRecord = Depends(current_device), relay: Relay = Depends(get_relay)
) -> Response:
    with _as_http():
        await service.publish_list(relay, device, body.list, body.signature)
    return Response(status_code=204)


@router.get(
    "/v1/devices",
    response_model=AccountDevices,
    responses=error_responses(401),
    summary="This account's registered devices and its signed device list",
)
async def list_devices(
    device: DeviceRecord = Depends(current_device), relay: Relay = Depends(get_relay)
) -> AccountDevices:
    rows, stored = await service.describe(relay, device)
    return AccountDevices(
        device_id=device.device_id,
        devices=[
            LinkedDevice(
                device_id=r.device_id,
                registration_id=r.registration_id,
                identity_curve25519=r.identity_curve25519,
                identity_ed25519=r.identity_ed25519,
                model=r.device_model,
                os_name=r.os_name,
                app_version=r.app_version,
                linked_at=r.created_at_ms,
                last_seen_at=r.last_seen_at_ms,
                listed=bool(r.listed),
            )
            for r in rows
        ],
        device_list=SignedDeviceList(list=stored.text, signature=stored.signature) if stored else None,
    )


@router.delete(
    "/v1/devices/current",
    status_code=204,
    responses=error_responses(401),
    summary="Log this device out; a linked device is unlinked",
    description="The primary's token stops working at once. A linked device is removed: its keys and queued "
    "messages go, its sockets close, and the primary drops it from the signed list when it next talks to the relay.",
)
async def log_out(device: DeviceRecord = Depends(current_device), relay: Relay = Depends(get_relay)) -> Response:
    if device.device_id == PRIMARY_DEVICE_ID:
        await account_service.log_out(relay, device.account_id, device.device_id)
    else:
        await service.unlink(relay, device, device.device_id)
    return Response(status_code=204)


@router.delete(
    "/v1/devices/{device_id:int}",
    status_code=204,
    responses=error_responses(400, 401, 403, 404),
    summary="Unlink a companion device (primary only)",
    description="Its token, keys and queued messages go and its sockets close (4401). Publish a device list without "
    "it next. 400 `primary_device` for device 1, 404 `unknown_device`.",
)
async def unlink(
    device_id: int = Path(ge=1, le=2**31 - 1),
    device: DeviceRecord = Depends(current_device),
    relay: Relay = Depends(get_relay),
) -> Response:
    await service.unlink(relay, device, device_id)
    return Response(status_code=204)
