"""registration gate: code requests and registrations per hashed key (number, range, source, device), and the
parent's signed abuse signals; the keys of partners whose signals the relay accepts

Revision ID: 0016
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "safety_code_requests",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.Column("number_key", sa.String(length=32), nullable=False),
        sa.Column("range_key", sa.String(length=32), nullable=False),
        sa.Column("source_key", sa.String(length=32), nullable=False),
        sa.Column("device_key", sa.String(length=32), nullable=True),
        sa.Column("challenged", sa.Boolean(), nullable=False),
        sa.Column("answered", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    for key in ("number", "range", "source", "device"):
        op.create_index(f"ix_safety_code_requests_{key}", "safety_code_requests", [f"{key}_key", "at_ms"])
    op.create_index("ix_safety_code_requests_at", "safety_code_requests", ["at_ms"])
    op.create_table(
        "safety_registrations",
        sa.Column("account_id", sa.String(length=36), nullable=False),
        sa.Column("number_key", sa.String(length=32), nullable=False),
        sa.Column("range_key", sa.String(length=32), nullable=False),
        sa.Column("source_key", sa.String(length=32), nullable=False),
        sa.Column("device_key", sa.String(length=32), nullable=False),
        sa.Column("number_score", sa.Float(), nullable=False),
        sa.Column("range_score", sa.Float(), nullable=False),
        sa.Column("source_score", sa.Float(), nullable=False),
        sa.Column("device_score", sa.Float(), nullable=False),
        sa.Column("challenged", sa.Boolean(), nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("account_id"),
    )
    for key in ("number", "range", "source", "device"):
        op.create_index(f"ix_safety_registrations_{key}", "safety_registrations", [f"{key}_key"])
    op.create_index("ix_safety_registrations_at", "safety_registrations", ["at_ms"])
    op.create_table(
        "safety_parent_signals",
        sa.Column("recipient", sa.String(length=40), nullable=False),
        sa.Column("number_hash", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.Column("received_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("batch_id", sa.String(length=80), nullable=False),
        sa.PrimaryKeyConstraint("recipient", "number_hash"),
    )
    op.create_index("ix_safety_parent_signals_hash", "safety_parent_signals", ["number_hash"])
    op.create_table(
        "sharing_partner_keys",
        sa.Column("recipient", sa.String(length=40), nullable=False),
        sa.Column("public_key", sa.String(length=64), nullable=False),
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("last_sequence", sa.BigInteger(), nullable=False),
        sa.Column("registered_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("recipient"),
    )


def downgrade() -> None:
    op.drop_table("sharing_partner_keys")
    op.drop_index("ix_safety_parent_signals_hash", table_name="safety_parent_signals")
    op.drop_table("safety_parent_signals")
    for key in ("number", "range", "source", "device", "at"):
        op.drop_index(f"ix_safety_registrations_{key}", table_name="safety_registrations")
    op.drop_table("safety_registrations")
    for key in ("number", "range", "source", "device", "at"):
        op.drop_index(f"ix_safety_code_requests_{key}", table_name="safety_code_requests")
    op.drop_table("safety_code_requests")
