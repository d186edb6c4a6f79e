"""The gateway's keys, all derived from one secret kept in the data directory (``sharing.key``, mode 0600).

- the Ed25519 key that signs every manifest (recipients verify with its public half);
- per recipient, the phone-hash key (handed to that recipient, so it can hash numbers it already knows) and the
  subject key (never handed out, so a recipient cannot confirm a guessed account id).
Deriving rather than storing them means one file to back up and nothing per recipient to lose.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cove.keyfile import derive, read_or_create
from cove.sharing import wire


@dataclass(frozen=True)
class SharingKeys:
    secret: bytes

    @classmethod
    def load_or_create(cls, data_dir: Path) -> SharingKeys:
        return cls(read_or_create(data_dir / "sharing.key"))

    @property
    def signing_key(self) -> Ed25519PrivateKey:
        return Ed25519PrivateKey.from_private_bytes(derive(self.secret, "cove:sharing:ed25519"))

    @property
    def key_id(self) -> str:
        return wire.key_id(self.signing_key.public_key())

    def phone_key(self, recipient: str) -> bytes:
        return derive(self.secret, f"cove:sharing:phone:{recipient}")

    def subject_key(self, recipient: str) -> bytes:
        return derive(self.secret, f"cove:sharing:subject:{recipient}")

    def subject(self, recipient: str, account_id: str) -> str:
        return hmac.new(self.subject_key(recipient), account_id.encode(), hashlib.sha256).hexdigest()[:32]

    def trust_bundle(self, recipient: str) -> wire.TrustBundle:
        public = wire.public_key_bytes(self.signing_key.public_key())
        return wire.TrustBundle(
            recipient=recipient,
            messenger_public_key=base64.b64encode(public).decode(),
            phone_hash_key=self.phone_key(recipient).hex(),
        )
