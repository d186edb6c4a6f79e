"""HTTP routes of the key directory."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query

from cove.accounts.auth import current_device
from cove.accounts.storage import DeviceRecord
from cove.context import Relay, get_relay
from cove.errors import error_responses
from cove.keys import service
from cove.keys.models import AccountIdentity, KeyBundles, KeyCount, KeyUpload

router = APIRouter(tags=["keys"])


@router.put(
    "/v1/keys",
    response_model=KeyCount,
    responses=error_responses(400, 401, 409),
    summary="Upload signed one-time keys and/or replace the signed fallback key",
    description="Every key must be signed by this device's Ed25519 identity key over "
    "'cove:v1:one_time_key:<key>' or 'cove:v1:fallback_key:<key>'. A device holds at most 50 one-time keys.",
)
async def upload(
    body: KeyUpload, device: DeviceRecord = Depends(current_device), relay: Relay = Depends(get_relay)
) -> KeyCount:
    return await service.upload(relay, device, body)


@router.get(
    "/v1/keys/count",
    response_model=KeyCount,
    responses=error_responses(401),
    summary="How many one-time keys the server still holds for this device (refill below half)",
)
async def count(device: DeviceRecord = Depends(current_device), relay: Relay = Depends(get_relay)) -> KeyCount:
    return await service.count(relay, device)


@router.get(
    "/v1/keys/{account_id}",
    response_model=KeyBundles,
    responses=error_responses(401, 404, 429),
    summary="Fetch one key bundle per device of an account, consuming one one-time key per device",
    description="Falls back to the device's signed fallback key when its one-time keys have run out. "
    "The caller's own device is left out, so fetching your own account yields your other devices.",
)
async def fetch(
    account_id: str,
    device_id: list[int] | None = Query(None, description="Only these devices (repeat the parameter)"),
    device: DeviceRecord = Depends(current_device),
    relay: Relay = Depends(get_relay),
) -> KeyBundles:
    return await service.bundles(relay, device, account_id, device_id)


@router.get(
    "/v1/keys/{account_id}/identity",
    response_model=AccountIdentity,
    responses=error_responses(401, 404),
    summary="An account's device identity keys, without taking any one-time key",
    description="What a recipient needs to open a session from a pre-key message, and what a contact "
    "compares to notice that the number was registered on a new phone.",
)
async def fetch_identity(
    account_id: str, _: DeviceRecord = Depends(current_device), relay: Relay = Depends(get_relay)
) -> AccountIdentity:
    return await service.identity(relay, account_id)
