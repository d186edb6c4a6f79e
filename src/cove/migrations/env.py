"""Alembic environment: migrations run on the connection the relay hands over (see cove.db.migrate)."""

from __future__ import annotations

from alembic import context

import cove.accounts.storage  # noqa: F401 - registers the tables on the metadata
import cove.accounts.usage_storage  # noqa: F401
import cove.attachments.storage  # noqa: F401
import cove.consent.ledger_storage  # noqa: F401
import cove.consent.storage  # noqa: F401
import cove.fleet.storage  # noqa: F401
import cove.keys.storage  # noqa: F401
import cove.messaging.storage  # noqa: F401
import cove.safety.defences_storage  # noqa: F401
import cove.safety.storage  # noqa: F401
from cove.db import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through cove.db.migrate, which supplies the connection")

context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
