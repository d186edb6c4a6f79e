"""Operators' passwords: scrypt (RFC 7914) from the standard library, a random salt each, compared in constant time.

A stored hash names its parameters (``scrypt$n$r$p$salt$hash``), so raising the cost later leaves older hashes
readable. n=2**14, r=8 (the parameters RFC 7914 gives for interactive logins) take 16 MiB and about 0.1-0.25 s
per check on one core: slow for a guesser holding a copy of the database, fast enough for a login (and failed
logins are limited anyway, cove.console.throttle).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

SCHEME = "scrypt"
N, R, P = 2**14, 8, 1
SALT_BYTES = 16
KEY_BYTES = 32
MIN_LENGTH = 12
MAX_LENGTH = 1024  # scrypt reads the whole password: an unbounded one is an easy way to burn the CPU


class WeakPassword(ValueError):
    """A password refused before it is stored (too short or too long)."""


def check_strength(password: str) -> None:
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"the password needs at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise WeakPassword(f"the password may have at most {MAX_LENGTH} characters")


def _derive(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=256 * n * r, dklen=KEY_BYTES)


def hash_password(password: str) -> str:
    check_strength(password)
    salt = secrets.token_bytes(SALT_BYTES)
    return f"{SCHEME}${N}${R}${P}${salt.hex()}${_derive(password, salt, N, R, P).hex()}"


def verify_password(password: str, stored: str | None) -> bool:
    """Whether ``password`` matches ``stored``; with ``stored`` None (no such operator) the same work is done
    against a dummy, so the answer's timing does not tell which operator names exist."""
    if len(password) > MAX_LENGTH:
        return False
    try:
        scheme, n, r, p, salt, expected = (stored or _DUMMY).split("$")
        if scheme != SCHEME:
            return False
        derived = _derive(password, bytes.fromhex(salt), int(n), int(r), int(p))
    except ValueError:
        return False  # a hash this version cannot read matches nothing
    return hmac.compare_digest(derived, bytes.fromhex(expected)) and stored is not None


_DUMMY = f"{SCHEME}${N}${R}${P}${'00' * SALT_BYTES}${'00' * KEY_BYTES}"
