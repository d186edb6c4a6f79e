"""business sending: the service window each user opens, and the users a business reached outside one

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "business_windows",
        sa.Column("business_id", sa.String(length=36), nullable=False),
        sa.Column("user_account_id", sa.String(length=36), nullable=False),
        sa.Column("last_user_message_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("business_id", "user_account_id"),
    )
    op.create_index("ix_business_windows_user", "business_windows", ["user_account_id"])
    op.create_table(
        "business_reach",
        sa.Column("business_id", sa.String(length=36), nullable=False),
        sa.Column("user_account_id", sa.String(length=36), nullable=False),
        sa.Column("reached_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("business_id", "user_account_id"),
    )
    op.create_index("ix_business_reach_business_time", "business_reach", ["business_id", "reached_at_ms"])
    op.create_index("ix_business_reach_user", "business_reach", ["user_account_id"])


def downgrade() -> None:
    op.drop_index("ix_business_reach_user", table_name="business_reach")
    op.drop_index("ix_business_reach_business_time", table_name="business_reach")
    op.drop_table("business_reach")
    op.drop_index("ix_business_windows_user", table_name="business_windows")
    op.drop_table("business_windows")
