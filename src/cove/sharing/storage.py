"""The gateway's tables: account ordinals, the batch chain, what each recipient holds, disclosures, revocations,
erasures."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from cove.db import metadata

_ordinal = BigInteger().with_variant(Integer(), "sqlite")

# A small integer per account, so that sets of accounts can be stored as bitmaps (cove.sharing.bitmaps).
sharing_subjects = Table(
    "sharing_subjects",
    metadata,
    Column("ordinal", _ordinal, primary_key=True, autoincrement=True),
    Column("account_id", String(36), nullable=False, unique=True),
    sqlite_autoincrement=True,
)

sharing_batches = Table(
    "sharing_batches",
    metadata,
    Column("batch_id", String(80), primary_key=True),
    Column("recipient", String(40), nullable=False),
    Column("sequence", Integer, nullable=False),
    Column("kind", String(12), nullable=False),
    Column("as_of_ms", BigInteger, nullable=False),
    Column("created_at_ms", BigInteger, nullable=False),
    Column("manifest", Text, nullable=False),  # the exact signed bytes, so a batch can be re-delivered
    Column("signature", String(100), nullable=False),
    Column("rows", BigInteger, nullable=False),
    Column("revocations", BigInteger, nullable=False),
    Column("published_nats_at_ms", BigInteger, nullable=True),
    UniqueConstraint("recipient", "sequence", name="uq_sharing_batches_recipient_sequence"),
)

# What a recipient holds after its last batch, per purpose: the permitted set at that batch's time. The next
# batch revokes what is held but no longer permitted, and sends in full what is permitted but not held.
sharing_held = Table(
    "sharing_held",
    metadata,
    Column("recipient", String(40), primary_key=True),
    Column("purpose", String(40), primary_key=True),
    Column("chunk", BigInteger, primary_key=True),
    Column("bitmap", LargeBinary, nullable=False),
)

# The disclosure log: which accounts' rows went out in which batch under which purpose.
sharing_disclosures = Table(
    "sharing_disclosures",
    metadata,
    Column("recipient", String(40), primary_key=True),
    Column("sequence", Integer, primary_key=True),
    Column("purpose", String(40), primary_key=True),
    Column("chunk", BigInteger, primary_key=True),
    Column("bitmap", LargeBinary, nullable=False),
    Index("ix_sharing_disclosures_chunk", "chunk", "recipient", "sequence"),
)

# One erasure event per deleted account and recipient, tracked until the recipient acknowledges it.
sharing_erasures = Table(
    "sharing_erasures",
    metadata,
    Column("event_id", String(36), primary_key=True),
    Column("account_id", String(36), nullable=False),
    Column("ordinal", BigInteger, nullable=True),  # the account's ordinal, if it had one: held sets drop it
    Column("recipient", String(40), nullable=False),
    Column("requested_at_ms", BigInteger, nullable=False),
    Column("sent_batch_id", String(80), nullable=True),
    Column("acked_at_ms", BigInteger, nullable=True),
    Index("ix_sharing_erasures_pending", "recipient", "acked_at_ms"),
)

# Each revocation a batch carried, per account, so a person can see what stopped being shared and whether the
# recipient applied it (its ack of the batch). Kept REVOCATION_RETENTION_DAYS (cove.sharing.revocations); an
# account's deletion replaces its rows by its erasure events.
sharing_revocations = Table(
    "sharing_revocations",
    metadata,
    Column("event_id", String(64), primary_key=True),  # as in the batch's revocations file
    Column("account_id", String(36), nullable=False),
    Column("recipient", String(40), nullable=False),
    Column("purpose", String(40), nullable=False),
    Column("reason", String(16), nullable=False),  # a wire.RevocationReason
    Column("batch_id", String(80), nullable=False),
    Column("at_ms", BigInteger, nullable=False),
    Column("acked_at_ms", BigInteger, nullable=True),
    Index("ix_sharing_revocations_account", "account_id", "at_ms"),
    Index("ix_sharing_revocations_batch", "batch_id"),
    Index("ix_sharing_revocations_at", "at_ms"),
)
