"""Consent tables: published policies, and per-account state written only when a user is served or decides.

The full history of every act lives in the ledger (cove.consent.ledger_storage); these tables hold the
current state the decision and the export predicate read.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, String, Table, Text, delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from cove.consent.decision import AccountConsent, AgeBracket, PurposeState
from cove.consent.policy import Choice, Policy
from cove.db import metadata

consent_policies = Table(
    "consent_policies",
    metadata,
    Column("version", String(40), primary_key=True),
    Column("body", Text, nullable=False),  # the policy as JSON: the exact declaration that was published
    Column("text_hash", String(64), nullable=False),
    Column("effective_ms", BigInteger, nullable=False),
    Column("published_at_ms", BigInteger, nullable=False),
)

consent_accounts = Table(
    "consent_accounts",
    metadata,
    Column("account_id", String(36), primary_key=True),
    Column("policy_version", String(40), nullable=False),
    Column("accepted_at_ms", BigInteger, nullable=False),
    Column("age_bracket", String(10), nullable=False),
    Column("text_hash", String(64), nullable=False),
    Index("ix_consent_accounts_version", "policy_version"),
    Index("ix_consent_accounts_accepted", "accepted_at_ms"),  # migration 0005: incremental exports
)

consent_purposes = Table(
    "consent_purposes",
    metadata,
    Column("account_id", String(36), primary_key=True),
    Column("policy_version", String(40), primary_key=True),
    Column("purpose_id", String(40), primary_key=True),
    Column("choice", String(3), nullable=True),
    Column("chosen_at_ms", BigInteger, nullable=True),
    Column("method", String(20), nullable=True),
    Column("objected_at_ms", BigInteger, nullable=True),
    Index("ix_consent_purposes_purpose", "policy_version", "purpose_id", "choice"),
    Index("ix_consent_purposes_chosen", "chosen_at_ms"),  # migration 0005: incremental exports
    Index("ix_consent_purposes_objected", "objected_at_ms"),
)

consent_served = Table(
    "consent_served",
    metadata,
    Column("account_id", String(36), primary_key=True),
    Column("policy_version", String(40), primary_key=True),
    Column("text_hash", String(64), nullable=False),
    Column("served_at_ms", BigInteger, nullable=False),
)


async def load_policies(conn: AsyncConnection) -> list[Policy]:
    rows = await conn.execute(select(consent_policies.c.body).order_by(consent_policies.c.effective_ms))
    return [Policy.model_validate_json(row.body) for row in rows]


async def load_consent(conn: AsyncConnection, account_id: str) -> AccountConsent:
    account = (await conn.execute(select(consent_accounts).where(consent_accounts.c.account_id == account_id))).first()
    if account is None:
        return AccountConsent(account_id)
    rows = await conn.execute(
        select(consent_purposes).where(
            consent_purposes.c.account_id == account_id,
            consent_purposes.c.policy_version == account.policy_version,
        )
    )
    purposes = {
        r.purpose_id: PurposeState(Choice(r.choice) if r.choice else None, r.chosen_at_ms, r.objected_at_ms)
        for r in rows
    }
    return AccountConsent(
        account_id, account.policy_version, account.accepted_at_ms, AgeBracket(account.age_bracket), purposes
    )


async def forget_account(conn: AsyncConnection, account_id: str) -> None:
    """An account's deletion: its consent state goes (terms accepted, choices, notices served); the ledger,
    the proof of what it agreed to, stays (cove.accounts.deletion says why)."""
    for table in (consent_purposes, consent_served, consent_accounts):
        await conn.execute(delete(table).where(table.c.account_id == account_id))
