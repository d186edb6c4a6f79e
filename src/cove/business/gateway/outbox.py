"""The webhook outbox: every event the business must receive, kept in the gateway's SQLite file until delivered.

An event is stored once, as the exact JSON bytes that will be signed and sent, so every attempt carries the
same body, the same ``X-Cove-Event-Id`` and the same ``X-Hub-Signature-256``: a receiver can dedup by id, and
delivery is at-least-once, as Meta's is.

States: pending (``delivered_at_ms`` and ``dead_at_ms`` both NULL), delivered, or dead. A failed attempt
schedules the next one (:mod:`.retries`, which honours a receiver's ``Retry-After``) or, past the 7-day horizon
or after a 410 Gone, makes the event a dead letter, which stays until :meth:`Outbox.replay`.

Order: events that share an ``ordering_key`` (a message id) go out one at a time in creation order. An event
waits while an earlier one with its key is pending, also while that one is between retries, so a message's
``read`` status never overtakes its ``delivered``. A dead event stops blocking its key. Events
without a key, and events of different keys, are not ordered.

Transactions: every method writes with at most one statement and never commits a transaction it did not
start. Called inside the caller's open transaction it joins it, so an ``add`` can be atomic with the write that
caused the event, and a rollback takes the event with it; called outside one, it commits before returning.
Give the outbox a connection in autocommit mode (``isolation_level=None``, like ClientStore's) and open
transactions explicitly (``BEGIN IMMEDIATE``): under Python's legacy default a ``with conn:`` block has no
transaction until its first write, so an ``add`` that comes first in it would be committed on its own.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from cove.business.gateway import retries

# seq, an alias of the rowid, gives a stable creation order for events created in the same millisecond;
# SQLite may renumber a rowid that is not declared (VACUUM), so event_id is UNIQUE rather than the primary key
SCHEMA = (
    """CREATE TABLE IF NOT EXISTS webhook_events (
        seq INTEGER PRIMARY KEY,
        event_id TEXT NOT NULL UNIQUE,
        ordering_key TEXT,
        body BLOB NOT NULL,
        created_at_ms INTEGER NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at_ms INTEGER NOT NULL,
        delivered_at_ms INTEGER,
        dead_at_ms INTEGER,
        last_error TEXT)""",
    """CREATE INDEX IF NOT EXISTS webhook_events_pending ON webhook_events (created_at_ms, seq)
        WHERE delivered_at_ms IS NULL AND dead_at_ms IS NULL""",
    """CREATE INDEX IF NOT EXISTS webhook_events_pending_key ON webhook_events (ordering_key, created_at_ms, seq)
        WHERE delivered_at_ms IS NULL AND dead_at_ms IS NULL""",
)

_COLUMNS = (
    "e.event_id, e.ordering_key, e.body, e.created_at_ms, e.attempts, e.next_attempt_at_ms, e.delivered_at_ms, "
    "e.dead_at_ms, e.last_error"
)
_PENDING = "e.delivered_at_ms IS NULL AND e.dead_at_ms IS NULL"
# the head of its key: no earlier event with the same key is pending (a NULL key never equals anything)
_UNBLOCKED = """NOT EXISTS (
    SELECT 1 FROM webhook_events AS earlier
    WHERE earlier.ordering_key = e.ordering_key AND earlier.delivered_at_ms IS NULL AND earlier.dead_at_ms IS NULL
      AND (earlier.created_at_ms, earlier.seq) < (e.created_at_ms, e.seq))"""
MAX_ERROR_CHARS = 200


@dataclass(frozen=True)
class Event:
    event_id: str
    ordering_key: str | None
    body: bytes
    created_at_ms: int
    attempts: int  # attempts made so far; the next one is attempts + 1
    next_attempt_at_ms: int
    delivered_at_ms: int | None
    dead_at_ms: int | None
    last_error: str | None


class Outbox:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        for statement in SCHEMA:
            self._write(statement)

    def _write(self, sql: str, params: Sequence[object] = ()) -> sqlite3.Cursor:
        joined = self._db.in_transaction
        cursor = self._db.execute(sql, params)
        if not joined:
            self._db.commit()
        return cursor

    def _events(self, sql: str, params: Sequence[object] = ()) -> list[Event]:
        return [Event(*row) for row in self._db.execute(sql, params)]

    # writing ------------------------------------------------------------------------------------------
    def add(self, event_id: str, body: bytes, now_ms: int, ordering_key: str | None = None) -> bool:
        """Store an event, due now; False (and nothing changed) if the id is already stored."""
        cursor = self._write(
            "INSERT INTO webhook_events (event_id, ordering_key, body, created_at_ms, next_attempt_at_ms) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING",
            (event_id, ordering_key, body, now_ms, now_ms),
        )
        return cursor.rowcount == 1

    def claim(self, now_ms: int, limit: int, lease_ms: int) -> list[Event]:
        """:meth:`due` events, moved out of the due set for ``lease_ms`` while the caller delivers them.

        The lease keeps an event in flight from being handed out again, and keeps :meth:`next_due_ms` in the
        future meanwhile. The caller reports each one with :meth:`delivered` or :meth:`failed`; if it crashes
        first, the lease runs out and the event is sent again (at-least-once).
        """
        events = self.due(now_ms, limit)
        if events:
            self._write(
                "UPDATE webhook_events SET next_attempt_at_ms = ? WHERE event_id IN (SELECT value FROM json_each(?))",
                (now_ms + lease_ms, json.dumps([e.event_id for e in events])),
            )
        return events

    def delivered(self, event_id: str, now_ms: int) -> None:
        self._write(
            "UPDATE webhook_events SET delivered_at_ms = ?, attempts = attempts + 1, last_error = NULL "
            "WHERE event_id = ? AND delivered_at_ms IS NULL AND dead_at_ms IS NULL",
            (now_ms, event_id),
        )

    def failed(
        self, event_id: str, error: str, now_ms: int, retry_after_ms: int | None = None, final: bool = False
    ) -> bool:
        """Record a failed attempt and schedule the next, not sooner than ``retry_after_ms`` from now when the
        receiver asked for that (:func:`retries.next_attempt_ms`); ``final`` (a 410 Gone) makes it a dead letter
        at once. True if the event became a dead letter."""
        row = self._db.execute(
            f"SELECT e.attempts, e.created_at_ms FROM webhook_events AS e WHERE e.event_id = ? AND {_PENDING}",
            (event_id,),
        ).fetchone()
        if row is None:  # unknown, or no longer pending (delivered, dead): nothing to schedule
            return False
        attempts, created_at_ms = row[0] + 1, row[1]
        next_ms = None if final else retries.next_attempt_ms(event_id, attempts, created_at_ms, now_ms, retry_after_ms)
        self._write(
            "UPDATE webhook_events SET attempts = ?, last_error = ?, "
            "next_attempt_at_ms = coalesce(?, next_attempt_at_ms), dead_at_ms = ? WHERE event_id = ?",
            (attempts, error[:MAX_ERROR_CHARS], next_ms, now_ms if next_ms is None else None, event_id),
        )
        return next_ms is None

    def replay(self, event_ids: list[str] | None, now_ms: int) -> int:
        """Make dead letters pending and due now (all of them for None); returns how many.

        Attempts are kept, and the horizon still counts from creation: a replayed event older than 7 days
        gets one more attempt and, if that fails, is a dead letter again.
        """
        sql = "UPDATE webhook_events SET dead_at_ms = NULL, next_attempt_at_ms = ? WHERE dead_at_ms IS NOT NULL"
        if event_ids is None:
            return self._write(sql, (now_ms,)).rowcount
        return self._write(
            f"{sql} AND event_id IN (SELECT value FROM json_each(?))", (now_ms, json.dumps(event_ids))
        ).rowcount

    # reading ------------------------------------------------------------------------------------------
    def due(self, now_ms: int, limit: int) -> list[Event]:
        """Pending events whose attempt is due and that head their ordering key, oldest first."""
        return self._events(
            f"SELECT {_COLUMNS} FROM webhook_events AS e WHERE {_PENDING} AND e.next_attempt_at_ms <= ? "
            f"AND {_UNBLOCKED} ORDER BY e.created_at_ms, e.seq LIMIT ?",
            (now_ms, limit),
        )

    def next_due_ms(self) -> int | None:
        """When the next event becomes due (possibly already past); None when nothing is pending.

        Only heads of their key count: an event behind a pending one becomes due when that one settles,
        which the worker sees when it records the outcome.
        """
        row = self._db.execute(
            f"SELECT min(e.next_attempt_at_ms) FROM webhook_events AS e WHERE {_PENDING} AND {_UNBLOCKED}"
        ).fetchone()
        return row[0]

    def prune(self, delivered_before_ms: int) -> int:
        """Forget events delivered before this time: the business has them, and they may hold users' words."""
        return self._write(
            "DELETE FROM webhook_events WHERE delivered_at_ms IS NOT NULL AND delivered_at_ms < ?",
            (delivered_before_ms,),
        ).rowcount

    def dead_letters(self) -> list[Event]:
        return self._events(
            f"SELECT {_COLUMNS} FROM webhook_events AS e WHERE e.dead_at_ms IS NOT NULL ORDER BY e.dead_at_ms, e.seq"
        )

    def stats(self, now_ms: int) -> dict[str, int | None]:
        pending, delivered, dead, oldest = self._db.execute(
            f"SELECT count(*) FILTER (WHERE {_PENDING}), count(e.delivered_at_ms), count(e.dead_at_ms), "
            f"min(e.created_at_ms) FILTER (WHERE {_PENDING}) FROM webhook_events AS e"
        ).fetchone()
        return {
            "pending": pending,
            "delivered": delivered,
            "dead": dead,
            "oldest_pending_age_ms": None if oldest is None else now_ms - oldest,
        }
