"""business retention: indexes on the times the business sweep deletes by (cove.business.upkeep), so that the
sweep each minute reads only what it deletes

Revision ID: 0019
Revises: 0017
"""

from alembic import op

revision = "0019"
down_revision = "0017"
branch_labels = None
depends_on = None

INDEXES = (
    ("ix_business_events_at", "business_events", "at_ms"),
    ("ix_business_marketing_at", "business_marketing", "at_ms"),
    ("ix_business_feedback_at", "business_feedback", "at_ms"),
    ("ix_business_reach_time", "business_reach", "reached_at_ms"),
)


def upgrade() -> None:
    for name, table, column in INDEXES:
        op.create_index(name, table, [column])


def downgrade() -> None:
    for name, table, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
