"""business identity: per-business user ids in Meta's BSUID format (region code, a period, digits), the name a
user shows a business and whether it shares its number with it

Existing ids (``CC.`` and base32) are rewritten from the same HMAC bits (cove.business.identity.bsuid_from_legacy),
so no key is needed here, and each business is told of each change in its event feed (``user_id_changed``),
which its gateway turns into Meta's ``user_changed_user_id`` system webhook and uses to update what it cached.

Revision ID: 0018
Revises: 0017
"""

import json
import time

import sqlalchemy as sa
from alembic import op

from cove.business.identity import bsuid_from_legacy

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("business_user_ids") as batch:
        batch.add_column(sa.Column("shown_name", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("number_shared_at_ms", sa.BigInteger(), nullable=True))
    conn = op.get_bind()
    rows = conn.execute(
        sa.text(
            "SELECT u.business_id, u.user_account_id, u.bsuid, a.phone_number FROM business_user_ids u "
            "JOIN accounts a ON a.id = u.user_account_id WHERE u.bsuid LIKE 'CC.%'"
        )
    ).all()
    now = int(time.time() * 1000)
    for business_id, account_id, legacy, phone in rows:
        new = bsuid_from_legacy(legacy, phone)
        conn.execute(
            sa.text("UPDATE business_user_ids SET bsuid = :new WHERE business_id = :b AND user_account_id = :a"),
            {"new": new, "b": business_id, "a": account_id},
        )
        body = json.dumps({"previous_user_id": legacy, "user_id": new, "wa_id": None})
        conn.execute(
            sa.text("INSERT INTO business_events (business_id, kind, body, at_ms) VALUES (:b, :k, :body, :at)"),
            {"b": business_id, "k": "user_id_changed", "body": body, "at": now},
        )


def downgrade() -> None:
    # The new ids keep 64 of the old 160 HMAC bits, so the old ones cannot be rebuilt from them: the pairs are
    # forgotten instead, and the relay gives each pair a fresh id the next time it meets (a user's opt-ins and
    # preferences are in their own tables and stay).
    op.execute("DELETE FROM business_user_ids WHERE bsuid NOT LIKE 'CC.%'")
    with op.batch_alter_table("business_user_ids") as batch:
        batch.drop_column("number_shared_at_ms")
        batch.drop_column("shown_name")
