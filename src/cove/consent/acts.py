"""What a user may do about a purpose, as pure rules: choose, withdraw, object.

Each rule returns the purpose's new state or raises the API error that refuses the act; the writer in
:mod:`cove.consent.writer` applies the result and its ledger entry in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from cove.clock import to_datetime
from cove.consent.decision import AccountConsent, PurposeState, window_closes_ms
from cove.consent.policy import Choice, LegalBasis, Policy, Purpose
from cove.errors import ApiError

CHOICE, WITHDRAWAL, OBJECTION = "choice", "withdrawal", "objection"


@dataclass(frozen=True)
class Act:
    account_id: str
    purpose_id: str
    kind: str  # CHOICE, WITHDRAWAL or OBJECTION
    choice: Choice | None = None
    context: dict[str, Any] = field(default_factory=dict)

    @property
    def method(self) -> str:
        if self.kind == OBJECTION:
            return "object"
        if self.kind == WITHDRAWAL:
            return "withdraw"
        return "opt_in" if self.choice == Choice.IN else "opt_out"


def _purpose(policy: Policy, purpose_id: str) -> Purpose:
    try:
        return policy.purpose(purpose_id)
    except KeyError:
        raise ApiError(404, "unknown_purpose", f"policy {policy.version} has no purpose {purpose_id!r}") from None


def apply(policy: Policy | None, consent: AccountConsent, act: Act, now_ms: int) -> PurposeState:
    """The purpose's state after the act, or the refusal."""
    if policy is None or consent.accepted_at_ms is None:
        raise ApiError(409, "terms_not_accepted", "accept the terms of the current policy first")
    purpose = _purpose(policy, act.purpose_id)
    state = consent.purposes.get(act.purpose_id, PurposeState())
    if act.kind == OBJECTION:
        if purpose.legal_basis != LegalBasis.LEGITIMATE_INTEREST:
            raise ApiError(400, "not_objectable", f"{purpose.title!r} does not rest on a legitimate interest")
        if not purpose.objectable:
            raise ApiError(
                400,
                "not_objectable",
                f"policy {policy.version} declares {purpose.title!r} strictly necessary: it takes no objection",
            )
        return replace(state, objected_at_ms=now_ms)
    if purpose.legal_basis not in (LegalBasis.CONSENT, None):
        raise ApiError(
            400,
            "not_a_choice",
            f"{purpose.title!r} rests on {purpose.legal_basis.value.replace('_', ' ')}, not on consent"
            + ("; you can object to it instead" if purpose.objectable else ""),
        )
    closes = window_closes_ms(purpose, consent.accepted_at_ms)
    if closes is not None and now_ms > closes:
        deadline = to_datetime(closes).isoformat()
        raise ApiError(
            409,
            "choice_window_closed",
            f"policy {policy.version} allowed changing {purpose.title!r} only until {deadline}",
            deadline=deadline,
        )
    return replace(state, choice=act.choice if act.kind == CHOICE else Choice.OUT, chosen_at_ms=now_ms)
