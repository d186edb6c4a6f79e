"""relay health: each relay process's figures per interval (connected devices, envelopes accepted and delivered,
delivery latency histogram, queue depth), for the operator; kept 7 days

Revision ID: 0022
Revises: 0020
"""

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "relay_health",
        sa.Column("process", sa.String(length=128), nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.Column("interval_ms", sa.Integer(), nullable=False),
        sa.Column("connected", sa.Integer(), nullable=False),
        sa.Column("accepted", sa.Integer(), nullable=False),
        sa.Column("delivered", sa.Integer(), nullable=False),
        sa.Column("latency", sa.Text(), nullable=False),
        sa.Column("p50_ms", sa.Integer(), nullable=True),
        sa.Column("p99_ms", sa.Integer(), nullable=True),
        sa.Column("queue_depth", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("process", "at_ms"),
    )
    op.create_index("relay_health_at", "relay_health", ["at_ms"])


def downgrade() -> None:
    op.drop_index("relay_health_at", table_name="relay_health")
    op.drop_table("relay_health")
