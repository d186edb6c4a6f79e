"""HTTP routes of the accounts capability."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response

from cove.accounts import deletion, service
from cove.accounts.auth import current_device
from cove.accounts.models import (
    AccountView,
    CodeRequest,
    CodeSent,
    DeviceInfo,
    DeviceView,
    LookupRequest,
    LookupResult,
    Registered,
    RegisteredContact,
    RegistrationRequest,
    UsageReport,
)
from cove.accounts.storage import DeviceRecord
from cove.accounts.usage import DayCounts
from cove.context import Relay, get_relay
from cove.errors import error_responses

router = APIRouter(tags=["accounts"])


@router.post(
    "/v1/verification/code",
    status_code=202,
    response_model=CodeSent,
    responses=error_responses(400, 403, 429, 502),
    summary="Send a 6-digit verification code to a phone number",
    description="403 `account_banned` (with its `reason` code) when the number is banned.",
)
async def request_code(body: CodeRequest, relay: Relay = Depends(get_relay)) -> CodeSent:
    pending = await service.request_code(relay, body.phone_number)
    return CodeSent(
        phone_number=pending.phone_number,
        expires_at=service.code_expiry_ms(pending),
        sends_left=service.sends_left(relay, pending),
    )


@router.post(
    "/v1/registration",
    status_code=201,
    response_model=Registered,
    responses=error_responses(400, 403, 429),
    summary="Verify the code and register this phone as the account's primary device",
    description="Registering a number that already has an account creates a new identity: every old device is "
    "logged out and the key directory's identity_generation goes up so contacts can warn their users. "
    "403 `account_banned` when the number is banned.",
)
async def register(body: RegistrationRequest, relay: Relay = Depends(get_relay)) -> Registered:
    account_id, device_id, token, generation, again = await service.register(
        relay, body.phone_number, body.code, body.registration_id, body.identity_key, body.device
    )
    return Registered(
        account_id=account_id,
        device_id=device_id,
        token=token,
        identity_generation=generation,
        reregistered=again,
    )


@router.get("/v1/accounts/me", response_model=AccountView, responses=error_responses(401), summary="My account")
async def me(device: DeviceRecord = Depends(current_device), relay: Relay = Depends(get_relay)) -> AccountView:
    account, rows = await service.describe(relay, device.account_id)
    return AccountView(
        account_id=account.id,
        phone_number=account.phone_number,
        device_id=device.device_id,
        identity_generation=account.identity_generation,
        devices=[
            DeviceView(
                device_id=r.device_id,
                registration_id=r.registration_id,
                model=r.device_model,
                os_name=r.os_name,
                os_version=r.os_version,
                app_version=r.app_version,
                created_at=r.created_at_ms,
                last_seen_at=r.last_seen_at_ms,
            )
            for r in rows
        ],
    )


@router.delete(
    "/v1/accounts/me",
    status_code=204,
    responses=error_responses(401, 404),
    summary="Delete my account and everything the relay holds about it",
    description="In one transaction: the account, its devices and tokens, identity and one-time keys, the "
    "messages queued for it, the records of its sends, its usage counters and its consent state. Every device "
    "is logged out at once. Kept: the consent ledger, the append-only proof of what was agreed and when, which "
    "the operator must keep under its legal obligations (it holds the account id and the acts, no number or "
    "content); a ban, if the number is banned; and messages this account sent that still wait for their "
    "recipients (their mail, ciphertext only), until collected or expired.",
)
async def delete_account(device: DeviceRecord = Depends(current_device), relay: Relay = Depends(get_relay)) -> Response:
    await deletion.delete_account(relay, device.account_id)
    return Response(status_code=204)


@router.put(
    "/v1/me/usage",
    status_code=204,
    responses=error_responses(400, 401, 429),
    summary="Report this device's usage counters per UTC day (messages sent and received, app opens)",
    description="Counts are the device's totals for each day, for the last 30 days to tomorrow (400 "
    "`usage_day_out_of_range` otherwise). They only grow: a day keeps the largest total reported per counter, "
    "so a lower report (a reinstall, a late retry) is ignored and a repeated one changes nothing.",
)
async def report_usage(
    body: UsageReport, device: DeviceRecord = Depends(current_device), relay: Relay = Depends(get_relay)
) -> Response:
    report = [(d.day, DayCounts(d.messages_sent, d.messages_received, d.app_opens)) for d in body.days]
    await service.record_usage(relay, device.account_id, report)
    return Response(status_code=204)


@router.put(
    "/v1/devices/current",
    status_code=204,
    responses=error_responses(400, 401),
    summary="Report this device's model, OS and app version (on every app update)",
)
async def update_device(
    body: DeviceInfo, device: DeviceRecord = Depends(current_device), relay: Relay = Depends(get_relay)
) -> Response:
    await service.update_device(relay, device.account_id, device.device_id, body)
    return Response(status_code=204)


@router.delete(
    "/v1/devices/current",
    status_code=204,
    responses=error_responses(401),
    summary="Log this device out: its token stops working at once",
)
async def log_out(device: DeviceRecord = Depends(current_device), relay: Relay = Depends(get_relay)) -> Response:
    await service.log_out(relay, device.account_id, device.device_id)
    return Response(status_code=204)


@router.post(
    "/v1/directory/lookup",
    response_model=LookupResult,
    responses=error_responses(400, 401, 429),
    summary="Contact discovery: which of these numbers use Cove",
    description="The submitted numbers are compared in memory and never stored or logged. Rate limited per "
    "account by the number of numbers checked.",
)
async def lookup(
    body: LookupRequest, device: DeviceRecord = Depends(current_device), relay: Relay = Depends(get_relay)
) -> LookupResult:
    found = await service.lookup(relay, device.account_id, body.phone_numbers)
    return LookupResult(registered=[RegisteredContact(phone_number=p, account_id=a) for p, a in found])
