"""fleet events: what one relay process tells the others (an account deleted, devices logged out, a policy
published), kept for an hour so that a process that missed it on the bus reads it

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "fleet_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_id"),
    )
    op.create_index("fleet_events_at", "fleet_events", ["at_ms"])


def downgrade() -> None:
    op.drop_index("fleet_events_at", table_name="fleet_events")
    op.drop_table("fleet_events")
