"""What a user is shown: the layered notice of a policy, and which notice is due for an account."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from cove.consent import rollout
from cove.consent.decision import AccountConsent
from cove.consent.policy import Policy


def layered(policy: Policy) -> dict[str, Any]:
    """First layer (summary and every purpose with its recipients, basis and choice), then the full text."""
    return {
        "version": policy.version,
        "title": policy.title,
        "effective": policy.effective.isoformat(),
        "summary": policy.summary,
        "purposes": [
            {
                "id": p.id,
                "title": p.title,
                "description": p.description,
                "legal_basis": p.legal_basis.value if p.legal_basis else None,
                "optional": p.optional,
                "default": p.default.value,
                "window_days": p.window_days,
                "data_categories": [c.value for c in p.data_categories],
                "recipients": [
                    {"name": policy.recipient(r).name, "role": policy.recipient(r).role} for r in p.recipients
                ],
                "retention_days": p.retention_days,
            }
            for p in policy.purposes
        ],
        "text": policy.text,
        "text_hash": policy.text_hash(),
    }


def due(
    policies: list[Policy], consent: AccountConsent, account_bucket: int, calling_code: int, now: datetime
) -> Policy | None:
    """The newest policy whose rollout has reached the account and whose terms it has not accepted."""
    accepted = next((p for p in policies if p.version == consent.policy_version), None)
    for policy in sorted(policies, key=lambda p: p.effective, reverse=True):
        if accepted is not None and policy.effective <= accepted.effective:
            return None
        if rollout.opened_wave(policy, account_bucket, calling_code, now) is not None:
            return policy
    return None
