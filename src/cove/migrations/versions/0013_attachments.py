"""attachments: the encrypted blobs the relay holds (who uploads each, its size, how much arrived, its digest,
when it expires) and the devices that fetched each

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "attachments",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("uploader_account_id", sa.String(length=36), nullable=False),
        sa.Column("uploader_device_id", sa.Integer(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("received", sa.BigInteger(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=True),
        sa.Column("recipients", sa.Integer(), nullable=False),
        sa.Column("fetches", sa.Integer(), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("completed_at_ms", sa.BigInteger(), nullable=True),
        sa.Column("expires_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_attachments_expiry", "attachments", ["expires_at_ms"])
    op.create_table(
        "attachment_fetches",
        sa.Column("attachment_id", sa.String(length=32), nullable=False),
        sa.Column("account_id", sa.String(length=36), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("attachment_id", "account_id", "device_id"),
    )


def downgrade() -> None:
    op.drop_table("attachment_fetches")
    op.drop_index("ix_attachments_expiry", table_name="attachments")
    op.drop_table("attachments")
