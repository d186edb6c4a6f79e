"""safety actions: the graduated steps taken on accounts (throttle, challenge, restrict, ban) with their reason
codes, expiry, lifting and review, and the appeals against them

Revision ID: 0017
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "safety_actions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("account_id", sa.String(length=36), nullable=False),
        sa.Column("step", sa.String(length=10), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=False),
        sa.Column("source", sa.String(length=10), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("expires_at_ms", sa.BigInteger(), nullable=True),
        sa.Column("lifted_at_ms", sa.BigInteger(), nullable=True),
        sa.Column("lifted_by", sa.String(length=20), nullable=True),
        sa.Column("review", sa.String(length=10), nullable=False),
        sa.Column("note", sa.String(length=1000), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_safety_actions_account", "safety_actions", ["account_id", "lifted_at_ms"])
    op.create_index("ix_safety_actions_review", "safety_actions", ["review"])
    op.create_table(
        "safety_appeals",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("account_id", sa.String(length=36), nullable=False),
        sa.Column("open_for", sa.String(length=36), nullable=True),
        sa.Column("phone_number", sa.String(length=20), nullable=True),
        sa.Column("message", sa.String(length=1000), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("decided_at_ms", sa.BigInteger(), nullable=True),
        sa.Column("decided_by", sa.String(length=20), nullable=True),
        sa.Column("note", sa.String(length=1000), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("open_for"),
    )
    op.create_index("ix_safety_appeals_account", "safety_appeals", ["account_id"])


def downgrade() -> None:
    op.drop_index("ix_safety_appeals_account", table_name="safety_appeals")
    op.drop_table("safety_appeals")
    op.drop_index("ix_safety_actions_review", table_name="safety_actions")
    op.drop_index("ix_safety_actions_account", table_name="safety_actions")
    op.drop_table("safety_actions")
