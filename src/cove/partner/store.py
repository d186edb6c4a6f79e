"""The partner's own store: a DuckDB file holding what was shared with it and its own population.

Shared data lives in three tables keyed by the purpose it arrived under, so every use reads only the rows of
purposes whose ``use`` permits it (``shared_purposes.use``), and a revocation or retention sweep is one
DELETE per purpose. The partner's own social network (users, friendships, contact books, blocks) and what it
derives (links, suggestions, audiences, safety blocks) sit beside them, with the lineage of each derived row:
which shared (purpose, subject) rows it was built from (cove.partner.lineage, which also forgets them).
"""

from __future__ import annotations

from pathlib import Path

import duckdb

SCHEMA = """
-- What the messenger shared, per purpose (cove.sharing.wire). Columns a purpose does not declare stay NULL.
CREATE TABLE IF NOT EXISTS shared_purposes (
    purpose VARCHAR PRIMARY KEY,
    use VARCHAR NOT NULL,                -- cove.sharing.wire.Use
    legal_basis VARCHAR,
    retention_days INTEGER,
    categories VARCHAR[] NOT NULL,
    last_batch_id VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS shared_profiles (
    purpose VARCHAR NOT NULL,
    subject VARCHAR NOT NULL,
    phone_hash VARCHAR,
    phone_number VARCHAR,
    account_created_day DATE,
    last_seen_day DATE,
    device_model VARCHAR,
    os_name VARCHAR,
    os_version VARCHAR,
    app_version VARCHAR,
    vendor_device_id VARCHAR,
    reason_code VARCHAR,
    banned_day DATE,
    batch_id VARCHAR NOT NULL,
    received_at_ms BIGINT NOT NULL,     -- the batch's as_of: retention counts from here
    PRIMARY KEY (purpose, subject)
);
CREATE TABLE IF NOT EXISTS shared_usage (
    purpose VARCHAR NOT NULL,
    subject VARCHAR NOT NULL,
    day DATE NOT NULL,
    messages_sent INTEGER NOT NULL,
    messages_received INTEGER NOT NULL,
    app_opens INTEGER NOT NULL,
    batch_id VARCHAR NOT NULL,
    received_at_ms BIGINT NOT NULL,
    PRIMARY KEY (purpose, subject, day)
);
-- The batch chain as applied; a batch id seen here is never applied again.
CREATE TABLE IF NOT EXISTS applied_batches (
    batch_id VARCHAR PRIMARY KEY,
    sequence BIGINT NOT NULL UNIQUE,
    recipient VARCHAR NOT NULL,
    kind VARCHAR NOT NULL,
    as_of_ms BIGINT NOT NULL,
    applied_at_ms BIGINT NOT NULL,
    manifest_sha256 VARCHAR NOT NULL,
    rows_applied BIGINT NOT NULL,
    revocations_applied BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS applied_erasures (
    event_id VARCHAR PRIMARY KEY,
    subject VARCHAR NOT NULL,
    batch_id VARCHAR NOT NULL,
    applied_at_ms BIGINT NOT NULL
);

-- The parent's own social network (cove partner seed writes it; a real deployment would load its own).
CREATE TABLE IF NOT EXISTS users (
    user_id BIGINT PRIMARY KEY,
    name VARCHAR NOT NULL,
    phone_e164 VARCHAR,                  -- the number the user gave the parent, if any
    device_model VARCHAR,
    os_name VARCHAR,
    os_version VARCHAR,
    vendor_device_id VARCHAR,            -- the same vendor's id seen by the parent's own app
    birth_year INTEGER,
    blocked_for_safety VARCHAR           -- the smallest reason code of the safety_sources reaching the user
);
CREATE TABLE IF NOT EXISTS friendships (a BIGINT NOT NULL, b BIGINT NOT NULL, PRIMARY KEY (a, b));  -- a < b
CREATE TABLE IF NOT EXISTS contact_uploads (owner BIGINT NOT NULL, phone_e164 VARCHAR NOT NULL);
CREATE TABLE IF NOT EXISTS blocks (blocker BIGINT NOT NULL, blocked BIGINT NOT NULL, PRIMARY KEY (blocker, blocked));
-- Ground truth of the generator only, for evaluation: which messenger subject is which parent user.
CREATE TABLE IF NOT EXISTS truth_links (subject VARCHAR PRIMARY KEY, user_id BIGINT NOT NULL);

-- What the parent derives, each from one purpose's rows only.
CREATE TABLE IF NOT EXISTS links (
    subject VARCHAR PRIMARY KEY,
    user_id BIGINT NOT NULL UNIQUE,
    probability DOUBLE NOT NULL,
    method VARCHAR NOT NULL,             -- 'phone', 'vendor_device_id' or 'splink'
    linked_at_ms BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS suggestions (
    user_id BIGINT NOT NULL,
    suggested BIGINT NOT NULL,
    score DOUBLE NOT NULL,
    source VARCHAR NOT NULL,             -- 'contact_book' or 'friends_of_friends'
    rank INTEGER NOT NULL,
    PRIMARY KEY (user_id, suggested)
);
-- NULL on rows written before suggestion_sources existed: cove.partner.lineage forgets those by the older rule.
ALTER TABLE suggestions ADD COLUMN IF NOT EXISTS lineage_recorded BOOLEAN;
CREATE TABLE IF NOT EXISTS audiences (
    audience VARCHAR NOT NULL,
    subject VARCHAR NOT NULL,
    built_from_batch VARCHAR NOT NULL,
    PRIMARY KEY (audience, subject)
);

-- Lineage: the shared rows each derived row was built from (links need none: a link's source is its subject's
-- account-linking rows). No keys: these tables are rewritten with the rows they describe, and DuckDB pays for
-- every indexed row it deletes.
CREATE TABLE IF NOT EXISTS suggestion_sources (  -- a contact-book match found through a friend_suggestions row
    user_id BIGINT NOT NULL,
    suggested BIGINT NOT NULL,
    purpose VARCHAR NOT NULL,
    subject VARCHAR NOT NULL             -- whose link named the holder of the matched number, too
);
CREATE TABLE IF NOT EXISTS audience_sources (
    audience VARCHAR NOT NULL,
    subject VARCHAR NOT NULL,
    purpose VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS safety_sources (      -- one row per path by which a safety row reached a parent user
    user_id BIGINT NOT NULL,
    purpose VARCHAR NOT NULL,
    subject VARCHAR NOT NULL,
    through_link BOOLEAN NOT NULL,       -- reached through the subject's link, so it rests on that link too
    reason_code VARCHAR NOT NULL
);
"""


def open_store(path: Path | str) -> duckdb.DuckDBPyConnection:
    """Open (creating if needed) the partner store at ``path``; ``":memory:"`` for a throw-away one."""
    if str(path) != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = duckdb.connect(str(path))
    conn.execute(SCHEMA)
    return conn
