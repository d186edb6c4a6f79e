"""registration lock: a salted scrypt hash of the account's PIN and its wrong-guess count; verification codes
no longer count sends per number (cove.accounts.code_limits counts them per number and source address)

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "registration_locks",
        sa.Column("account_id", sa.String(length=36), nullable=False),
        sa.Column("salt", sa.LargeBinary(length=32), nullable=False),
        sa.Column("pin_hash", sa.LargeBinary(length=64), nullable=False),
        sa.Column("scrypt_n", sa.Integer(), nullable=False),
        sa.Column("scrypt_r", sa.Integer(), nullable=False),
        sa.Column("scrypt_p", sa.Integer(), nullable=False),
        sa.Column("set_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failure_at_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("account_id"),
    )
    with op.batch_alter_table("verification_codes") as t:
        t.drop_column("window_started_at_ms")
        t.drop_column("sends")


def downgrade() -> None:
    with op.batch_alter_table("verification_codes") as t:
        t.add_column(sa.Column("sends", sa.Integer(), nullable=False, server_default="1"))
        t.add_column(sa.Column("window_started_at_ms", sa.BigInteger(), nullable=False, server_default="0"))
    op.drop_table("registration_locks")
