"""The relay's side of proof-of-work challenges: seeds it can check without storing them.

A seed names its purpose (``registration``, ``sending``), who is challenged (a phone number, an account), the
difficulty and an expiry, and carries an HMAC of all four under the relay's secret. So any relay process of a
fleet can check an answer, and a seed solved for one number or account is worth nothing for another. The rules
of when to challenge and how hard are the callers' (registration gate, actions); the work itself is
cove.protocol.challenge, which the SDK shares.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from cove.errors import ApiError
from cove.protocol import challenge

TTL_MS = 10 * 60_000


@dataclass(frozen=True)
class Answer:
    seed: str
    nonce: str


def _mac(secret: bytes, purpose: str, subject: str, bits: int, expires_ms: int, salt: str) -> str:
    text = f"{purpose}|{subject}|{bits}|{expires_ms}|{salt}".encode()
    return hmac.new(secret, text, hashlib.sha256).hexdigest()[:32]


def issue(secret: bytes, purpose: str, subject: str, bits: int, now_ms: int) -> dict[str, Any]:
    """A fresh challenge, as the client receives it in a 428's ``challenge``."""
    expires = now_ms + TTL_MS
    salt = secrets.token_hex(8)
    seed = f"{purpose}.{bits}.{expires}.{salt}.{_mac(secret, purpose, subject, bits, expires, salt)}"
    return {
        "type": "proof_of_work",
        "algorithm": challenge.ALGORITHM,
        "seed": seed,
        "bits": bits,
        "expires_at": expires,
    }


def verify(secret: bytes, purpose: str, subject: str, answer: Answer, now_ms: int) -> bool:
    """Whether ``answer`` solves a challenge this relay set for this purpose and subject, before it expired."""
    parts = answer.seed.split(".")
    if len(parts) != 5 or parts[0] != purpose or not parts[1].isdigit() or not parts[2].isdigit():
        return False
    bits, expires, salt, mac = int(parts[1]), int(parts[2]), parts[3], parts[4]
    if expires < now_ms or not hmac.compare_digest(mac, _mac(secret, purpose, subject, bits, expires, salt)):
        return False
    return challenge.check(answer.seed, bits, answer.nonce)


def required(secret: bytes, purpose: str, subject: str, bits: int, now_ms: int, why: str) -> ApiError:
    """The 428 that asks for work: ``why`` tells the person, the challenge tells their client."""
    return ApiError(428, "challenge_required", why, challenge=issue(secret, purpose, subject, bits, now_ms))
