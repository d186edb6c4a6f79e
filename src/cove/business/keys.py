"""The business capability's server keys, derived from one secret in the data directory (``business.key``, 0600),
the way cove.sharing.keys derives the gateway's:

- the Ed25519 key that signs approved templates (clients verify with its public half, ``GET
  /v1/business/template-key``, before rendering one);
- the HMAC key of the per-business user ids, so a business never learns a user's number or account id.

A per-business user id has Meta's business-scoped user id (BSUID) format, so a client library that tells a
BSUID from a phone number or a group id by its shape takes it for what it is: the ISO 3166 alpha-2 code of the
user's number, a period, and digits ([M] https://developers.facebook.com/documentation/business-messaging/whatsapp/business-scoped-user-ids/,
e.g. ``US.13491208655302741918``). The digits are the first 64 bits of an HMAC, written as 20 decimal digits:
Meta's example has 20, and 64 bits keep two users of one business apart (a collision among a million users of one
business has odds of about 1 in 36 million; the relay's unique index refuses it rather than merge two users).
Unlinkability across businesses comes from the key, not the length: without it two ids cannot be matched.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from cove.business.identity import bsuid_from_digest
from cove.keyfile import derive, read_or_create

BSUID = r"^[A-Z]{2}\.[0-9]{20}$"  # a region code, a period, 64 bits of HMAC in 20 decimal digits (bsuid below)


@dataclass(frozen=True)
class BusinessKeys:
    secret: bytes

    @classmethod
    def load_or_create(cls, data_dir: Path) -> BusinessKeys:
        return _cached(data_dir.resolve())

    @property
    def signing_key(self) -> Ed25519PrivateKey:
        return Ed25519PrivateKey.from_private_bytes(derive(self.secret, "cove:business:template:ed25519"))

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.signing_key.public_key()

    @property
    def public_key_b64(self) -> str:
        return base64.b64encode(self.public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()

    @property
    def key_id(self) -> str:
        raw = self.public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
        return hashlib.sha256(raw).hexdigest()[:16]

    def bsuid(self, business_id: str, user_account_id: str, phone_number: str) -> str:
        """The user's id as this business sees it: stable per pair and number, unlinkable across businesses. The
        number is in the HMAC because Meta gives a user a new id when their number changes (the relay stores the
        id it gave, so only a new pair or a number change computes one)."""
        message = f"{business_id}|{user_account_id}|{phone_number}".encode()
        digest = hmac.new(derive(self.secret, "cove:business:bsuid"), message, hashlib.sha256).digest()
        return bsuid_from_digest(phone_number, digest)


@cache
def _cached(data_dir: Path) -> BusinessKeys:
    return BusinessKeys(read_or_create(data_dir / "business.key"))
