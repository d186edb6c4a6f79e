"""The decision compiled to SQL: select the accounts whose data may be used for a purpose, in the database.

Built from the same policy as :func:`cove.consent.decision.permitted`, clause for clause; a property-based
test generates populations and checks that both agree on every account. Execute with ``{"at_ms": t}``.

:func:`permitted_accounts` answers one purpose; :func:`permitted_flags` evaluates the same clauses for several
purposes in one pass over the consent state, one boolean column each (an export reads that state once), and
:func:`rows_read` says which choice rows that pass can read.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import BigInteger, ColumnElement, FromClause, Select, and_, bindparam, false, literal, or_, select, true

from cove.consent.decision import DAY_MS, AgeBracket, effective_ms
from cove.consent.policy import Choice, LegalBasis, Policy
from cove.consent.storage import consent_accounts as a
from cove.consent.storage import consent_purposes as p

AT = bindparam("at_ms", type_=BigInteger)


def _choice_clause(policy: Policy, purpose_id: str, choices: FromClause) -> ColumnElement[bool]:
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
    chose_in = choices.c.choice == Choice.IN.value
    if purpose.default != Choice.IN:
        return chose_in
    undecided = choices.c.choice.is_(None)
    if purpose.window_days:
        return or_(chose_in, and_(undecided, a.c.accepted_at_ms + purpose.window_days * DAY_MS <= AT))
    return or_(chose_in, undecided)


def permitted_clause(
    policy: Policy, purpose_id: str, recipient_id: str, choices: FromClause = p
) -> ColumnElement[bool]:
    """WHERE clause over ``consent_accounts LEFT JOIN consent_purposes`` (see :func:`permitted_accounts`);
    ``choices`` is the joined copy of ``consent_purposes`` that holds this purpose's row."""
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
        _choice_clause(policy, purpose_id, choices),
    ]
    if purpose.closed_to_minors:
        conditions.append(a.c.age_bracket == AgeBracket.ADULT.value)
    return and_(*conditions)


def permitted_accounts(policies: list[Policy], purpose_id: str, recipient_id: str) -> Select:
    """Account ids permitted under any published version."""
    clause = or_(*(permitted_clause(policy, purpose_id, recipient_id) for policy in policies)) if policies else false()
    if not any(_reads_choices(policy, purpose_id, recipient_id) for policy in policies):
        return select(a.c.account_id).where(clause)
    return select(a.c.account_id).select_from(_join_choices(a, p, purpose_id)).where(clause)


def permitted_flags(versions: Sequence[tuple[str, Policy, str]], recipient_id: str) -> Select:
    """One pass for several purposes: ``account_id`` and, per ``(label, policy, purpose_id)``, a boolean column
    ``label`` that is :func:`permitted_clause`; one row per account permitted under at least one of them.

    Each purpose whose clause reads choices gets its own copy of ``consent_purposes``, joined on the purpose's
    row for the version the account accepted, so every account is read once whatever the number of purposes.
    """
    if not versions:
        raise ValueError("permitted_flags needs at least one purpose")
    joined, copies = a, {}
    for _, policy, purpose_id in versions:
        if _reads_choices(policy, purpose_id, recipient_id) and purpose_id not in copies:
            copies[purpose_id] = p.alias(f"choices_{purpose_id}")
            joined = _join_choices(joined, copies[purpose_id], purpose_id)
    clauses = {
        label: permitted_clause(policy, purpose_id, recipient_id, copies.get(purpose_id, p))
        for label, policy, purpose_id in versions
    }
    columns = [clause.label(label) for label, clause in clauses.items()]
    return select(a.c.account_id, *columns).select_from(joined).where(or_(*clauses.values()))


def rows_read(versions: Sequence[tuple[str, Policy, str]], recipient_id: str) -> ColumnElement[bool]:
    """The ``consent_purposes`` rows that :func:`permitted_flags` can tell from no row at all: an export reads only
    these. Per purpose, by its clause: an objectable legitimate interest reads objections; a consent purpose that is
    off by default reads choices to opt in; one that is on by default reads every choice made; the others nothing.
    """
    kept = []
    for _, policy, purpose_id in versions:
        try:
            purpose = policy.purpose(purpose_id)
        except KeyError:
            continue
        if recipient_id not in purpose.recipients:
            continue
        if purpose.legal_basis == LegalBasis.LEGITIMATE_INTEREST and purpose.objectable:
            telling = p.c.objected_at_ms.is_not(None)
        elif _reads_choices(policy, purpose_id, recipient_id):
            telling = p.c.choice.is_not(None) if purpose.default == Choice.IN else p.c.choice == Choice.IN.value
        else:
            continue
        kept.append(and_(p.c.policy_version == policy.version, p.c.purpose_id == purpose_id, telling))
    return or_(*kept) if kept else false()


def _join_choices(joined: FromClause, choices: FromClause, purpose_id: str) -> FromClause:
    return joined.outerjoin(
        choices,
        and_(
            choices.c.account_id == a.c.account_id,
            choices.c.policy_version == a.c.policy_version,
            choices.c.purpose_id == purpose_id,
        ),
    )


def _reads_choices(policy: Policy, purpose_id: str, recipient_id: str) -> bool:
    """Whether the purpose's clause reads the account's choice row (consent, or no declared basis)."""
    try:
        purpose = policy.purpose(purpose_id)
    except KeyError:
        return False
    return recipient_id in purpose.recipients and purpose.legal_basis in (LegalBasis.CONSENT, None)
