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


class Why(StrEnum):
    """Why a purpose is on or off for an account now: the decision, with its reason (shown to the user)."""

    NOT_ACCEPTED = "not_accepted"  # the account has not accepted this version's terms
    NOT_YET = "not_yet_effective"  # before the acceptance or the policy's effective date
    UNKNOWN_PURPOSE = "unknown_purpose"
    CLOSED_TO_MINORS = "closed_to_minors"
    CONTRACT = "contract"
    LEGAL_OBLIGATION = "legal_obligation"
    LEGITIMATE_INTEREST = "legitimate_interest"
    OBJECTED = "objected"
    CHOSE_IN = "chose_in"
    CHOSE_OUT = "chose_out"
    OFF_BY_DEFAULT = "off_by_default"
    WINDOW_OPEN = "window_open"  # on by default, held back while the choice window is still open
    ON_BY_DEFAULT = "on_by_default"


ALLOWING = frozenset({Why.CONTRACT, Why.LEGAL_OBLIGATION, Why.LEGITIMATE_INTEREST, Why.CHOSE_IN, Why.ON_BY_DEFAULT})


def why(policy: Policy, consent: AccountConsent, purpose_id: str, at_ms: int) -> Why:
    """Default deny: the purpose is on only for a reason in ALLOWING, every condition below holding."""
    if consent.policy_version != policy.version or consent.accepted_at_ms is None:
        return Why.NOT_ACCEPTED  # data collected under older terms keeps their promises (R5)
    if at_ms < consent.accepted_at_ms or at_ms < effective_ms(policy):
        return Why.NOT_YET
    try:
        purpose = policy.purpose(purpose_id)
    except KeyError:
        return Why.UNKNOWN_PURPOSE
    if purpose.closed_to_minors and consent.age_bracket != AgeBracket.ADULT:
        return Why.CLOSED_TO_MINORS  # minors and undeclared ages never, whatever they tapped (R18)
    state = consent.purposes.get(purpose_id, PurposeState())
    basis = purpose.legal_basis
    if basis == LegalBasis.CONTRACT:
        return Why.CONTRACT
    if basis == LegalBasis.LEGAL_OBLIGATION:
        return Why.LEGAL_OBLIGATION
    if basis == LegalBasis.LEGITIMATE_INTEREST:
        objected = purpose.objectable and state.objected_at_ms is not None
        return Why.OBJECTED if objected else Why.LEGITIMATE_INTEREST
    # Consent, or a purpose that declares no basis (which the linter flags): the user's own act decides;
    # without one, the declared default, held back while a choice window is still open.
    if state.choice is not None:
        return Why.CHOSE_IN if state.choice == Choice.IN else Why.CHOSE_OUT
    if purpose.default != Choice.IN:
        return Why.OFF_BY_DEFAULT
    closes = window_closes_ms(purpose, consent.accepted_at_ms)
    return Why.ON_BY_DEFAULT if closes is None or at_ms >= closes else Why.WINDOW_OPEN


def permitted(policy: Policy, consent: AccountConsent, purpose_id: str, recipient_id: str, at_ms: int) -> bool:
    try:
        recipients = policy.purpose(purpose_id).recipients
    except KeyError:
        return False
    return recipient_id in recipients and why(policy, consent, purpose_id, at_ms) in ALLOWING
