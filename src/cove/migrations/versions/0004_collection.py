"""collection: usage counters per day, safety verdicts, banned numbers; devices indexed by last change

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "usage_daily",
        sa.Column("account_id", sa.String(length=36), nullable=False),
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("messages_sent", sa.Integer(), nullable=False),
        sa.Column("messages_received", sa.Integer(), nullable=False),
        sa.Column("app_opens", sa.Integer(), nullable=False),
        sa.Column("updated_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("account_id", "day"),
    )
    op.create_index("ix_usage_daily_updated", "usage_daily", ["updated_at_ms"])
    op.create_table(
        "safety_verdicts",
        sa.Column("account_id", sa.String(length=36), nullable=False),
        sa.Column("reason_code", sa.String(length=40), nullable=False),
        sa.Column("banned_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("lifted_at_ms", sa.BigInteger(), nullable=True),
        sa.Column("updated_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("account_id"),
    )
    op.create_index("ix_safety_verdicts_banned", "safety_verdicts", ["banned_at_ms"])
    op.create_index("ix_safety_verdicts_updated", "safety_verdicts", ["updated_at_ms"])
    op.create_table(
        "banned_numbers",
        sa.Column("phone_number", sa.String(length=20), nullable=False),
        sa.Column("reason_code", sa.String(length=40), nullable=False),
        sa.Column("banned_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("account_id", sa.String(length=36), nullable=True),
        sa.PrimaryKeyConstraint("phone_number"),
    )
    op.create_index("ix_devices_updated", "devices", ["updated_at_ms"])


def downgrade() -> None:
    op.drop_index("ix_devices_updated", table_name="devices")
    op.drop_table("banned_numbers")
    op.drop_index("ix_safety_verdicts_updated", table_name="safety_verdicts")
    op.drop_index("ix_safety_verdicts_banned", table_name="safety_verdicts")
    op.drop_table("safety_verdicts")
    op.drop_index("ix_usage_daily_updated", table_name="usage_daily")
    op.drop_table("usage_daily")
