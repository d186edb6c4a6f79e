"""Verification codes as pure rules: generation, hashing, and what a submission or a resend may do.

A code is 6 digits, so it is stored only as an HMAC under the server secret (a plain hash of a
million possibilities is no protection), with an expiry and an attempt counter.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from cove.errors import ApiError

CODE_DIGITS = 6


def new_code() -> str:
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


REGISTER = "register"
CHANGE_NUMBER = "change_number"  # the account's owner proves the new number is theirs; such a code never registers
APPEAL = "appeal"  # a banned number proves it is theirs to appeal (cove.safety); such a code never registers


def hash_code(secret: bytes, phone_number: str, code: str, purpose: str = REGISTER) -> str:
    # The record remembers its purpose in its hash: a code sent to appeal, submitted to register, is a wrong code.
    text = f"{phone_number}:{code}" if purpose == REGISTER else f"{purpose}:{phone_number}:{code}"
    return hmac.new(secret, text.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class CodePolicy:
    ttl: timedelta
    max_attempts: int


@dataclass(frozen=True)
class PendingCode:
    phone_number: str
    code_hash: str
    expires_at: datetime
    attempts: int


def issue(phone_number: str, code_hash: str, now: datetime, policy: CodePolicy) -> PendingCode:
    """A fresh code for ``phone_number``; how many may be sent is cove.accounts.code_limits' business."""
    return PendingCode(phone_number, code_hash, now + policy.ttl, 0)


def check(pending: PendingCode | None, submitted_hash: str, now: datetime, policy: CodePolicy) -> PendingCode:
    """Judge a submitted code. Returns the record with the attempt counted; raises if it is not accepted.

    The attempt is counted before the comparison so that a caller who persists the returned record on
    failure (see :class:`WrongCode`) can never get more than ``max_attempts`` guesses.
    """
    if pending is None:
        raise ApiError(400, "no_code_requested", "no verification code was requested for this number")
    if pending.attempts >= policy.max_attempts:
        raise ApiError(429, "too_many_attempts", "too many wrong codes; request a new code")
    if now >= pending.expires_at:
        raise ApiError(400, "code_expired", "the verification code has expired; request a new one")
    counted = replace(pending, attempts=pending.attempts + 1)
    if not hmac.compare_digest(pending.code_hash, submitted_hash):
        left = policy.max_attempts - counted.attempts
        raise WrongCode(counted, left)
    return counted


class WrongCode(ApiError):
    def __init__(self, counted: PendingCode, attempts_left: int) -> None:
        super().__init__(
            400,
            "wrong_code",
            f"the verification code is wrong; {attempts_left} attempt(s) left",
            attempts_left=attempts_left,
        )
        self.counted = counted
