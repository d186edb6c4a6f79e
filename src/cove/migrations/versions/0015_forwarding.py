"""forwarding: the forward count of the visible header, kept with a message until it is delivered

Revision ID: 0015
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("envelopes", sa.Column("forward_count", sa.Integer(), nullable=True))
    op.add_column("group_messages", sa.Column("forward_count", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("group_messages") as batch:
        batch.drop_column("forward_count")
    with op.batch_alter_table("envelopes") as batch:
        batch.drop_column("forward_count")
