"""What the business offered in each interactive message it sent, so a user's reply is checked against it.

A user's client builds a reply only from the choices of the message it answers
(:func:`cove.protocol.business_messages.compose_interactive_reply`), but the gateway does not trust the user's
client any more than the client trusts the gateway: a modified client could answer "refund-approved" to a
message that offered "yes" and "no", and a business's handler acts on the id. With Meta that cannot happen (its
servers build the reply from the tap), so a Cloud API integration has no reason to check, and a webhook has no
field to say "unchecked". The gateway therefore posts a reply only if the message it answers, sent by this
business to this user, offered exactly that choice (type, id, title, description); anything else is dropped
with a log line and no webhook (:func:`verdict` says why, for the log).

The table ``gw_offered`` (in the gateway's SQLite file) is bounded twice: rows older than the retention are
pruned with the messages, and past :data:`OFFERED_MAX` rows the oldest go at once, whatever their age. A reply
to a forgotten message is dropped the same way: its choice can no longer be checked.

``gw_reactions`` (bounded and pruned the same way) names the business's reactions: as with Meta, a reaction
gets a ``sent`` status webhook and no ``delivered`` or ``read`` (Meta's reaction-messages page), though the
user's client acknowledges it like any message.
"""

from __future__ import annotations

import json
import sqlite3

from cove.protocol.business_messages import AnyInteractive, ReplyChoice, offered_choices

SCHEMA = """
CREATE TABLE IF NOT EXISTS gw_offered (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, message_id TEXT NOT NULL UNIQUE, account_id TEXT NOT NULL,
    choices TEXT NOT NULL, created_at_ms INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS ix_gw_offered_created ON gw_offered (created_at_ms);
CREATE TABLE IF NOT EXISTS gw_reactions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, message_id TEXT NOT NULL UNIQUE, created_at_ms INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS ix_gw_reactions_created ON gw_reactions (created_at_ms);
"""

#: At most this many interactive messages are remembered (about 3 KB each at the most: 10 rows of ids ≤200).
OFFERED_MAX = 200_000


class Offered:
    """The choices of sent interactive messages, by the message's client message id (its Cloud API id)."""

    def __init__(self, db: sqlite3.Connection, limit: int = OFFERED_MAX) -> None:
        self.db = db
        self.limit = limit
        self.db.executescript(SCHEMA)

    def record(self, message_id: str, account_id: str, interactive: AnyInteractive, now_ms: int) -> None:
        """Remember what ``message_id`` offers ``account_id`` (inside the caller's transaction). Messages that
        offer no choice (a CTA URL, a location request) are not stored: no reply can name one of theirs."""
        choices = offered_choices(interactive)
        if not choices:
            return
        dumped = json.dumps([c.model_dump(mode="json", exclude_none=True) for c in choices], separators=(",", ":"))
        cursor = self.db.execute(
            "INSERT INTO gw_offered (message_id, account_id, choices, created_at_ms) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(message_id) DO NOTHING",
            (message_id, account_id, dumped, now_ms),
        )
        if cursor.rowcount == 1 and cursor.lastrowid is not None and cursor.lastrowid > self.limit:
            self.db.execute("DELETE FROM gw_offered WHERE seq <= ?", (cursor.lastrowid - self.limit,))

    def forget(self, message_id: str) -> None:
        """A send that was not accepted (throttled): the business sends it again, perhaps with other choices."""
        self.db.execute("DELETE FROM gw_offered WHERE message_id = ?", (message_id,))
        self.db.execute("DELETE FROM gw_reactions WHERE message_id = ?", (message_id,))

    def verdict(self, account_id: str, context_id: str, reply: ReplyChoice) -> str | None:
        """None if ``reply`` is one of the choices ``context_id`` offered ``account_id``; otherwise why not."""
        row = self.db.execute(
            "SELECT account_id, choices FROM gw_offered WHERE message_id = ?", (context_id,)
        ).fetchone()
        if row is None:
            return "it answers no interactive message the gateway remembers sending"
        if row[0] != account_id:
            return "it answers an interactive message sent to someone else"
        offered = [ReplyChoice.model_validate(choice) for choice in json.loads(row[1])]
        if reply not in offered:
            return "its choice is not one the message offered"
        return None

    def record_reaction(self, message_id: str, now_ms: int) -> None:
        cursor = self.db.execute(
            "INSERT INTO gw_reactions (message_id, created_at_ms) VALUES (?, ?) ON CONFLICT(message_id) DO NOTHING",
            (message_id, now_ms),
        )
        if cursor.rowcount == 1 and cursor.lastrowid is not None and cursor.lastrowid > self.limit:
            self.db.execute("DELETE FROM gw_reactions WHERE seq <= ?", (cursor.lastrowid - self.limit,))

    def is_reaction(self, message_id: str) -> bool:
        query = "SELECT 1 FROM gw_reactions WHERE message_id = ?"
        return self.db.execute(query, (message_id,)).fetchone() is not None

    def prune(self, before_ms: int) -> None:
        self.db.execute("DELETE FROM gw_offered WHERE created_at_ms < ?", (before_ms,))
        self.db.execute("DELETE FROM gw_reactions WHERE created_at_ms < ?", (before_ms,))
