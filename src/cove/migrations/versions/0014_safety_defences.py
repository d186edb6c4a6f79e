"""safety defences: blocks, acceptances of message requests, users' reports and the messages they attached

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "safety_blocks",
        sa.Column("owner_account_id", sa.String(length=36), nullable=False),
        sa.Column("blocked_account_id", sa.String(length=36), nullable=False),
        sa.Column("since_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("owner_account_id", "blocked_account_id"),
    )
    op.create_index("ix_safety_blocks_blocked", "safety_blocks", ["blocked_account_id"])
    op.create_table(
        "safety_acceptances",
        sa.Column("owner_account_id", sa.String(length=36), nullable=False),
        sa.Column("peer_account_id", sa.String(length=36), nullable=False),
        sa.Column("since_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("owner_account_id", "peer_account_id"),
    )
    op.create_index("ix_safety_acceptances_peer", "safety_acceptances", ["peer_account_id"])
    op.create_table(
        "safety_reports",
        sa.Column("report_id", sa.String(length=32), nullable=False),
        sa.Column("reporter_account_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("subject_account_id", sa.String(length=36), nullable=True),
        sa.Column("group_id", sa.String(length=32), nullable=True),
        sa.Column("client_message_ids", sa.JSON(), nullable=False),
        sa.Column("attached", sa.Integer(), nullable=False),
        sa.Column("contact", sa.Boolean(), nullable=False),
        sa.Column("blocked", sa.Boolean(), nullable=False),
        sa.Column("left_group", sa.Boolean(), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("report_id"),
    )
    op.create_index("ix_safety_reports_subject", "safety_reports", ["subject_account_id", "created_at_ms"])
    op.create_index("ix_safety_reports_reporter", "safety_reports", ["reporter_account_id", "created_at_ms"])
    op.create_table(
        "safety_report_messages",
        sa.Column("report_id", sa.String(length=32), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("sender_account_id", sa.String(length=36), nullable=False),
        sa.Column("client_message_id", sa.String(length=64), nullable=False),
        sa.Column("sent_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("report_id", "position"),
    )


def downgrade() -> None:
    op.drop_table("safety_report_messages")
    op.drop_index("ix_safety_reports_reporter", table_name="safety_reports")
    op.drop_index("ix_safety_reports_subject", table_name="safety_reports")
    op.drop_table("safety_reports")
    op.drop_index("ix_safety_acceptances_peer", table_name="safety_acceptances")
    op.drop_table("safety_acceptances")
    op.drop_index("ix_safety_blocks_blocked", table_name="safety_blocks")
    op.drop_table("safety_blocks")
