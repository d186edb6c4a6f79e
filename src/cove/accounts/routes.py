"""HTTP routes of the accounts capability."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field

from cove.accounts import deletion, export, number_change, reglock, reglock_service, service
from cove.accounts.auth import current_device
from cove.accounts.code_limits import CodeRequestsLimited, source_key
from cove.accounts.models import (
    AccountView,
    CodeRequest,
    CodeSent,
    DeviceInfo,
    DeviceView,
    LookupRequest,
    LookupResult,
    PinRequest,
    Registered,
    RegisteredContact,
    RegistrationLockView,
    RegistrationRequest,
    UsageReport,
)
from cove.accounts.storage import DeviceRecord
from cove.context import Relay, get_relay
from cove.errors import ApiError, error_responses
from cove.limits.table import DATA_EXPORTS_BURST
from cove.protocol.usage import DayCounts

router = APIRouter(tags=["accounts"])

# The registration lock's and the code limits' refusals, as HTTP; 423 Locked as Signal answers a locked number.
_STATUS: dict[type[Exception], int] = {
    reglock.WeakPin: 400,
    reglock.RegistrationLocked: 423,
    reglock.WrongPin: 423,
    reglock.PinGuessesPaused: 429,
    CodeRequestsLimited: 429,
}


@contextmanager
def _as_http() -> Iterator[None]:
    try:
        yield
    except CodeRequestsLimited as exc:
        raise _api_error(exc, exc.code, retry_after=exc.retry_after, limit=exc.limit) from None
    except reglock.RegLockError as exc:
        raise _api_error(exc, exc.code, **exc.details) from None


def _api_error(exc: Exception, code: str, **details: int | str) -> ApiError:
    status = next(_STATUS[cls] for cls in type(exc).__mro__ if cls in _STATUS)
    err = ApiError(status, code, str(exc), **details)
    if details.get("retry_after"):
        err.headers["Retry-After"] = str(details["retry_after"])
    return err


@router.post(
    "/v1/verification/code",
    status_code=202,
    response_model=CodeSent,
    responses=error_responses(400, 403, 409, 428, 429, 502),
    summary="Send a 6-digit verification code to a phone number",
    description="403 `account_banned` (with its `reason` code) when the number is banned. 428 "
    "`challenge_required` when the registration gate finds the number, its range, this address or this device "
    "suspicious: its `challenge` ({type, algorithm, seed, bits, expires_at}) asks for a proof of work; send the "
    "request again with `challenge: {seed, nonce}` (400 `challenge_failed` for a wrong, expired or foreign "
    "answer). 429 `too_many_codes` with `Retry-After` and `limit`: `number` (codes to this number from this "
    "address), `source` (from this address), `range` (to numbers sharing all but the last digits) or `overall`. "
    "A new code replaces the last. `purpose: appeal` (banned numbers only, else 409 `not_banned`) sends a code "
    "that files an appeal (POST /v1/safety/appeals) and never registers.",
)
async def request_code(body: CodeRequest, request: Request, relay: Relay = Depends(get_relay)) -> CodeSent:
    source = source_key(request.client.host if request.client else None)
    with _as_http():
        pending, sends_left = await service.request_code(
            relay, body.phone_number, source, body.device, body.challenge, body.purpose
        )
    return CodeSent(
        phone_number=pending.phone_number, expires_at=service.code_expiry_ms(pending), sends_left=sends_left
    )


@router.post(
    "/v1/registration",
    status_code=201,
    response_model=Registered,
    responses=error_responses(400, 403, 423, 429),
    summary="Verify the code and register this phone as the account's primary device",
    description="Registering a number that already has an account creates a new identity: every old device is "
    "logged out and the key directory's identity_generation goes up so contacts can warn their users. "
    "403 `account_banned` when the number is banned. While the number has a registration lock (a PIN set with "
    "`PUT /v1/accounts/me/registration-lock`, and a device of the account active within "
    "`COVE_REGISTRATION_LOCK_DAYS`), a right code is not enough: 423 `registration_lock` without `pin`, 423 "
    "`wrong_pin` (with `attempts_left`) for a wrong one, both with `time_remaining_ms` until the lock lapses; "
    "the code stays valid and the account, its devices, keys and messages are untouched. After 3 wrong PINs "
    "each further guess waits twice as long (429 `pin_backoff` with `Retry-After`); after "
    "`COVE_REGISTRATION_LOCK_MAX_GUESSES` no guess is taken until the lock lapses (429 `pin_attempts_exhausted`).",
)
async def register(body: RegistrationRequest, request: Request, relay: Relay = Depends(get_relay)) -> Registered:
    source = source_key(request.client.host if request.client else None)
    with _as_http():
        account_id, device_id, token, generation, again = await service.register(
            relay, body.phone_number, body.code, body.registration_id, body.identity_key, body.device, body.pin, source
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


class AccountNumber(BaseModel):
    phone_number: str


class NumberChange(BaseModel):
    phone_number: str = Field(max_length=32, description="The new number, E.164", examples=["+14155550123"])
    code: str = Field(pattern=r"^[0-9]{6}$", description="The 6 digits sent to it with `purpose: change_number`")


@router.put(
    "/v1/accounts/me/number",
    response_model=AccountNumber,
    responses=error_responses(400, 401, 403, 404, 409, 429),
    summary="Move my account to a new number, proven by the code sent to it",
    description="Ask for the code with `POST /v1/verification/code` and `purpose: change_number`. The account "
    "keeps its id, devices, keys and messages. 409 `number_taken` when another account has the number, "
    "`same_number` when it is already mine; 403 `account_banned` for a banned number. Each business I deal with "
    "gets a new id for me (Meta's rule), with a `user_changed_number` or `user_changed_user_id` webhook.",
)
async def change_number(
    body: NumberChange, device: DeviceRecord = Depends(current_device), relay: Relay = Depends(get_relay)
) -> AccountNumber:
    with _as_http():
        phone = await number_change.change_number(relay, device.account_id, body.phone_number, body.code)
    return AccountNumber(phone_number=phone)


@router.get(
    "/v1/me/export",
    responses=error_responses(401, 404, 429),
    summary="Download my data: everything the relay holds about my account, and my consent receipts",
    description='Any device of the account. One JSON document, `{"format": "cove.export/1", "generated_at", '
    '"account_id", "sections"}`, read in one consistent snapshot. Sections: `account` (number, creation, '
    "whether a registration lock is set, never its hash), `devices` (ids, model, times, public identity keys), "
    "`usage` (daily counters), `keys` (one-time and fallback keys held per device), `messaging` (envelopes queued "
    "for me: ids, sizes, times, never their content), `attachments` (uploads pending), `groups` (memberships and "
    "roles), `safety` (blocks, acceptances, reports made, steps in force, appeals), `consent` (terms, choices, "
    "notices served) and `consent_receipts` (the ledger's records after ISO/IEC TS 27560, as `cove ledger "
    "export` gives them), `sharing` (disclosures, revocations and their acknowledgements), `business` (opt-ins, "
    'preferences, my id and shown name at each business). Each list is `{"items", "truncated"}`, at most '
    f"{export.LIST_LIMIT} items. 429 `rate_limited` past {DATA_EXPORTS_BURST} an hour, with `Retry-After`.",
)
async def export_my_data(
    device: DeviceRecord = Depends(current_device), relay: Relay = Depends(get_relay)
) -> dict[str, Any]:
    return await export.export(relay, device.account_id)


class ErasureReceipt(BaseModel):
    recipient: str = Field(description="Who was told to erase the account's data")
    event_id: str = Field(description="A random UUID: `GET /v1/erasures/{event_id}` answers whether it was done")
    requested_at: int = Field(description="Milliseconds since the epoch")


class AccountDeletedView(BaseModel):
    erasures: list[ErasureReceipt] = Field(
        description="One erasure event per recipient a published policy names; keep the ids to check later"
    )


@router.delete(
    "/v1/accounts/me",
    response_model=AccountDeletedView,
    responses=error_responses(401, 404),
    summary="Delete my account and everything the relay holds about it",
    description="In one transaction: the account, its devices and tokens, identity and one-time keys, the "
    "messages queued for it, the records of its sends, its usage counters and its consent state. Every device "
    "is logged out at once. Kept: the consent ledger, the append-only proof of what was agreed and when, which "
    "the operator must keep under its legal obligations (it holds the account id and the acts, no number or "
    "content); a ban, if the number is banned; and messages this account sent that still wait for their "
    "recipients (their mail, ciphertext only), until collected or expired. The answer lists the erasure event "
    "sent to each recipient of shared data: `GET /v1/erasures/{event_id}` tells, without a token, when it was "
    "requested, sent and acknowledged.",
)
async def delete_account(
    device: DeviceRecord = Depends(current_device), relay: Relay = Depends(get_relay)
) -> AccountDeletedView:
    receipts = await deletion.delete_account(relay, device.account_id)
    return AccountDeletedView(erasures=receipts.get("erasures", []))


@router.get(
    "/v1/accounts/me/registration-lock",
    response_model=RegistrationLockView,
    responses=error_responses(401),
    summary="Whether my number has a registration lock",
)
async def registration_lock(
    device: DeviceRecord = Depends(current_device), relay: Relay = Depends(get_relay)
) -> RegistrationLockView:
    lock = await reglock_service.lock_of(relay, device.account_id)
    return RegistrationLockView(
        enabled=lock is not None,
        set_at=lock.set_at_ms if lock else None,
        lapses_after_days=relay.settings.registration_lock_days,
    )


@router.put(
    "/v1/accounts/me/registration-lock",
    status_code=204,
    responses=error_responses(400, 401, 429),
    summary="Set (or change) my registration lock's PIN",
    description="From then on, registering this number on another phone needs the PIN as well as the SMS code, "
    "until every device of the account has been inactive for `COVE_REGISTRATION_LOCK_DAYS` (7 by default). "
    "The relay keeps only a salted scrypt hash of the PIN. 400 `weak_pin`; 429 `rate_limited` after 5 changes "
    "an hour.",
)
async def set_registration_lock(
    body: PinRequest, device: DeviceRecord = Depends(current_device), relay: Relay = Depends(get_relay)
) -> Response:
    with _as_http():
        await reglock_service.set_pin(relay, device.account_id, body.pin)
    return Response(status_code=204)


@router.delete(
    "/v1/accounts/me/registration-lock",
    status_code=204,
    responses=error_responses(401),
    summary="Remove my registration lock: the SMS code alone registers the number again",
)
async def remove_registration_lock(
    device: DeviceRecord = Depends(current_device), relay: Relay = Depends(get_relay)
) -> Response:
    await reglock_service.remove_pin(relay, device.account_id)
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
