"""business blocks: the users a business blocked (its Block Users API)

Revision ID: 0020
Revises: 0017
"""

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "business_blocks",
        sa.Column("business_id", sa.String(length=36), nullable=False),
        sa.Column("user_account_id", sa.String(length=36), nullable=False),
        sa.Column("blocked_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("business_id", "user_account_id"),
    )
    op.create_index("ix_business_blocks_user", "business_blocks", ["user_account_id"])


def downgrade() -> None:
    op.drop_index("ix_business_blocks_user", table_name="business_blocks")
    op.drop_table("business_blocks")
