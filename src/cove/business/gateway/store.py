"""The gateway's own tables, in the same SQLite file as the Cove client it runs.

One file, one connection: a received envelope's ratchet state, the message's status and the webhook it causes
commit in one transaction (:meth:`cove.client.store.ClientStore.transaction`), and only then is the envelope
acked. A crash at any point means a redelivery whose effects are either all there or not at all.

- ``gw_tokens``: the bearer tokens the business's systems present (SHA-256 of each; the token is shown once).
- ``gw_idempotency``: a send's answer by its ``Idempotency-Key``, with the hash of the request it answered.
- ``gw_messages``: every message by its Cloud API id, both ways, with the account it goes to or came from and
  its status (outbound; statuses only move forward, :mod:`cove.business.gateway.statuses`).
- ``gw_users``: the per-business user id (``wa_id``) of each account, as the relay paired them.
- ``gw_identity``: what each user lets the business see besides the id (:mod:`.identity`): the name they show
  it, the number they share with it, and the number the business itself sent to (it knew that one already).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
from dataclasses import dataclass

from cove.business.gateway.statuses import Status
from cove.client.store import ClientStore

SCHEMA = """
CREATE TABLE IF NOT EXISTS gw_tokens (token_hash TEXT PRIMARY KEY, label TEXT NOT NULL, created_at_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS gw_idempotency (
    key TEXT PRIMARY KEY, request_hash TEXT NOT NULL, status INTEGER NOT NULL, response TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS gw_messages (
    message_id TEXT PRIMARY KEY, direction TEXT NOT NULL, account_id TEXT NOT NULL, wa_id TEXT NOT NULL,
    client_message_id TEXT NOT NULL, status TEXT NOT NULL, category TEXT, callback TEXT,
    created_at_ms INTEGER NOT NULL, updated_at_ms INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS ix_gw_messages_created ON gw_messages (created_at_ms);
CREATE TABLE IF NOT EXISTS gw_users (account_id TEXT PRIMARY KEY, wa_id TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS gw_identity (
    account_id TEXT PRIMARY KEY, name TEXT, shared_number TEXT, sent_number TEXT);
"""

TOKEN_PREFIX = "cove_gw_"
IDEMPOTENCY_MS = 24 * 3_600_000  # a key is remembered for a day, as Stripe's are


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def request_hash(body: bytes) -> str:
    """What an idempotency key is checked against: the same key with another body is a client's bug."""
    return hashlib.sha256(body).hexdigest()


@dataclass(frozen=True)
class MessageRecord:
    message_id: str
    direction: str  # "out": the business sent it; "in": a user sent it
    account_id: str
    wa_id: str
    client_message_id: str
    status: str
    category: str | None
    callback: str | None  # biz_opaque_callback_data, returned with every status


class GatewayStore:
    def __init__(self, client_store: ClientStore) -> None:
        self.client_store = client_store
        self.db: sqlite3.Connection = client_store.connection
        self.db.executescript(SCHEMA)

    # tokens ------------------------------------------------------------------------------------------------------
    def create_token(self, label: str, now_ms: int) -> str:
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self.client_store.transaction() as db:
            db.execute("INSERT INTO gw_tokens VALUES (?, ?, ?)", (_hash(token), label, now_ms))
        return token

    def token_valid(self, token: str) -> bool:
        digest = _hash(token)
        row = self.db.execute("SELECT token_hash FROM gw_tokens WHERE token_hash = ?", (digest,)).fetchone()
        return row is not None and hmac.compare_digest(row[0], digest)

    def revoke_tokens(self) -> int:
        with self.client_store.transaction() as db:
            return db.execute("DELETE FROM gw_tokens").rowcount

    # idempotency -------------------------------------------------------------------------------------------------
    def remembered(self, key: str, now_ms: int) -> tuple[str, int, str] | None:
        """``(request hash, status, response)`` of an earlier send with this key, if within a day."""
        row = self.db.execute(
            "SELECT request_hash, status, response FROM gw_idempotency WHERE key = ? AND created_at_ms > ?",
            (key, now_ms - IDEMPOTENCY_MS),
        ).fetchone()
        return (row[0], row[1], row[2]) if row else None

    def remember(self, key: str, request_hash: str, status: int, response: str, now_ms: int) -> None:
        self.db.execute(
            "INSERT INTO gw_idempotency VALUES (?, ?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET "
            "request_hash = excluded.request_hash, status = excluded.status, response = excluded.response, "
            "created_at_ms = excluded.created_at_ms",
            (key, request_hash, status, response, now_ms),
        )

    # messages ----------------------------------------------------------------------------------------------------
    def add_message(self, record: MessageRecord, now_ms: int) -> bool:
        """Record a message once (a redelivered inbound message is recognised by its id)."""
        cursor = self.db.execute(
            "INSERT INTO gw_messages VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(message_id) DO NOTHING",
            (
                record.message_id,
                record.direction,
                record.account_id,
                record.wa_id,
                record.client_message_id,
                record.status,
                record.category,
                record.callback,
                now_ms,
                now_ms,
            ),
        )
        return cursor.rowcount == 1

    def forget_message(self, message_id: str) -> None:
        self.db.execute("DELETE FROM gw_messages WHERE message_id = ?", (message_id,))

    def message(self, message_id: str) -> MessageRecord | None:
        row = self.db.execute(
            "SELECT message_id, direction, account_id, wa_id, client_message_id, status, category, callback "
            "FROM gw_messages WHERE message_id = ?",
            (message_id,),
        ).fetchone()
        return MessageRecord(*row) if row else None

    def unread_until(self, record: MessageRecord) -> list[MessageRecord]:
        """The user's messages up to and including ``record`` that the business has not marked read."""
        rows = self.db.execute(
            "SELECT message_id, direction, account_id, wa_id, client_message_id, status, category, callback "
            "FROM gw_messages WHERE direction = 'in' AND account_id = ? AND status != 'read' AND created_at_ms <= "
            "(SELECT created_at_ms FROM gw_messages WHERE message_id = ?) ORDER BY created_at_ms",
            (record.account_id, record.message_id),
        ).fetchall()
        return [MessageRecord(*row) for row in rows]

    def set_status(self, message_id: str, status: Status, now_ms: int) -> None:
        self.db.execute(
            "UPDATE gw_messages SET status = ?, updated_at_ms = ? WHERE message_id = ?",
            (status.value, now_ms, message_id),
        )

    def prune(self, messages_before_ms: int, now_ms: int) -> None:
        """Forget messages older than the relay keeps envelopes (no status can come for them any more) and
        idempotency keys older than a day."""
        with self.client_store.transaction() as db:
            db.execute("DELETE FROM gw_messages WHERE created_at_ms < ?", (messages_before_ms,))
            db.execute("DELETE FROM gw_idempotency WHERE created_at_ms <= ?", (now_ms - IDEMPOTENCY_MS,))

    # users -------------------------------------------------------------------------------------------------------
    def wa_id_of(self, account_id: str) -> str | None:
        row = self.db.execute("SELECT wa_id FROM gw_users WHERE account_id = ?", (account_id,)).fetchone()
        return row[0] if row else None

    def account_of(self, wa_id: str) -> str | None:
        row = self.db.execute("SELECT account_id FROM gw_users WHERE wa_id = ?", (wa_id,)).fetchone()
        return row[0] if row else None

    def pair(self, account_id: str, wa_id: str) -> None:
        with self.client_store.transaction() as db:
            db.execute("INSERT INTO gw_users VALUES (?, ?) ON CONFLICT DO NOTHING", (account_id, wa_id))

    def repair(self, account_id: str, wa_id: str) -> None:
        """The relay gave the account a new id (a new number, or Meta's format): the old one stops naming it, and
        so does the number the business sent to, which was the old one's."""
        with self.client_store.transaction() as db:
            db.execute("DELETE FROM gw_users WHERE wa_id = ? AND account_id <> ?", (wa_id, account_id))
            db.execute(
                "INSERT INTO gw_users VALUES (?, ?) ON CONFLICT (account_id) DO UPDATE SET wa_id = excluded.wa_id",
                (account_id, wa_id),
            )
            db.execute("UPDATE gw_identity SET sent_number = NULL WHERE account_id = ?", (account_id,))

    # what users show -----------------------------------------------------------------------------------------------
    def shown(self, account_id: str) -> tuple[str | None, str | None, str | None]:
        """The name, the shared number and the number the business sent to (each None if there is none)."""
        row = self.db.execute(
            "SELECT name, shared_number, sent_number FROM gw_identity WHERE account_id = ?", (account_id,)
        ).fetchone()
        return (row[0], row[1], row[2]) if row else (None, None, None)

    def set_shown(self, account_id: str, name: str | None, shared_number: str | None) -> None:
        """What the relay says the user shows the business now."""
        with self.client_store.transaction() as db:
            db.execute(
                "INSERT INTO gw_identity (account_id, name, shared_number) VALUES (?, ?, ?) ON CONFLICT (account_id) "
                "DO UPDATE SET name = excluded.name, shared_number = excluded.shared_number",
                (account_id, name, shared_number),
            )

    def set_sent_number(self, account_id: str, number: str) -> None:
        """The business sent to this number and the relay found the account behind it."""
        with self.client_store.transaction() as db:
            db.execute(
                "INSERT INTO gw_identity (account_id, sent_number) VALUES (?, ?) ON CONFLICT (account_id) "
                "DO UPDATE SET sent_number = excluded.sent_number",
                (account_id, number),
            )
