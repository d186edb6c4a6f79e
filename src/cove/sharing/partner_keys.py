"""The keys of partners whose signed abuse signals the relay accepts, and the last batch each one sent.

A partner makes its own Ed25519 key (``cove partner signals keys``) and hands the public half to the messenger's
operator out of band, as the messenger hands it the trust bundle; ``cove share partner-key`` registers it.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Integer, String, Table

from cove.db import metadata

sharing_partner_keys = Table(
    "sharing_partner_keys",
    metadata,
    Column("recipient", String(40), primary_key=True),
    Column("public_key", String(64), nullable=False),  # Ed25519, raw 32 bytes, base64
    Column("key_id", String(16), nullable=False),
    # Batches count up from 1 per partner; one at or below this was already taken (a replay).
    Column("last_sequence", Integer, nullable=False),
    Column("registered_at_ms", BigInteger, nullable=False),
)
