"""The one decision: may account A's data be used for purpose P by recipient R at time t?

Pure: it sees the policy the account accepted and the account's consent state, nothing else. The SQL
predicate in :mod:`cove.consent.predicate` is compiled from the same policy and must agree with this
function on every account (a property-based test checks that).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from cove.consent.policy import Choice, LegalBasis, Policy, Purpose

DAY_MS = 86_400_000


class AgeBracket(StrEnum):
    ADULT = "adult"
    MINOR = "minor"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class PurposeState:
    choice: Choice | None = None
    chosen_at_ms: int | None = None
    objected_at_ms: int | None = None


@dataclass(frozen=True)
class AccountConsent:
    account_id: str
    policy_version: str | None = None  # the version whose terms the account accepted
    accepted_at_ms: int | None = None
    age_bracket: AgeBracket = AgeBracket.UNKNOWN
    purposes: Mapping[str, PurposeState] = field(default_factory=dict)


def effective_ms(policy: Policy) -> int:
    return int(policy.effective.timestamp() * 1000)


def window_closes_ms(purpose: Purpose, accepted_at_ms: int) -> int | None:
    return accepted_at_ms + purpose.window_days * DAY_MS if purpose.window_days else None


def permitted(policy: Policy, consent: AccountConsent, purpose_id: str, recipient_id: str, at_ms: int) -> bool:
    """Default deny: every condition below must hold."""
    if consent.policy_version != policy.version or consent.accepted_at_ms is None:
        return False  # data collected under older terms keeps their promises (R5)
    if at_ms < consent.accepted_at_ms or at_ms < effective_ms(policy):
        return False
    try:
        purpose = policy.purpose(purpose_id)
    except KeyError:
        return False
    if recipient_id not in purpose.recipients:
        return False
    if purpose.closed_to_minors and consent.age_bracket != AgeBracket.ADULT:
        return False  # minors and undeclared ages never, whatever they tapped (R18)
    state = consent.purposes.get(purpose_id, PurposeState())
    basis = purpose.legal_basis
    if basis in (LegalBasis.CONTRACT, LegalBasis.LEGAL_OBLIGATION):
        return True
    if basis == LegalBasis.LEGITIMATE_INTEREST:
        return not (purpose.objectable and state.objected_at_ms is not None)
    # Consent, or a purpose that declares no basis (which the linter flags): the user's own act decides;
    # without one, the declared default, held back while a choice window is still open.
    if state.choice is not None:
        return state.choice == Choice.IN
    if purpose.default != Choice.IN:
        return False
    closes = window_closes_ms(purpose, consent.accepted_at_ms)
    return closes is None or at_ms >= closes
