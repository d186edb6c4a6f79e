"""sharing: account ordinals, batch chain, held sets, disclosure log, erasure tracking

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sharing_subjects",
        sa.Column("ordinal", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("account_id", sa.String(length=36), nullable=False),
        sa.PrimaryKeyConstraint("ordinal"),
        sa.UniqueConstraint("account_id"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "sharing_batches",
        sa.Column("batch_id", sa.String(length=80), nullable=False),
        sa.Column("recipient", sa.String(length=40), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("as_of_ms", sa.BigInteger(), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("manifest", sa.Text(), nullable=False),
        sa.Column("signature", sa.String(length=100), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("revocations", sa.BigInteger(), nullable=False),
        sa.Column("published_nats_at_ms", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("batch_id"),
        sa.UniqueConstraint("recipient", "sequence", name="uq_sharing_batches_recipient_sequence"),
    )
    op.create_table(
        "sharing_held",
        sa.Column("recipient", sa.String(length=40), nullable=False),
        sa.Column("purpose", sa.String(length=40), nullable=False),
        sa.Column("chunk", sa.BigInteger(), nullable=False),
        sa.Column("bitmap", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("recipient", "purpose", "chunk"),
    )
    op.create_table(
        "sharing_disclosures",
        sa.Column("recipient", sa.String(length=40), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("purpose", sa.String(length=40), nullable=False),
        sa.Column("chunk", sa.BigInteger(), nullable=False),
        sa.Column("bitmap", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("recipient", "sequence", "purpose", "chunk"),
    )
    op.create_index("ix_sharing_disclosures_chunk", "sharing_disclosures", ["chunk", "recipient", "sequence"])
    op.create_table(
        "sharing_erasures",
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("account_id", sa.String(length=36), nullable=False),
        sa.Column("ordinal", sa.BigInteger(), nullable=True),
        sa.Column("recipient", sa.String(length=40), nullable=False),
        sa.Column("requested_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("sent_batch_id", sa.String(length=80), nullable=True),
        sa.Column("acked_at_ms", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("event_id"),
    )
    op.create_index("ix_sharing_erasures_pending", "sharing_erasures", ["recipient", "acked_at_ms"])
    # What an incremental export asks: whose consent, acceptance or objection changed since the last batch.
    op.create_index("ix_consent_accounts_accepted", "consent_accounts", ["accepted_at_ms"])
    op.create_index("ix_consent_purposes_chosen", "consent_purposes", ["chosen_at_ms"])
    op.create_index("ix_consent_purposes_objected", "consent_purposes", ["objected_at_ms"])


def downgrade() -> None:
    op.drop_index("ix_consent_purposes_objected", table_name="consent_purposes")
    op.drop_index("ix_consent_purposes_chosen", table_name="consent_purposes")
    op.drop_index("ix_consent_accounts_accepted", table_name="consent_accounts")
    op.drop_index("ix_sharing_erasures_pending", table_name="sharing_erasures")
    op.drop_table("sharing_erasures")
    op.drop_index("ix_sharing_disclosures_chunk", table_name="sharing_disclosures")
    op.drop_table("sharing_disclosures")
    op.drop_table("sharing_held")
    op.drop_table("sharing_batches")
    op.drop_table("sharing_subjects")
