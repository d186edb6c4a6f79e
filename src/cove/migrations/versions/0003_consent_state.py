"""consent: published policies, per-account consent state, served notices; rollout columns on accounts

Revision ID: 0003
Revises: 0002
"""

import hashlib

import phonenumbers
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _bucket(account_id: str) -> int:
    # The same rule as cove.accounts.cohort.bucket, frozen here as migrations must not import app code.
    return int.from_bytes(hashlib.sha256(account_id.encode()).digest()[:8], "big") % 100


def upgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("rollout_bucket", sa.SmallInteger(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("calling_code", sa.Integer(), nullable=False, server_default="0"))
    accounts = sa.table(
        "accounts",
        sa.column("id", sa.String),
        sa.column("phone_number", sa.String),
        sa.column("rollout_bucket", sa.SmallInteger),
        sa.column("calling_code", sa.Integer),
    )
    conn = op.get_bind()
    for row in conn.execute(sa.select(accounts.c.id, accounts.c.phone_number)).all():
        conn.execute(
            accounts.update()
            .where(accounts.c.id == row.id)
            .values(
                rollout_bucket=_bucket(row.id),
                calling_code=phonenumbers.parse(row.phone_number).country_code,
            )
        )

    op.create_table(
        "consent_policies",
        sa.Column("version", sa.String(length=40), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("text_hash", sa.String(length=64), nullable=False),
        sa.Column("effective_ms", sa.BigInteger(), nullable=False),
        sa.Column("published_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("version"),
    )
    op.create_table(
        "consent_accounts",
        sa.Column("account_id", sa.String(length=36), nullable=False),
        sa.Column("policy_version", sa.String(length=40), nullable=False),
        sa.Column("accepted_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("age_bracket", sa.String(length=10), nullable=False),
        sa.Column("text_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("account_id"),
    )
    op.create_index("ix_consent_accounts_version", "consent_accounts", ["policy_version"])
    op.create_table(
        "consent_purposes",
        sa.Column("account_id", sa.String(length=36), nullable=False),
        sa.Column("policy_version", sa.String(length=40), nullable=False),
        sa.Column("purpose_id", sa.String(length=40), nullable=False),
        sa.Column("choice", sa.String(length=3), nullable=True),
        sa.Column("chosen_at_ms", sa.BigInteger(), nullable=True),
        sa.Column("method", sa.String(length=20), nullable=True),
        sa.Column("objected_at_ms", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("account_id", "policy_version", "purpose_id"),
    )
    op.create_index("ix_consent_purposes_purpose", "consent_purposes", ["policy_version", "purpose_id", "choice"])
    op.create_table(
        "consent_served",
        sa.Column("account_id", sa.String(length=36), nullable=False),
        sa.Column("policy_version", sa.String(length=40), nullable=False),
        sa.Column("text_hash", sa.String(length=64), nullable=False),
        sa.Column("served_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("account_id", "policy_version"),
    )


def downgrade() -> None:
    op.drop_table("consent_served")
    op.drop_index("ix_consent_purposes_purpose", table_name="consent_purposes")
    op.drop_table("consent_purposes")
    op.drop_index("ix_consent_accounts_version", table_name="consent_accounts")
    op.drop_table("consent_accounts")
    op.drop_table("consent_policies")
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("calling_code")
        batch.drop_column("rollout_bucket")
