"""several devices per person: each account's signed device list and the device ids it names, one-time link
tokens (hashed) and the provisioning channels through which a companion device is linked

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def _account_fk() -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE")


def upgrade() -> None:
    op.create_table(
        "device_lists",
        sa.Column("account_id", sa.String(length=36), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("list", sa.Text(), nullable=False),
        sa.Column("signature", sa.String(length=128), nullable=False),
        sa.Column("updated_at_ms", sa.BigInteger(), nullable=False),
        _account_fk(),
        sa.PrimaryKeyConstraint("account_id"),
    )
    op.create_table(
        "device_list_members",
        sa.Column("account_id", sa.String(length=36), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        _account_fk(),
        sa.PrimaryKeyConstraint("account_id", "device_id"),
    )
    op.create_table(
        "link_tokens",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.String(length=36), nullable=False),
        sa.Column("expires_at_ms", sa.BigInteger(), nullable=False),
        _account_fk(),
        sa.PrimaryKeyConstraint("token_hash"),
    )
    op.create_index("ix_link_tokens_account", "link_tokens", ["account_id"])
    op.create_table(
        "provisioning_channels",
        sa.Column("address", sa.String(length=32), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("expires_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("account_id", sa.String(length=36), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("reply", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("address"),
    )
    op.create_index("ix_provisioning_expiry", "provisioning_channels", ["expires_at_ms"])


def downgrade() -> None:
    op.drop_index("ix_provisioning_expiry", table_name="provisioning_channels")
    op.drop_table("provisioning_channels")
    op.drop_index("ix_link_tokens_account", table_name="link_tokens")
    op.drop_table("link_tokens")
    op.drop_table("device_list_members")
    op.drop_table("device_lists")
