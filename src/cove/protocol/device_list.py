"""An account's signed device list, shared by the SDK (which trusts only the devices it names) and the relay (which
addresses only the registered devices it names).

The list is canonical JSON (sorted keys, no spaces) of ``{"account_id", "version", "timestamp" (ms), "devices":
[{"device_id", "curve25519", "ed25519"}]}``, the primary (device 1) first, signed by the primary's Ed25519
identity key over ``cove:v1:device_list:`` + that JSON. The relay stores and serves it as it came: a client checks
the signature itself, so a relay that adds a device to an account cannot make anybody encrypt to it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import vodozemac

from cove.errors import ApiError
from cove.protocol import signing

DEVICE_LIST = "device_list"
PRIMARY_DEVICE_ID = 1
MAX_LIST_DEVICES = 16  # the primary and its companions; the relay's own cap is lower (COVE_MAX_COMPANION_DEVICES)
MAX_LIST_CHARS = 8192  # 16 devices of two keys each fit in under 2 KiB
MAX_SIGNATURE_CHARS = 128


class InvalidDeviceList(ValueError):
    """The list is malformed, not canonical, or its signature does not verify."""


@dataclass(frozen=True)
class ListedDevice:
    device_id: int
    curve25519: str
    ed25519: str


@dataclass(frozen=True)
class DeviceList:
    account_id: str
    version: int
    timestamp: int
    devices: tuple[ListedDevice, ...]

    @property
    def primary(self) -> ListedDevice:
        return self.devices[0]

    def device_ids(self) -> set[int]:
        return {d.device_id for d in self.devices}

    def canonical(self) -> str:
        body = {
            "account_id": self.account_id,
            "version": self.version,
            "timestamp": self.timestamp,
            "devices": [
                {"device_id": d.device_id, "curve25519": d.curve25519, "ed25519": d.ed25519} for d in self.devices
            ],
        }
        return json.dumps(body, sort_keys=True, separators=(",", ":"))


def signed_bytes(canonical: str) -> bytes:
    return signing.signed_payload(DEVICE_LIST, canonical)


def _int(value: Any, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low or value >= 2**53:
        raise InvalidDeviceList(f"{name} must be an integer of at least {low}")
    return value


def _key(value: Any, name: str) -> str:
    if not isinstance(value, str) or len(value) > 64:
        raise InvalidDeviceList(f"{name} must be a 32-byte base64 key")
    try:
        signing.check_public_key(value, name)
    except ApiError as exc:
        raise InvalidDeviceList(f"{name} must be a 32-byte base64 key") from exc
    return value


def parse(text: str) -> DeviceList:
    """The list in ``text``, which must be exactly its canonical form (what was signed is what is read)."""
    if not isinstance(text, str) or len(text) > MAX_LIST_CHARS:
        raise InvalidDeviceList(f"a device list is a JSON text of at most {MAX_LIST_CHARS} characters")
    try:
        body = json.loads(text)
    except ValueError as exc:
        raise InvalidDeviceList("the device list is not JSON") from exc
    if not isinstance(body, dict) or set(body) != {"account_id", "version", "timestamp", "devices"}:
        raise InvalidDeviceList("a device list has exactly account_id, version, timestamp and devices")
    entries = body["devices"]
    if not isinstance(entries, list) or not 1 <= len(entries) <= MAX_LIST_DEVICES:
        raise InvalidDeviceList(f"a device list names 1 to {MAX_LIST_DEVICES} devices")
    devices = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or set(entry) != {"device_id", "curve25519", "ed25519"}:
            raise InvalidDeviceList(f"devices.{i} has exactly device_id, curve25519 and ed25519")
        devices.append(
            ListedDevice(
                _int(entry["device_id"], f"devices.{i}.device_id", 1),
                _key(entry["curve25519"], f"devices.{i}.curve25519"),
                _key(entry["ed25519"], f"devices.{i}.ed25519"),
            )
        )
    if devices[0].device_id != PRIMARY_DEVICE_ID:
        raise InvalidDeviceList("the primary, device 1, comes first")
    if len({d.device_id for d in devices}) != len(devices):
        raise InvalidDeviceList("a device is named twice")
    if not isinstance(body["account_id"], str) or not 1 <= len(body["account_id"]) <= 64:
        raise InvalidDeviceList("account_id must be an account id")
    parsed = DeviceList(
        body["account_id"], _int(body["version"], "version", 1), _int(body["timestamp"], "timestamp", 0), tuple(devices)
    )
    if parsed.canonical() != text:
        raise InvalidDeviceList("the device list is not in canonical form (sorted keys, no spaces)")
    return parsed


def signature_valid(ed25519: str, canonical: str, signature: str) -> bool:
    """Whether ``signature`` is ``ed25519``'s over this list; never raises on hostile input."""
    if not isinstance(signature, str) or len(signature) > MAX_SIGNATURE_CHARS:
        return False
    try:
        if len(signing.decode_base64(ed25519, "ed25519")) != 32:
            return False  # vodozemac panics (a BaseException) on an over-long key
        signing.decode_base64(signature, "signature")
        vodozemac.Ed25519PublicKey.from_base64(ed25519).verify_signature(
            signed_bytes(canonical), vodozemac.Ed25519Signature.from_base64(signature)
        )
    except (vodozemac.SignatureException, vodozemac.KeyException, vodozemac.DecodeException, ApiError):
        return False
    return True


def verify(text: str, signature: str, signer_ed25519: str | None = None) -> DeviceList:
    """The list, if it is well formed and signed by ``signer_ed25519`` (by default: the primary it names)."""
    parsed = parse(text)
    if not signature_valid(signer_ed25519 or parsed.primary.ed25519, text, signature):
        raise InvalidDeviceList("the device list's signature does not verify")
    return parsed
