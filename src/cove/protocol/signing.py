"""What a device signs with its Ed25519 identity key, shared by the client and the relay.

Each payload is prefixed with its purpose so a signature made for one kind of key can never be
replayed as another.
"""

from __future__ import annotations

import base64
import binascii

import vodozemac

from cove.errors import ApiError

# The syntax of keys and signatures, stated in the OpenAPI document. The relay checks it itself (below),
# answering `malformed_base64` or `invalid_key` as clients expect, so pydantic only documents these patterns.
KEY_32 = {"pattern": r"^[A-Za-z0-9+/]{43}=?$"}  # 32 bytes of standard base64, padded or not
SIGNATURE_64 = {"pattern": r"^[A-Za-z0-9+/]{86}(==)?$"}  # 64 bytes of standard base64, padded or not


IDENTITY = "identity"
ONE_TIME = "one_time_key"
FALLBACK = "fallback_key"


def signed_payload(kind: str, public_key: str) -> bytes:
    return f"cove:v1:{kind}:{public_key}".encode()


def decode_base64(value: str, field: str) -> bytes:
    """Decode standard base64, padded or not (vodozemac emits unpadded), or raise ``malformed_base64``."""
    try:
        return base64.b64decode(value + "=" * (-len(value) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ApiError(400, "malformed_base64", f"{field} is not valid base64") from exc


def check_public_key(value: str, field: str) -> None:
    if len(decode_base64(value, field)) != 32:
        raise ApiError(400, "invalid_key", f"{field} must be a 32-byte key")


def verify(ed25519_key: str, kind: str, public_key: str, signature: str, field: str) -> None:
    """Raise ``bad_signature`` unless ``signature`` is the device's signature over this key."""
    check_public_key(public_key, field)
    decode_base64(signature, f"{field}.signature")
    try:
        signer = _signer(ed25519_key)
        signer.verify_signature(signed_payload(kind, public_key), vodozemac.Ed25519Signature.from_base64(signature))
    except (vodozemac.SignatureException, vodozemac.KeyException) as exc:
        raise ApiError(400, "bad_signature", f"the signature on {field} does not verify") from exc


def _signer(ed25519_key: str) -> vodozemac.Ed25519PublicKey:
    # vodozemac panics on a key longer than 32 bytes, with a BaseException that escapes every handler.
    try:
        size = len(decode_base64(ed25519_key, "signing key"))
    except ApiError:
        size = 0
    if size != 32:
        raise vodozemac.KeyException("the signing key is not a 32-byte Ed25519 key")
    return vodozemac.Ed25519PublicKey.from_base64(ed25519_key)
