"""An account's fixed cohort, stored at registration: its hash bucket (0-99, from its id) and its number's
calling code. A gradual rollout (a policy's notice waves, cove.consent.rollout) is then a query, not a write to
every account."""

from __future__ import annotations

import hashlib

import phonenumbers


def bucket(account_id: str) -> int:
    return int.from_bytes(hashlib.sha256(account_id.encode()).digest()[:8], "big") % 100


def calling_code(phone_number: str) -> int:
    return phonenumbers.parse(phone_number).country_code
