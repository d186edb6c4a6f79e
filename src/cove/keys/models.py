"""Request and response bodies of the key directory."""

from __future__ import annotations

from pydantic import BaseModel, Field

from cove.protocol.signing import KEY_32, SIGNATURE_64


class SignedKeyBody(BaseModel):
    key_id: str = Field(min_length=1, max_length=64)
    public_key: str = Field(max_length=64, description="Unpadded base64 Curve25519 key", json_schema_extra=KEY_32)
    signature: str = Field(
        max_length=128, description="Ed25519 signature by the device's identity key", json_schema_extra=SIGNATURE_64
    )


class KeyUpload(BaseModel):
    one_time_keys: list[SignedKeyBody] = Field(default_factory=list, max_length=50)
    fallback_key: SignedKeyBody | None = None


class KeyCount(BaseModel):
    one_time_keys: int
    max_one_time_keys: int
    has_fallback_key: bool


class DeviceBundle(BaseModel):
    device_id: int
    registration_id: int
    identity_curve25519: str
    identity_ed25519: str
    one_time_key: SignedKeyBody | None = Field(description="Taken for this caller; null if the device has none")
    is_fallback: bool = Field(description="True when the device ran out of one-time keys")


class ServedDeviceList(BaseModel):
    list: str = Field(description="The primary's signed device list as it uploaded it (cove.protocol.device_list)")
    signature: str


DEVICE_LIST = Field(None, description="The account's signed device list; null until its primary published one")


class KeyBundles(BaseModel):
    account_id: str
    identity_generation: int = Field(description="Goes up each time the number is registered on a new phone")
    identity_changed_at: int | None
    devices: list[DeviceBundle]
    device_list: ServedDeviceList | None = DEVICE_LIST


class DeviceIdentity(BaseModel):
    device_id: int
    registration_id: int
    identity_curve25519: str
    identity_ed25519: str


class AccountIdentity(BaseModel):
    account_id: str
    identity_generation: int
    identity_changed_at: int | None
    devices: list[DeviceIdentity]
    device_list: ServedDeviceList | None = DEVICE_LIST
