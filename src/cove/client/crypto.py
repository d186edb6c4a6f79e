"""Olm through vodozemac: this device's account, and sessions with other devices.

Everything here changes state on use; callers persist :meth:`OlmDevice.pickle` and every session's pickle
after each call and before acknowledging anything to the relay (see ClientStore.commit_received).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

import vodozemac as vz

from cove.errors import ApiError
from cove.protocol import signing

PICKLE_KEY_BYTES = 32
ONE_TIME_KEY_TARGET = 50


class DecryptionFailed(Exception):
    pass


@dataclass(frozen=True)
class Encrypted:
    kind: int  # 0 pre-key, 1 normal
    body: bytes


class OlmDevice:
    def __init__(self, account: vz.Account) -> None:
        self._account = account

    @classmethod
    def create(cls) -> OlmDevice:
        return cls(vz.Account())

    @classmethod
    def from_pickle(cls, pickled: str, key: bytes) -> OlmDevice:
        return cls(vz.Account.from_pickle(pickled, key))

    def pickle(self, key: bytes) -> str:
        return self._account.pickle(key)

    @property
    def curve25519(self) -> str:
        return self._account.curve25519_key.to_base64()

    @property
    def ed25519(self) -> str:
        return self._account.ed25519_key.to_base64()

    def sign(self, kind: str, public_key: str) -> str:
        return self._account.sign(signing.signed_payload(kind, public_key)).to_base64()

    def identity_keys(self) -> dict[str, str]:
        return {
            "curve25519": self.curve25519,
            "ed25519": self.ed25519,
            "signature": self.sign(signing.IDENTITY, self.curve25519),
        }

    def new_one_time_keys(self, count: int) -> list[dict[str, str]]:
        """Generate ``count`` keys and return them signed, ready to upload (then call :meth:`mark_published`)."""
        if count > 0:
            self._account.generate_one_time_keys(count)
        return [self._signed(key_id, key, signing.ONE_TIME) for key_id, key in self._account.one_time_keys.items()]

    def new_fallback_key(self) -> dict[str, str]:
        self._account.generate_fallback_key()
        key_id, key = next(iter(self._account.fallback_key.items()))
        return self._signed(key_id, key, signing.FALLBACK)

    def mark_published(self) -> None:
        self._account.mark_keys_as_published()

    def _signed(self, key_id: str, key: vz.Curve25519PublicKey, kind: str) -> dict[str, str]:
        public = key.to_base64()
        return {"key_id": key_id, "public_key": public, "signature": self.sign(kind, public)}

    def outbound_session(self, identity_curve25519: str, one_time_key: str) -> vz.Session:
        return self._account.create_outbound_session(
            vz.Curve25519PublicKey.from_base64(identity_curve25519),
            vz.Curve25519PublicKey.from_base64(one_time_key),
        )

    def inbound_session(self, identity_curve25519: str, body: bytes) -> tuple[vz.Session, bytes]:
        """Open a session from a pre-key message; consumes the one-time key it names."""
        try:
            pre = vz.AnyOlmMessage.from_parts(0, body).to_pre_key()
            return self._account.create_inbound_session(vz.Curve25519PublicKey.from_base64(identity_curve25519), pre)
        except (vz.SessionCreationException, vz.DecodeException, vz.KeyException) as exc:
            raise DecryptionFailed(str(exc)) from exc


def verify_key_signature(ed25519: str, kind: str, public_key: str, signature: str) -> bool:
    """Check a bundle key's signature; never trusts the relay to send well-formed keys."""
    try:
        # vodozemac panics (a BaseException) on an over-long key, so a hostile relay could crash us.
        if len(signing.decode_base64(ed25519, "identity_ed25519")) != 32:
            return False
        vz.Ed25519PublicKey.from_base64(ed25519).verify_signature(
            signing.signed_payload(kind, public_key), vz.Ed25519Signature.from_base64(signature)
        )
        return True
    except (vz.SignatureException, vz.KeyException, vz.DecodeException, ApiError):
        return False


def encrypt(session: vz.Session, plaintext: bytes) -> Encrypted:
    kind, body = session.encrypt(plaintext).to_parts()
    return Encrypted(kind, body)


def try_decrypt(session: vz.Session, kind: int, body: bytes) -> bytes | None:
    """Decrypt with this session, or ``None`` if the message belongs to another session."""
    try:
        message = vz.AnyOlmMessage.from_parts(kind, body)
        if kind == 0 and not session.session_matches(message.to_pre_key()):
            return None
        return session.decrypt(message)
    except (vz.OlmDecryptionException, vz.DecodeException):
        return None


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
