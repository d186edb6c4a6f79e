"""business limits and quality: tiers, throughput, template pauses, the marketing log, daily usage, the
business event feed, every approved template version, and the visible business header on envelopes

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("envelopes", sa.Column("business", sa.Text(), nullable=True))
    with op.batch_alter_table("business_accounts") as t:
        t.add_column(sa.Column("quality", sa.String(length=8), nullable=False, server_default="green"))
        t.add_column(sa.Column("tier", sa.Integer(), nullable=False, server_default="0"))
        t.add_column(sa.Column("tier_changed_day", sa.Integer(), nullable=False, server_default="0"))
        t.add_column(sa.Column("tier_evaluated_day", sa.Integer(), nullable=False, server_default="0"))
        t.add_column(sa.Column("throughput_mps", sa.Integer(), nullable=False, server_default="80"))
    with op.batch_alter_table("business_templates") as t:
        t.add_column(sa.Column("quality", sa.String(length=8), nullable=False, server_default="green"))
        t.add_column(sa.Column("pauses", sa.Integer(), nullable=False, server_default="0"))
        t.add_column(sa.Column("paused_until_ms", sa.BigInteger(), nullable=True))
    op.add_column("business_reach", sa.Column("template_id", sa.String(length=36), nullable=True))
    op.add_column("business_feedback", sa.Column("template_id", sa.String(length=36), nullable=True))
    op.create_table(
        "business_marketing",
        sa.Column("user_account_id", sa.String(length=36), nullable=False),
        sa.Column("business_id", sa.String(length=36), nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_business_marketing_user_time", "business_marketing", ["user_account_id", "at_ms"])
    op.create_index("ix_business_marketing_business", "business_marketing", ["business_id"])
    op.create_table(
        "business_daily",
        sa.Column("business_id", sa.String(length=36), nullable=False),
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("unique_users", sa.Integer(), nullable=False),
        sa.Column("quality", sa.String(length=8), nullable=False),
        sa.PrimaryKeyConstraint("business_id", "day"),
    )
    op.create_table(
        "business_events",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("business_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_business_events_business_seq", "business_events", ["business_id", "seq"])
    op.create_table(
        "business_template_versions",
        sa.Column("template_id", sa.String(length=36), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("business_id", sa.String(length=36), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("signature", sa.String(length=100), nullable=False),
        sa.Column("approved_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("template_id", "version"),
    )
    op.create_index("ix_business_template_versions_business", "business_template_versions", ["business_id"])


def downgrade() -> None:
    op.drop_index("ix_business_template_versions_business", table_name="business_template_versions")
    op.drop_table("business_template_versions")
    op.drop_index("ix_business_events_business_seq", table_name="business_events")
    op.drop_table("business_events")
    op.drop_table("business_daily")
    op.drop_index("ix_business_marketing_business", table_name="business_marketing")
    op.drop_index("ix_business_marketing_user_time", table_name="business_marketing")
    op.drop_table("business_marketing")
    op.drop_column("business_feedback", "template_id")
    op.drop_column("business_reach", "template_id")
    with op.batch_alter_table("business_templates") as t:
        for column in ("paused_until_ms", "pauses", "quality"):
            t.drop_column(column)
    with op.batch_alter_table("business_accounts") as t:
        for column in ("throughput_mps", "tier_evaluated_day", "tier_changed_day", "tier", "quality"):
            t.drop_column(column)
    op.drop_column("envelopes", "business")
