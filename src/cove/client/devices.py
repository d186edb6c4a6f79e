"""Linked devices, the pure parts: the provisioning channel's encryption, the messages two devices exchange through
it, and whether a served device list may replace the one a client trusts.

The channel is sealed with X25519 + HKDF-SHA256 + AES-256-GCM (``cryptography``): each message gets a fresh sender
key, and the channel's address and direction are authenticated with it, so the relay that carries the channel can
neither read a message nor move one to another channel or direction. (vodozemac's ``PkEncryption`` is libolm's
legacy scheme, whose MAC is truncated to 8 bytes.)
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from cove.protocol.device_list import DeviceList, InvalidDeviceList, verify
from cove.protocol.provisioning import MAX_SEALED_CHARS

LINK = "device_link"  # what a companion signs: it is the device of the account whose primary has this key
TO_COMPANION = b"cove:v1:provisioning:message:"
TO_PRIMARY = b"cove:v1:provisioning:reply:"
_NONCE = 12


class ProvisioningError(Exception):
    """A provisioning message that cannot be opened or is not what the other device should have sent."""


def new_key() -> X25519PrivateKey:
    return X25519PrivateKey.generate()


def public_bytes(key: X25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def _aead_key(shared: bytes, sender: bytes, recipient: bytes, context: bytes) -> AESGCM:
    derived = HKDF(hashes.SHA256(), 32, salt=sender + recipient, info=context).derive(shared)
    return AESGCM(derived)


def seal(recipient: bytes, payload: dict[str, Any], context: bytes) -> str:
    """``payload`` as JSON, encrypted to the X25519 key ``recipient``: base64 of sender key, nonce, ciphertext."""
    sender = new_key()
    sender_public = public_bytes(sender)
    shared = sender.exchange(X25519PublicKey.from_public_bytes(recipient))
    nonce = os.urandom(_NONCE)
    sealed = _aead_key(shared, sender_public, recipient, context).encrypt(nonce, json.dumps(payload).encode(), context)
    return base64.b64encode(sender_public + nonce + sealed).decode()


def open_sealed(key: X25519PrivateKey, sealed: str, context: bytes) -> dict[str, Any]:
    if len(sealed) > MAX_SEALED_CHARS:
        raise ProvisioningError("the provisioning message is too long")
    try:
        raw = base64.b64decode(sealed, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ProvisioningError("the provisioning message is not base64") from exc
    if len(raw) < 32 + _NONCE + 16:
        raise ProvisioningError("the provisioning message is too short")
    sender, nonce, body = raw[:32], raw[32 : 32 + _NONCE], raw[32 + _NONCE :]
    shared = key.exchange(X25519PublicKey.from_public_bytes(sender))
    try:
        plain = _aead_key(shared, sender, public_bytes(key), context).decrypt(nonce, body, context)
        payload = json.loads(plain)
    except (InvalidTag, ValueError) as exc:
        raise ProvisioningError("the provisioning message does not open with this device's key") from exc
    if not isinstance(payload, dict):
        raise ProvisioningError("the provisioning message is not a JSON object")
    return payload


def _text(payload: dict[str, Any], name: str, limit: int = 128) -> str:
    value = payload.get(name)
    if not isinstance(value, str) or not 0 < len(value) <= limit:
        raise ProvisioningError(f"the provisioning message has no valid {name}")
    return value


def _number(payload: dict[str, Any], name: str) -> int:
    value = payload.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**31:
        raise ProvisioningError(f"the provisioning message has no valid {name}")
    return value


@dataclass(frozen=True)
class Provisioning:
    """What the primary tells the companion: whose device it becomes, and how to answer."""

    account_id: str
    phone_number: str
    identity_generation: int
    link_token: str
    primary_curve25519: str
    primary_ed25519: str
    reply_key: bytes

    def to_json(self) -> dict[str, Any]:
        return {
            "v": 1,
            "account_id": self.account_id,
            "phone_number": self.phone_number,
            "identity_generation": self.identity_generation,
            "link_token": self.link_token,
            "primary": {"curve25519": self.primary_curve25519, "ed25519": self.primary_ed25519},
            "reply_key": base64.b64encode(self.reply_key).decode(),
        }

    @classmethod
    def from_json(cls, payload: dict[str, Any]) -> Provisioning:
        primary = payload.get("primary")
        if not isinstance(primary, dict):
            raise ProvisioningError("the provisioning message names no primary")
        try:
            reply_key = base64.b64decode(_text(payload, "reply_key"), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ProvisioningError("the provisioning message's reply key is not base64") from exc
        if len(reply_key) != 32:
            raise ProvisioningError("the provisioning message's reply key is not 32 bytes")
        return cls(
            _text(payload, "account_id", 64),
            _text(payload, "phone_number", 32),
            _number(payload, "identity_generation"),
            _text(payload, "link_token", 64),
            _text(primary, "curve25519", 64),
            _text(primary, "ed25519", 64),
            reply_key,
        )


@dataclass(frozen=True)
class LinkReply:
    """What the companion answers: its device id and identity keys, and its signature over the primary's key."""

    device_id: int
    curve25519: str
    ed25519: str
    signature: str

    def to_json(self) -> dict[str, Any]:
        return {
            "v": 1,
            "device_id": self.device_id,
            "curve25519": self.curve25519,
            "ed25519": self.ed25519,
            "signature": self.signature,
        }

    @classmethod
    def from_json(cls, payload: dict[str, Any]) -> LinkReply:
        return cls(
            _number(payload, "device_id"),
            _text(payload, "curve25519", 64),
            _text(payload, "ed25519", 64),
            _text(payload, "signature", 128),
        )


def link_statement(account_id: str, primary_ed25519: str) -> str:
    """What the companion signs (with its own identity key) to say it is this account's device."""
    return f"{account_id}:{primary_ed25519}"


# trusting device lists ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Pin:
    """The device list a client trusts for an account: the primary key pinned for an identity generation and the
    last list that key signed (``text`` None: the key is pinned, no list seen yet)."""

    generation: int
    primary_ed25519: str
    version: int
    text: str | None
    signature: str | None

    def listed(self) -> DeviceList | None:
        return verify(self.text, self.signature or "", self.primary_ed25519) if self.text else None


@dataclass(frozen=True)
class Verdict:
    pin: Pin | None  # the pin to keep (unchanged when refused)
    refused: str | None = None  # why the served list was refused


def judge(account_id: str, pin: Pin | None, generation: int, served: dict[str, Any] | None) -> Verdict:
    """Whether the device list the relay served may replace ``pin``.

    The first list seen for an identity generation pins its primary key (trust on first use; a higher generation is
    a new phone, announced by IdentityChanged); every later list of that generation must verify under the pinned
    key and have an equal or higher version. Anything else is refused and the pin stays as it was.
    """
    if pin is not None and generation < pin.generation:
        return Verdict(pin, f"the relay served identity generation {generation}, older than {pin.generation}")
    fresh = pin is None or generation > pin.generation
    if served is None:
        if fresh:
            return Verdict(None)
        return Verdict(pin, "the relay withheld the account's signed device list")
    text, signature = served.get("list"), served.get("signature")
    if not isinstance(text, str) or not isinstance(signature, str):
        return Verdict(pin, "the served device list is malformed")
    try:
        listed = verify(text, signature, None if fresh else pin.primary_ed25519)  # type: ignore[union-attr]
    except InvalidDeviceList as exc:
        return Verdict(pin, str(exc))
    if listed.account_id != account_id:
        return Verdict(pin, "the served device list is another account's")
    if not fresh and listed.version < pin.version:  # type: ignore[union-attr]
        return Verdict(pin, f"the served device list (version {listed.version}) is older than the trusted one")
    return Verdict(Pin(generation, listed.primary.ed25519, listed.version, text, signature))
