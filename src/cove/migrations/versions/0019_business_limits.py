"""business limits: template pacing (each paced template's episode, and the sends held until its feedback is
in), and indexes on the times the business sweep deletes by (cove.business.upkeep), so that the sweep each
minute reads only what it deletes

Revision ID: 0019
Revises: 0017
"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
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
    op.create_table(
        "business_pacing",
        sa.Column("template_id", sa.String(length=36), nullable=False),
        sa.Column("business_id", sa.String(length=36), nullable=False),
        sa.Column("started_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("sent", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("template_id"),
    )
    op.create_index("ix_business_pacing_business", "business_pacing", ["business_id"])
    op.create_table(
        "business_held",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("business_id", sa.String(length=36), nullable=False),
        sa.Column("template_id", sa.String(length=36), nullable=False),
        sa.Column("user_account_id", sa.String(length=36), nullable=False),
        sa.Column("client_message_id", sa.String(length=64), nullable=False),
        sa.Column("envelopes", sa.Text(), nullable=False),
        sa.Column("held_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("release_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_business_held_release", "business_held", ["release_at_ms"])
    op.create_index("ix_business_held_business", "business_held", ["business_id"])
    op.create_index("ix_business_held_user", "business_held", ["user_account_id"])


def downgrade() -> None:
    for name in ("ix_business_held_user", "ix_business_held_business", "ix_business_held_release"):
        op.drop_index(name, table_name="business_held")
    op.drop_table("business_held")
    op.drop_index("ix_business_pacing_business", table_name="business_pacing")
    op.drop_table("business_pacing")
    for name, table, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
