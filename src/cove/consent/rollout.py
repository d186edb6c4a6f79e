"""Who must see a policy's notice when: waves by account-hash bucket and calling code.

Nothing is written per account to roll a policy out: whether a notice is due is computed from the
account's fixed bucket (0-99, from its id) and calling code (cove.accounts.cohort), the waves and the clock.
"""

from __future__ import annotations

from datetime import datetime

from cove.consent.policy import Policy, Wave


def in_wave(wave: Wave, account_bucket: int, account_calling_code: int) -> bool:
    return account_bucket < wave.percent and (not wave.country_codes or account_calling_code in wave.country_codes)


def opened_wave(policy: Policy, account_bucket: int, account_calling_code: int, now: datetime) -> Wave | None:
    """The first started wave that includes the account, if any."""
    for wave in policy.rollout.waves:
        if wave.start <= now and in_wave(wave, account_bucket, account_calling_code):
            return wave
    return None
