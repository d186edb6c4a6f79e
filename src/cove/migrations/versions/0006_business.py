"""business: business accounts, per-business user ids, templates, opt-ins, preferences, feedback

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "business_accounts",
        sa.Column("account_id", sa.String(length=36), nullable=False),
        sa.Column("display_name", sa.String(length=128), nullable=False),
        sa.Column("about", sa.String(length=139), nullable=True),
        sa.Column("description", sa.String(length=512), nullable=True),
        sa.Column("address", sa.String(length=256), nullable=True),
        sa.Column("email", sa.String(length=128), nullable=True),
        sa.Column("websites", sa.Text(), nullable=False),
        sa.Column("vertical", sa.String(length=20), nullable=True),
        sa.Column("verification", sa.String(length=12), nullable=False),
        sa.Column("verified_at_ms", sa.BigInteger(), nullable=True),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("account_id"),
    )
    op.create_table(
        "business_user_ids",
        sa.Column("business_id", sa.String(length=36), nullable=False),
        sa.Column("user_account_id", sa.String(length=36), nullable=False),
        sa.Column("bsuid", sa.String(length=64), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("business_id", "user_account_id"),
        sa.UniqueConstraint("business_id", "bsuid", name="uq_business_user_ids_bsuid"),
    )
    op.create_index("ix_business_user_ids_user", "business_user_ids", ["user_account_id"])
    op.create_table(
        "business_templates",
        sa.Column("template_id", sa.String(length=36), nullable=False),
        sa.Column("business_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=512), nullable=False),
        sa.Column("language", sa.String(length=16), nullable=False),
        sa.Column("category", sa.String(length=20), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("parameter_format", sa.String(length=12), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("rejected_reason", sa.Text(), nullable=True),
        sa.Column("findings", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("signature", sa.String(length=100), nullable=True),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("template_id"),
        sa.UniqueConstraint("business_id", "name", "language", name="uq_business_templates_name_language"),
    )
    op.create_index("ix_business_templates_status", "business_templates", ["status"])
    op.create_table(
        "business_optins",
        sa.Column("business_id", sa.String(length=36), nullable=False),
        sa.Column("user_account_id", sa.String(length=36), nullable=False),
        sa.Column("category", sa.String(length=20), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.Column("withdrawn_at_ms", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("business_id", "user_account_id", "category"),
    )
    op.create_index("ix_business_optins_user", "business_optins", ["user_account_id"])
    op.create_table(
        "business_preferences",
        sa.Column("business_id", sa.String(length=36), nullable=False),
        sa.Column("user_account_id", sa.String(length=36), nullable=False),
        sa.Column("promotions_stopped_at_ms", sa.BigInteger(), nullable=True),
        sa.Column("block_reason", sa.String(length=20), nullable=True),
        sa.Column("blocked_at_ms", sa.BigInteger(), nullable=True),
        sa.Column("updated_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("business_id", "user_account_id"),
    )
    op.create_index("ix_business_preferences_user", "business_preferences", ["user_account_id"])
    op.create_table(
        "business_feedback",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("business_id", sa.String(length=36), nullable=False),
        sa.Column("user_account_id", sa.String(length=36), nullable=True),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("reason", sa.String(length=20), nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_business_feedback_business", "business_feedback", ["business_id", "at_ms"])
    op.create_index("ix_business_feedback_user", "business_feedback", ["user_account_id"])


def downgrade() -> None:
    op.drop_index("ix_business_feedback_user", table_name="business_feedback")
    op.drop_index("ix_business_feedback_business", table_name="business_feedback")
    op.drop_table("business_feedback")
    op.drop_index("ix_business_preferences_user", table_name="business_preferences")
    op.drop_table("business_preferences")
    op.drop_index("ix_business_optins_user", table_name="business_optins")
    op.drop_table("business_optins")
    op.drop_index("ix_business_templates_status", table_name="business_templates")
    op.drop_table("business_templates")
    op.drop_index("ix_business_user_ids_user", table_name="business_user_ids")
    op.drop_table("business_user_ids")
    op.drop_table("business_accounts")
