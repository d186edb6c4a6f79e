"""Request and response bodies of the accounts API (they are also the OpenAPI schema)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, Field

from cove.accounts.reglock import MAX_PIN_LENGTH, MIN_PIN_LENGTH
from cove.protocol.signing import KEY_32, SIGNATURE_64


class CodeSent(BaseModel):
    phone_number: str = Field(description="The number in E.164 form")
    expires_at: int = Field(description="Milliseconds since the epoch")
    sends_left: int = Field(
        description="Codes that may still be requested for this number from this address in this window"
    )


class DeviceInfo(BaseModel):
    model: str = Field(min_length=1, max_length=100, examples=["Pixel 9"])
    os_name: str = Field(min_length=1, max_length=50, examples=["Android"])
    os_version: str = Field(min_length=1, max_length=50, examples=["15"])
    app_version: str = Field(min_length=1, max_length=50, examples=["0.1.0"])
    vendor_device_id: str | None = Field(
        None, max_length=100, description="One id shared by one vendor's apps on this device"
    )


class ChallengeAnswer(BaseModel):
    seed: str = Field(min_length=1, max_length=200, description="The `seed` of the 428's `challenge`, as given")
    nonce: str = Field(
        pattern=r"^[0-9]{1,20}$", description="Decimal digits such that SHA-256 of `seed:nonce` has `bits` zero bits"
    )


class CodeRequest(BaseModel):
    phone_number: str = Field(max_length=32, examples=["+14155550123"])
    device: DeviceInfo | None = Field(
        None, description="This phone's model, OS and app version: one of the signals the registration gate weighs"
    )
    challenge: ChallengeAnswer | None = Field(
        None, description="The answer to the proof-of-work challenge of a 428 `challenge_required`, when retrying"
    )
    purpose: Literal["register", "appeal", "change_number"] = Field(
        "register",
        description="`appeal`: a banned number's code to appeal its ban with; `change_number`: a code to move an "
        "account to this number with (PUT /v1/accounts/me/number). Neither can register.",
    )


class IdentityKeys(BaseModel):
    curve25519: str = Field(
        max_length=64, description="Unpadded base64 Curve25519 identity key", json_schema_extra=KEY_32
    )
    ed25519: str = Field(max_length=64, description="Unpadded base64 Ed25519 signing key", json_schema_extra=KEY_32)
    signature: str = Field(
        max_length=128,
        description="Ed25519 signature over 'cove:v1:identity:<curve25519>' (see keys.signing)",
        json_schema_extra=SIGNATURE_64,
    )


class RegistrationRequest(BaseModel):
    phone_number: str = Field(max_length=32)
    code: str = Field(pattern=r"^[0-9]{6}$", description="The 6 digits sent; anything else is refused uncounted")
    registration_id: int = Field(ge=1, le=16380, description="Random per install; a new one marks a reinstall")
    identity_key: IdentityKeys
    device: DeviceInfo
    pin: str | None = Field(
        None,
        min_length=1,
        max_length=MAX_PIN_LENGTH,
        description="The registration lock's PIN, needed only while the number is locked (423 `registration_lock`)",
    )


class Registered(BaseModel):
    account_id: str
    device_id: int
    token: str = Field(description="Bearer token for this device; shown once")
    identity_generation: int
    reregistered: bool = Field(description="True when this number had an account: its old devices were logged out")


class PinRequest(BaseModel):
    pin: str = Field(
        min_length=MIN_PIN_LENGTH,
        max_length=MAX_PIN_LENGTH,
        description="6 to 64 characters; not one repeated character nor a run of digits (400 `weak_pin`)",
        examples=["480731"],
    )


class RegistrationLockView(BaseModel):
    enabled: bool
    set_at: int | None = Field(None, description="When the PIN was set, milliseconds since the epoch")
    lapses_after_days: float = Field(description="The lock lapses once every device was inactive this long")


class DeviceView(BaseModel):
    device_id: int
    registration_id: int
    model: str
    os_name: str
    os_version: str
    app_version: str
    created_at: int
    last_seen_at: int


class AccountView(BaseModel):
    account_id: str
    phone_number: str
    device_id: int = Field(description="The device making this request")
    identity_generation: int
    devices: list[DeviceView]


class LookupRequest(BaseModel):
    phone_numbers: list[str] = Field(
        max_length=100_000,
        description="Numbers to check (at most COVE_DISCOVERY_MAX_NUMBERS, 1,000 by default); nothing is stored",
    )


class RegisteredContact(BaseModel):
    phone_number: str
    account_id: str


class LookupResult(BaseModel):
    registered: list[RegisteredContact]


def _not_a_boolean(value: object) -> object:
    if isinstance(value, bool):  # pydantic would take true for 1; the schema says integer
        raise ValueError("a count is a number, not true or false")
    return value


Count = Annotated[int, BeforeValidator(_not_a_boolean)]


class UsageDay(BaseModel):
    day: str = Field(
        min_length=10,
        max_length=10,
        json_schema_extra={"format": "date"},  # checked by usage.parse_day, for its own error code
        description="The UTC day, YYYY-MM-DD: from 30 days ago to tomorrow",
        examples=["2026-11-25"],
    )
    messages_sent: Count = Field(0, ge=0, le=1_000_000, description="Messages this device sent that day")
    messages_received: Count = Field(
        0, ge=0, le=1_000_000, description="Messages this device received and decrypted that day"
    )
    app_opens: Count = Field(0, ge=0, le=1_000_000, description="Times the app was opened that day")


class UsageReport(BaseModel):
    days: list[UsageDay] = Field(max_length=31, description="Days from 30 days ago to tomorrow (UTC), each once")
