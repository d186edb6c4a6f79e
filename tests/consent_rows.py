"""The rows of ``consent_accounts`` and ``consent_purposes`` that hold a population's consent state, as the consent
service writes them: accounts that accepted a version, and each purpose's state under that version."""

from __future__ import annotations

from cove.consent.decision import AccountConsent


def account_rows(people: list[AccountConsent]) -> list[dict]:
    return [
        {
            "account_id": c.account_id,
            "policy_version": c.policy_version,
            "accepted_at_ms": c.accepted_at_ms,
            "age_bracket": c.age_bracket.value,
            "text_hash": "h",
        }
        for c in people
        if c.policy_version is not None
    ]


def purpose_rows(people: list[AccountConsent]) -> list[dict]:
    return [
        {
            "account_id": c.account_id,
            "policy_version": c.policy_version,
            "purpose_id": purpose_id,
            "choice": s.choice.value if s.choice else None,
            "chosen_at_ms": s.chosen_at_ms if s.choice else None,
            "objected_at_ms": s.objected_at_ms,
        }
        for c in people
        if c.policy_version is not None
        for purpose_id, s in c.purposes.items()
    ]
