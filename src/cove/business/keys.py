"""The business capability's server keys, derived from one secret in the data directory (``business.key``, 0600),
the way cove.sharing.keys derives the gateway's:

- the Ed25519 key that signs approved templates (clients verify with its public half, ``GET
  /v1/business/template-key``, before rendering one);
- the HMAC key of the per-business user ids, so a business never learns a user's number or account id.
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

from cove.keyfile import derive, read_or_create

BSUID_PREFIX = "CC."
BSUID = r"^CC\.[A-Z2-7]{32}$"  # the prefix and 20 bytes of HMAC in unpadded base32 (bsuid below)


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

    def bsuid(self, business_id: str, user_account_id: str) -> str:
        """The user's id as this business sees it: stable per pair, unlinkable across businesses."""
        digest = hmac.new(
            derive(self.secret, "cove:business:bsuid"), f"{business_id}|{user_account_id}".encode(), hashlib.sha256
        ).digest()
        return BSUID_PREFIX + base64.b32encode(digest[:20]).decode().rstrip("=")


@cache
def _cached(data_dir: Path) -> BusinessKeys:
    return BusinessKeys(read_or_create(data_dir / "business.key"))
