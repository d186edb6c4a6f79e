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
import os
import secrets
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

BSUID_PREFIX = "CC."


def _derive(secret: bytes, label: str) -> bytes:
    return hmac.new(secret, label.encode(), hashlib.sha256).digest()


def _read_or_create(path: Path) -> bytes:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process (the relay, an operator command) made it first
        else:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))
    return bytes.fromhex(path.read_text().strip())


@dataclass(frozen=True)
class BusinessKeys:
    secret: bytes

    @classmethod
    def load_or_create(cls, data_dir: Path) -> BusinessKeys:
        return _cached(data_dir.resolve())

    @property
    def signing_key(self) -> Ed25519PrivateKey:
        return Ed25519PrivateKey.from_private_bytes(_derive(self.secret, "cove:business:template:ed25519"))

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
            _derive(self.secret, "cove:business:bsuid"), f"{business_id}|{user_account_id}".encode(), hashlib.sha256
        ).digest()
        return BSUID_PREFIX + base64.b32encode(digest[:20]).decode().rstrip("=")


@cache
def _cached(data_dir: Path) -> BusinessKeys:
    return BusinessKeys(_read_or_create(data_dir / "business.key"))
