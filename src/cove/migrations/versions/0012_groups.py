"""groups: membership (account ids, roles, a revision), hashed invite codes, and group messages stored once with
the count of device queue rows still pointing at them

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "groups",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "group_members",
        sa.Column("group_id", sa.String(length=32), nullable=False),
        sa.Column("account_id", sa.String(length=36), nullable=False),
        sa.Column("role", sa.String(length=8), nullable=False),
        sa.Column("joined_revision", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["group_id"], ["groups.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("group_id", "account_id"),
    )
    op.create_index("ix_group_members_account", "group_members", ["account_id"])
    op.create_table(
        "group_invites",
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("group_id", sa.String(length=32), nullable=False),
        sa.Column("created_by", sa.String(length=36), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["group_id"], ["groups.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("code_hash"),
    )
    op.create_index("ix_group_invites_group", "group_invites", ["group_id"])
    op.create_table(
        "group_messages",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("group_id", sa.String(length=32), nullable=False),
        sa.Column("sender_account_id", sa.String(length=36), nullable=False),
        sa.Column("sender_device_id", sa.Integer(), nullable=False),
        sa.Column("client_message_id", sa.String(length=64), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("server_ts_ms", sa.BigInteger(), nullable=False),
        sa.Column("expires_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("remaining", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_group_messages_expiry", "group_messages", ["expires_at_ms"])
    # A nullable column is added in place on SQLite too: no copy of the queues.
    op.add_column("envelopes", sa.Column("group_message_id", _ID, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("envelopes") as t:
        t.drop_column("group_message_id")
    op.drop_index("ix_group_messages_expiry", table_name="group_messages")
    op.drop_table("group_messages")
    op.drop_index("ix_group_invites_group", table_name="group_invites")
    op.drop_table("group_invites")
    op.drop_index("ix_group_members_account", table_name="group_members")
    op.drop_table("group_members")
    op.drop_table("groups")
