"""Per-device bearer tokens: random, shown once, stored only as a SHA-256 digest; they lapse when left unused.

A token's use is the device's last seen (cove.accounts.presence, refreshed at most once an hour), so
expiring idle tokens costs no write per request.
"""

from __future__ import annotations

import hashlib
import secrets


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def idle_expired(last_seen_at_ms: int, now_ms: int, idle_ms: int) -> bool:
    return now_ms - last_seen_at_ms > idle_ms
