"""The client's local state in one SQLite file.

The Olm account and sessions are kept only as vodozemac pickles, encrypted under the profile's 32-byte
key. Everything a received envelope changes (ratchet state, the message, the "processed" mark, the events
the app is to see) is written in one transaction, so an envelope is acked only after its effects are on disk,
a redelivery after a crash is recognised and not decrypted twice, and its events wait in ``pending_events``
until the app has taken them.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cove.client.verification import Verified

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
    peer_account TEXT NOT NULL, peer_device INTEGER NOT NULL, session_id TEXT NOT NULL,
    pickle TEXT NOT NULL, updated_at REAL NOT NULL,
    PRIMARY KEY (peer_account, peer_device, session_id));
CREATE TABLE IF NOT EXISTS peers (
    account_id TEXT PRIMARY KEY, phone_number TEXT, identity_generation INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS peer_devices (
    account_id TEXT NOT NULL, device_id INTEGER NOT NULL, registration_id INTEGER NOT NULL,
    curve25519 TEXT NOT NULL, ed25519 TEXT NOT NULL, PRIMARY KEY (account_id, device_id));
CREATE TABLE IF NOT EXISTS messages (
    local_id INTEGER PRIMARY KEY, peer_account TEXT NOT NULL, direction TEXT NOT NULL,
    client_message_id TEXT NOT NULL, text TEXT NOT NULL, sent_at INTEGER NOT NULL,
    received_at INTEGER, status TEXT NOT NULL,
    UNIQUE (peer_account, direction, client_message_id));
CREATE TABLE IF NOT EXISTS processed (envelope_id INTEGER PRIMARY KEY, processed_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS pending_events (seq INTEGER PRIMARY KEY AUTOINCREMENT, event TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS phone_claims (account_id TEXT PRIMARY KEY, phone_number TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS served_notices (
    version TEXT NOT NULL, text_hash TEXT NOT NULL, surface TEXT NOT NULL, shown_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS usage (
    day INTEGER PRIMARY KEY, messages_sent INTEGER NOT NULL DEFAULT 0,
    messages_received INTEGER NOT NULL DEFAULT 0, app_opens INTEGER NOT NULL DEFAULT 0,
    reported INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS verification_contacts (
    account_id TEXT PRIMARY KEY, ed25519 TEXT NOT NULL, generation INTEGER NOT NULL, method TEXT NOT NULL,
    verified_at INTEGER NOT NULL, changed INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS device_pins (
    account_id TEXT PRIMARY KEY, generation INTEGER NOT NULL, primary_ed25519 TEXT NOT NULL,
    version INTEGER NOT NULL, list TEXT, signature TEXT);
CREATE TABLE IF NOT EXISTS group_groups (
    group_id TEXT PRIMARY KEY, revision INTEGER NOT NULL DEFAULT 0, member INTEGER NOT NULL DEFAULT 1,
    name TEXT, description TEXT, avatar BLOB);
CREATE TABLE IF NOT EXISTS group_members (
    group_id TEXT NOT NULL, account_id TEXT NOT NULL, role TEXT NOT NULL, devices TEXT NOT NULL,
    PRIMARY KEY (group_id, account_id));
CREATE TABLE IF NOT EXISTS group_outbound (
    group_id TEXT PRIMARY KEY, session_id TEXT NOT NULL, pickle TEXT NOT NULL, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS group_shared (
    group_id TEXT NOT NULL, session_id TEXT NOT NULL, account_id TEXT NOT NULL, device_id INTEGER NOT NULL,
    PRIMARY KEY (group_id, session_id, account_id, device_id));
CREATE TABLE IF NOT EXISTS group_inbound (
    group_id TEXT NOT NULL, sender_account TEXT NOT NULL, sender_device INTEGER NOT NULL, session_id TEXT NOT NULL,
    pickle TEXT NOT NULL, received_at REAL NOT NULL,
    PRIMARY KEY (group_id, sender_account, sender_device, session_id));
CREATE TABLE IF NOT EXISTS group_seen (
    sender_account TEXT NOT NULL, sender_device INTEGER NOT NULL, session_id TEXT NOT NULL,
    message_index INTEGER NOT NULL, PRIMARY KEY (sender_account, sender_device, session_id, message_index));
CREATE TABLE IF NOT EXISTS group_messages (
    local_id INTEGER PRIMARY KEY, group_id TEXT NOT NULL, sender_account TEXT NOT NULL, direction TEXT NOT NULL,
    client_message_id TEXT NOT NULL, text TEXT NOT NULL, sent_at INTEGER NOT NULL,
    UNIQUE (group_id, sender_account, client_message_id));
CREATE TABLE IF NOT EXISTS group_receipts (
    group_id TEXT NOT NULL, client_message_id TEXT NOT NULL, account_id TEXT NOT NULL, state TEXT NOT NULL,
    PRIMARY KEY (group_id, client_message_id, account_id));
CREATE TABLE IF NOT EXISTS forwards (
    chat TEXT NOT NULL, client_message_id TEXT NOT NULL, count INTEGER NOT NULL, attachment TEXT, caption TEXT,
    PRIMARY KEY (chat, client_message_id));
CREATE TABLE IF NOT EXISTS group_pending (
    envelope_id INTEGER PRIMARY KEY, group_id TEXT NOT NULL, sender_account TEXT NOT NULL,
    sender_device INTEGER NOT NULL, frame TEXT NOT NULL, received_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS contacts (
    account_id TEXT PRIMARY KEY, name TEXT, how TEXT NOT NULL, since INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS message_requests (
    account_id TEXT PRIMARY KEY, first_at INTEGER NOT NULL, last_at INTEGER NOT NULL, messages INTEGER NOT NULL);
"""

_TABLES = (
    "meta",
    "sessions",
    "peers",
    "peer_devices",
    "messages",
    "processed",
    "pending_events",
    "phone_claims",
    "served_notices",
    "usage",
    "verification_contacts",
    "device_pins",
    "group_groups",
    "group_members",
    "group_outbound",
    "group_shared",
    "group_inbound",
    "group_seen",
    "group_messages",
    "group_receipts",
    "group_pending",
    "forwards",
    "contacts",
    "message_requests",
)

_MESSAGES = (  # a StoredMessage's columns
    "SELECT m.local_id, m.peer_account, p.phone_number, m.direction, m.client_message_id, m.text, m.sent_at, "
    "m.status FROM messages m LEFT JOIN peers p ON p.account_id = m.peer_account"
)


@dataclass(frozen=True)
class PeerDevice:
    account_id: str
    device_id: int
    registration_id: int
    curve25519: str
    ed25519: str


@dataclass(frozen=True)
class UsageDay:
    day: int  # days since the Unix epoch, UTC
    messages_sent: int
    messages_received: int
    app_opens: int


@dataclass(frozen=True)
class StoredMessage:
    local_id: int
    peer_account: str
    peer_phone: str | None
    direction: str
    client_message_id: str
    text: str
    sent_at: int
    status: str


class ClientStore:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        if str(path) != ":memory:" and not self.path.exists():
            # Owner-only from the start (SQLite gives its -wal and -shm files the same mode): it holds the
            # relay token and the messages.
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        self._db = sqlite3.connect(self.path, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        self._depth = 0

    def close(self) -> None:
        self._db.close()

    @property
    def connection(self) -> sqlite3.Connection:
        """For an app's own tables in the same file, written in :meth:`transaction` with the client's state."""
        return self._db

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Nestable: only the outermost block commits."""
        if self._depth == 0:
            self._db.execute("BEGIN IMMEDIATE")
        self._depth += 1
        try:
            yield self._db
        except BaseException:
            self._depth -= 1
            if self._depth == 0:
                self._db.execute("ROLLBACK")
            raise
        self._depth -= 1
        if self._depth == 0:
            self._db.execute("COMMIT")

    # meta ---------------------------------------------------------------------------------------------
    def get(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set(self, key: str, value: str) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO meta VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    # sessions -----------------------------------------------------------------------------------------
    def sessions(self, account_id: str, device_id: int) -> list[tuple[str, str]]:
        """``(session_id, pickle)`` pairs, most recently used first."""
        rows = self._db.execute(
            "SELECT session_id, pickle FROM sessions WHERE peer_account = ? AND peer_device = ? "
            "ORDER BY updated_at DESC",
            (account_id, device_id),
        )
        return [(r[0], r[1]) for r in rows]

    def save_session(self, account_id: str, device_id: int, session_id: str, pickle: str) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO sessions VALUES (?, ?, ?, ?, ?) ON CONFLICT(peer_account, peer_device, session_id) "
                "DO UPDATE SET pickle = excluded.pickle, updated_at = excluded.updated_at",
                (account_id, device_id, session_id, pickle, time.time()),
            )

    def drop_sessions(self, account_id: str, device_ids: list[int] | None = None) -> None:
        with self.transaction() as db:
            if device_ids is None:
                db.execute("DELETE FROM sessions WHERE peer_account = ?", (account_id,))
                db.execute("DELETE FROM peer_devices WHERE account_id = ?", (account_id,))
            else:
                for device_id in device_ids:
                    db.execute(
                        "DELETE FROM sessions WHERE peer_account = ? AND peer_device = ?",
                        (account_id, device_id),
                    )
                    db.execute(
                        "DELETE FROM peer_devices WHERE account_id = ? AND device_id = ?",
                        (account_id, device_id),
                    )

    def forget_devices(self, account_id: str) -> None:
        """Forget the device list (not the sessions): the next send re-reads it from the relay."""
        with self.transaction() as db:
            db.execute("DELETE FROM peer_devices WHERE account_id = ?", (account_id,))

    # peers --------------------------------------------------------------------------------------------
    def peer_generation(self, account_id: str) -> int | None:
        row = self._db.execute("SELECT identity_generation FROM peers WHERE account_id = ?", (account_id,)).fetchone()
        return row[0] if row else None

    def save_peer(self, account_id: str, generation: int, phone_number: str | None = None) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO peers VALUES (?, ?, ?) ON CONFLICT(account_id) DO UPDATE SET "
                "identity_generation = excluded.identity_generation, "
                "phone_number = COALESCE(excluded.phone_number, peers.phone_number)",
                (account_id, phone_number, generation),
            )

    def peer_by_phone(self, phone_number: str) -> str | None:
        row = self._db.execute("SELECT account_id FROM peers WHERE phone_number = ?", (phone_number,)).fetchone()
        return row[0] if row else None

    def peer_phone(self, account_id: str) -> str | None:
        row = self._db.execute("SELECT phone_number FROM peers WHERE account_id = ?", (account_id,)).fetchone()
        return row[0] if row else None

    def claim_phone(self, account_id: str, phone_number: str) -> None:
        """A number a sender says is theirs: not shown before contact discovery confirms it."""
        with self.transaction() as db:
            db.execute(
                "INSERT INTO phone_claims VALUES (?, ?) ON CONFLICT(account_id) DO UPDATE SET "
                "phone_number = excluded.phone_number",
                (account_id, phone_number),
            )

    def phone_claims(self, limit: int) -> list[str]:
        return [r[0] for r in self._db.execute("SELECT DISTINCT phone_number FROM phone_claims LIMIT ?", (limit,))]

    def drop_phone_claims(self, phone_numbers: list[str]) -> None:
        with self.transaction() as db:
            db.executemany("DELETE FROM phone_claims WHERE phone_number = ?", [(n,) for n in phone_numbers])

    def peer_devices(self, account_id: str) -> dict[int, PeerDevice]:
        rows = self._db.execute("SELECT * FROM peer_devices WHERE account_id = ?", (account_id,))
        return {r["device_id"]: PeerDevice(**dict(r)) for r in rows}

    def save_peer_device(self, device: PeerDevice) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO peer_devices VALUES (?, ?, ?, ?, ?) ON CONFLICT(account_id, device_id) DO UPDATE SET "
                "registration_id = excluded.registration_id, curve25519 = excluded.curve25519, "
                "ed25519 = excluded.ed25519",
                (
                    device.account_id,
                    device.device_id,
                    device.registration_id,
                    device.curve25519,
                    device.ed25519,
                ),
            )

    # trusted device lists (cove.client.devices.Pin) ----------------------------------------------------------
    def device_pin(self, account_id: str) -> tuple[int, str, int, str | None, str | None] | None:
        row = self._db.execute(
            "SELECT generation, primary_ed25519, version, list, signature FROM device_pins WHERE account_id = ?",
            (account_id,),
        ).fetchone()
        return tuple(row) if row else None

    def save_device_pin(
        self,
        account_id: str,
        generation: int,
        primary_ed25519: str,
        version: int,
        text: str | None,
        signature: str | None,
    ) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO device_pins VALUES (?, ?, ?, ?, ?, ?)",
                (account_id, generation, primary_ed25519, version, text, signature),
            )

    def drop_device_pin(self, account_id: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM device_pins WHERE account_id = ?", (account_id,))

    # messages -----------------------------------------------------------------------------------------
    def add_message(
        self, peer: str, direction: str, client_message_id: str, text: str, sent_at: int, status: str
    ) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO messages (peer_account, direction, client_message_id, text, sent_at, received_at, status)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (peer, direction, client_message_id, text, sent_at, int(time.time() * 1000), status),
            )

    def set_status(self, peer: str, client_message_ids: list[str], status: str) -> None:
        """Only forward (sent, delivered, read): a peer's second device acks after the first one read it."""
        with self.transaction() as db:
            for cmid in client_message_ids:
                db.execute(
                    "UPDATE messages SET status = ? WHERE peer_account = ? AND direction = 'out' "
                    "AND client_message_id = ? AND (? = 'read' OR status = 'sent')",
                    (status, peer, cmid, status),
                )

    def messages(self, peer: str | None = None, limit: int = 50) -> list[StoredMessage]:
        where, args = ("WHERE m.peer_account = ?", [peer]) if peer else ("", [])
        rows = self._db.execute(f"{_MESSAGES} {where} ORDER BY m.local_id DESC LIMIT ?", [*args, limit])
        return [StoredMessage(*r) for r in reversed(rows.fetchall())]

    def mark_read_in(self, peer: str, client_message_ids: list[str]) -> None:
        """Received messages the user has seen (on this device or another of theirs)."""
        with self.transaction() as db:
            db.executemany(
                "UPDATE messages SET status = 'read' WHERE peer_account = ? AND direction = 'in' "
                "AND client_message_id = ?",
                [(peer, cmid) for cmid in client_message_ids],
            )

    def already_read(self, peer: str, client_message_ids: list[str]) -> set[str]:
        rows = self._db.execute(
            "SELECT client_message_id FROM messages WHERE peer_account = ? AND direction = 'in' AND status = 'read' "
            f"AND client_message_id IN ({','.join('?' * len(client_message_ids))})",  # noqa: S608 - placeholders
            [peer, *client_message_ids],
        )
        return {r[0] for r in rows}

    def messages_since(self, sent_at: int, limit: int) -> list[StoredMessage]:
        """Every conversation's messages sent at or after ``sent_at`` (ms), oldest first, the newest ``limit``."""
        rows = self._db.execute(
            f"{_MESSAGES} WHERE m.sent_at >= ? ORDER BY m.sent_at DESC, m.local_id DESC LIMIT ?", (sent_at, limit)
        )
        return [StoredMessage(*r) for r in reversed(rows.fetchall())]

    # redelivery ---------------------------------------------------------------------------------------
    def was_processed(self, envelope_id: int) -> bool:
        return self._db.execute("SELECT 1 FROM processed WHERE envelope_id = ?", (envelope_id,)).fetchone() is not None

    def mark_processed(self, envelope_id: int) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR IGNORE INTO processed VALUES (?, ?)", (envelope_id, time.time()))

    def add_pending_event(self, event: str) -> None:
        with self.transaction() as db:
            db.execute("INSERT INTO pending_events (event) VALUES (?)", (event,))

    def pending_events(self, limit: int) -> list[tuple[int, str]]:
        rows = self._db.execute("SELECT seq, event FROM pending_events ORDER BY seq LIMIT ?", (limit,))
        return [(r[0], r[1]) for r in rows]

    def events_taken(self, through_seq: int) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM pending_events WHERE seq <= ?", (through_seq,))

    # notices shown ------------------------------------------------------------------------------------
    def add_served(self, version: str, text_hash: str, surface: str) -> None:
        with self.transaction() as db:
            db.execute("INSERT INTO served_notices VALUES (?, ?, ?, ?)", (version, text_hash, surface, time.time()))

    def served(self) -> list[tuple[str, str, str, float]]:
        return [tuple(r) for r in self._db.execute("SELECT * FROM served_notices ORDER BY shown_at")]

    # usage counters -----------------------------------------------------------------------------------
    def count_usage(self, day: int, sent: int = 0, received: int = 0, opens: int = 0) -> None:
        """Add to the day's counters; the day is then due to be reported again."""
        with self.transaction() as db:
            db.execute(
                "INSERT INTO usage VALUES (?, ?, ?, ?, 0) ON CONFLICT(day) DO UPDATE SET "
                "messages_sent = messages_sent + excluded.messages_sent, "
                "messages_received = messages_received + excluded.messages_received, "
                "app_opens = app_opens + excluded.app_opens, reported = 0",
                (day, sent, received, opens),
            )

    def usage(self, since_day: int = 0) -> list[UsageDay]:
        rows = self._db.execute(
            "SELECT day, messages_sent, messages_received, app_opens FROM usage WHERE day >= ? ORDER BY day",
            (since_day,),
        )
        return [UsageDay(*r) for r in rows]

    def unreported_usage(self, since_day: int) -> list[UsageDay]:
        rows = self._db.execute(
            "SELECT day, messages_sent, messages_received, app_opens FROM usage WHERE reported = 0 AND day >= ? "
            "ORDER BY day",
            (since_day,),
        )
        return [UsageDay(*r) for r in rows]

    def usage_reported(self, days: list[UsageDay]) -> None:
        """Mark days reported, unless they counted more since (then they are reported again next time)."""
        with self.transaction() as db:
            for d in days:
                db.execute(
                    "UPDATE usage SET reported = 1 WHERE day = ? AND messages_sent = ? AND messages_received = ? "
                    "AND app_opens = ?",
                    (d.day, d.messages_sent, d.messages_received, d.app_opens),
                )

    def forget_usage_before(self, day: int) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM usage WHERE day < ?", (day,))

    # contacts the user verified ----------------------------------------------------------------------
    def verification(self, account_id: str) -> Verified | None:
        row = self._db.execute("SELECT * FROM verification_contacts WHERE account_id = ?", (account_id,)).fetchone()
        return Verified(**(dict(row) | {"changed": bool(row["changed"])})) if row else None

    def set_verified(self, record: Verified) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO verification_contacts VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(account_id) DO UPDATE SET "
                "ed25519 = excluded.ed25519, generation = excluded.generation, method = excluded.method, "
                "verified_at = excluded.verified_at, changed = excluded.changed",
                (record.account_id, record.ed25519, record.generation, record.method, record.verified_at,
                 int(record.changed)),
            )  # fmt: skip

    def verified_key_changed(self, account_id: str) -> None:
        """Previously verified, now unverified: the warning stays until the user verifies the new key."""
        with self.transaction() as db:
            db.execute("UPDATE verification_contacts SET changed = 1 WHERE account_id = ?", (account_id,))

    def changed_contacts(self) -> list[str]:
        return [r[0] for r in self._db.execute("SELECT account_id FROM verification_contacts WHERE changed = 1")]

    # everything -----------------------------------------------------------------------------------------
    def wipe(self) -> None:
        """Forget everything: identity, sessions, contacts, history (after the account was deleted)."""
        with self.transaction() as db:
            for table in _TABLES:
                db.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed table names
