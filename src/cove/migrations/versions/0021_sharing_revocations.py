"""sharing revocations: each revocation a batch carried, per account, and when its recipient acknowledged it

Revision ID: 0021
Revises: 0020
"""

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sharing_revocations",
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.String(length=36), nullable=False),
        sa.Column("recipient", sa.String(length=40), nullable=False),
        sa.Column("purpose", sa.String(length=40), nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("batch_id", sa.String(length=80), nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.Column("acked_at_ms", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("event_id"),
    )
    op.create_index("ix_sharing_revocations_account", "sharing_revocations", ["account_id", "at_ms"])
    op.create_index("ix_sharing_revocations_batch", "sharing_revocations", ["batch_id"])
    op.create_index("ix_sharing_revocations_at", "sharing_revocations", ["at_ms"])


def downgrade() -> None:
    op.drop_index("ix_sharing_revocations_at", table_name="sharing_revocations")
    op.drop_index("ix_sharing_revocations_batch", table_name="sharing_revocations")
    op.drop_index("ix_sharing_revocations_account", table_name="sharing_revocations")
    op.drop_table("sharing_revocations")
