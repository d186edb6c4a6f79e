"""Request and response bodies of the devices API (they are also the OpenAPI schema)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from cove.accounts.models import DeviceInfo, IdentityKeys
from cove.protocol.device_list import MAX_LIST_CHARS, MAX_SIGNATURE_CHARS
from cove.protocol.provisioning import MAX_SEALED_CHARS
from cove.protocol.signing import SIGNATURE_64

SEALED = Field(
    min_length=1,
    max_length=MAX_SEALED_CHARS,
    pattern=r"^[A-Za-z0-9+/]+={0,2}$",
    description="Sealed to the other device's key (base64); the relay cannot read it",
)


class ChannelOpened(BaseModel):
    address: str = Field(description="32 hex digits: put it in the link code")
    secret: str = Field(description="Read the channel with `Authorization: Provisioning <secret>`; shown once")
    expires_at: int = Field(description="Milliseconds since the epoch; a channel lives 10 minutes")


class Sealed(BaseModel):
    body: str = SEALED


class LinkToken(BaseModel):
    link_token: str = Field(description="Single use, for one companion, within 10 minutes")
    expires_at: int


class LinkRequest(BaseModel):
    link_token: str = Field(min_length=1, max_length=64)
    registration_id: int = Field(ge=1, le=16380, description="Random per install; a new one marks a reinstall")
    identity_key: IdentityKeys
    device: DeviceInfo


class SignedDeviceList(BaseModel):
    list: str = Field(
        min_length=1,
        max_length=MAX_LIST_CHARS,
        description="Canonical JSON (sorted keys, no spaces) of account_id, version, timestamp (ms) and devices "
        "(device_id, curve25519, ed25519), device 1 first",
    )
    signature: str = Field(
        max_length=MAX_SIGNATURE_CHARS,
        description="The primary's Ed25519 signature over 'cove:v1:device_list:' + list",
        json_schema_extra=SIGNATURE_64,
    )


class LinkedDevice(BaseModel):
    device_id: int
    registration_id: int
    identity_curve25519: str
    identity_ed25519: str
    model: str
    os_name: str
    app_version: str
    linked_at: int = Field(description="When the device was registered or linked, milliseconds since the epoch")
    last_seen_at: int
    listed: bool = Field(description="Named in the account's signed device list: contacts encrypt to it")


class AccountDevices(BaseModel):
    device_id: int = Field(description="The device making this request")
    devices: list[LinkedDevice]
    device_list: SignedDeviceList | None
