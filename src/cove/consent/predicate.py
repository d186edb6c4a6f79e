"""The decision compiled to SQL: select the accounts whose data may be used for a purpose, in the database.

Built from the same policy as :func:`cove.consent.decision.permitted`, clause for clause; a property-based
test generates populations and checks that both agree on every account. Execute with ``{"at_ms": t}``.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, ColumnElement, Select, and_, bindparam, false, literal, or_, select, true

from cove.consent.decision import DAY_MS, AgeBracket, effective_ms
from cove.consent.policy import Choice, LegalBasis, Policy
from cove.consent.storage import consent_accounts as a
from cove.consent.storage import consent_purposes as p

AT = bindparam("at_ms", type_=BigInteger)


def _choice_clause(policy: Policy, purpose_id: str) -> ColumnElement[bool]:
    purpose = policy.purpose(purpose_id)
    basis = purpose.legal_basis
    if basis in (LegalBasis.CONTRACT, LegalBasis.LEGAL_OBLIGATION):
        return true()
    if basis == LegalBasis.LEGITIMATE_INTEREST:
        if not purpose.objectable:
            return true()
        # Objections are few: an anti-join on them beats joining every account's purpose row.
        objected = select(p.c.account_id).where(
            p.c.policy_version == policy.version, p.c.purpose_id == purpose_id, p.c.objected_at_ms.is_not(None)
        )
        return a.c.account_id.not_in(objected)
    chose_in = p.c.choice == Choice.IN.value
    if purpose.default != Choice.IN:
        return chose_in
    undecided = p.c.choice.is_(None)
    if purpose.window_days:
        return or_(chose_in, and_(undecided, a.c.accepted_at_ms + purpose.window_days * DAY_MS <= AT))
    return or_(chose_in, undecided)


def permitted_clause(policy: Policy, purpose_id: str, recipient_id: str) -> ColumnElement[bool]:
    """WHERE clause over ``consent_accounts LEFT JOIN consent_purposes`` (see :func:`permitted_accounts`)."""
    try:
        purpose = policy.purpose(purpose_id)
    except KeyError:
        return false()
    if recipient_id not in purpose.recipients:
        return false()
    conditions = [
        a.c.policy_version == policy.version,
        a.c.accepted_at_ms <= AT,
        literal(effective_ms(policy), BigInteger) <= AT,
        _choice_clause(policy, purpose_id),
    ]
    if purpose.closed_to_minors:
        conditions.append(a.c.age_bracket == AgeBracket.ADULT.value)
    return and_(*conditions)


def permitted_accounts(policies: list[Policy], purpose_id: str, recipient_id: str) -> Select:
    """Account ids permitted under any published version."""
    clause = or_(*(permitted_clause(policy, purpose_id, recipient_id) for policy in policies)) if policies else false()
    if not any(_reads_choices(policy, purpose_id) for policy in policies):
        return select(a.c.account_id).where(clause)
    joined = a.outerjoin(
        p,
        and_(p.c.account_id == a.c.account_id, p.c.policy_version == a.c.policy_version, p.c.purpose_id == purpose_id),
    )
    return select(a.c.account_id).select_from(joined).where(clause)


def _reads_choices(policy: Policy, purpose_id: str) -> bool:
    """Whether the purpose's clause reads the account's choice row (consent, or no declared basis)."""
    try:
        return policy.purpose(purpose_id).legal_basis in (LegalBasis.CONSENT, None)
    except KeyError:
        return False
