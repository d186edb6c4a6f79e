"""What the app keeps beside the SDK's state, in the profile's own SQLite file (``ClientStore.connection``, written
in its transactions): where received files were saved, the business messages that can still be answered (their
buttons need the event itself), how far each group was read here, and the businesses' names and badges.

The SDK's own tables stay the SDK's: conversations are read from them only through the summary queries below,
which read the history as `cove history` does (the ``messages`` and ``group_messages`` tables).
"""

from __future__ import annotations

import json
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cove.client import events
from cove.client.events import AttachmentReceived, PayloadReceived, TemplateReceived
from cove.client.store import ClientStore

SCHEMA = """
CREATE TABLE IF NOT EXISTS desktop_files (
    chat TEXT NOT NULL, client_message_id TEXT NOT NULL, path TEXT NOT NULL, name TEXT NOT NULL,
    PRIMARY KEY (chat, client_message_id));
CREATE TABLE IF NOT EXISTS desktop_answerable (
    chat TEXT NOT NULL, client_message_id TEXT NOT NULL, event TEXT NOT NULL, shown TEXT NOT NULL,
    sent_at INTEGER NOT NULL, answered INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (chat, client_message_id));
CREATE TABLE IF NOT EXISTS desktop_held_files (
    chat TEXT NOT NULL, client_message_id TEXT NOT NULL, event TEXT NOT NULL, PRIMARY KEY (chat, client_message_id));
CREATE TABLE IF NOT EXISTS desktop_group_seen (group_id TEXT PRIMARY KEY, through INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS desktop_businesses (
    account_id TEXT PRIMARY KEY, display_name TEXT NOT NULL, verified INTEGER NOT NULL);
"""
MAX_ANSWERABLE = 500  # per profile: the oldest business messages lose their buttons first
MAX_HELD = 200  # files of message requests waiting to be fetched, per profile; the oldest are given up first
# The stores whose tables exist already: executescript commits first, so it runs once per store, not per use.
_CREATED: weakref.WeakSet[ClientStore] = weakref.WeakSet()


@dataclass(frozen=True)
class ChatSummary:
    """One conversation's last message and how many of its received messages are unread here."""

    key: str  # an account id, or a group id
    last_text: str
    last_at: int
    last_out: bool
    unread: int


@dataclass(frozen=True)
class Answerable:
    """A business message with something to tap: ``shown`` is what the page shows (``{"lines", "choices"}``)."""

    client_message_id: str
    event: TemplateReceived | PayloadReceived
    shown: dict[str, Any]
    sent_at: int
    answered: bool


class AppStore:
    def __init__(self, store: ClientStore) -> None:
        self.store = store
        self._db = store.connection
        if store not in _CREATED:
            self._db.executescript(SCHEMA)
            _CREATED.add(store)

    # files ---------------------------------------------------------------------------------------------
    def file_saved(self, chat: str, client_message_id: str, path: Path) -> None:
        with self.store.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO desktop_files VALUES (?, ?, ?, ?)",
                (chat, client_message_id, str(path), path.name),
            )

    def files(self, chat: str) -> dict[str, Path]:
        rows = self._db.execute("SELECT client_message_id, path FROM desktop_files WHERE chat = ?", (chat,))
        return {r[0]: Path(r[1]) for r in rows}

    # files of message requests: fetched only once the person accepts ---------------------------------------
    def hold_file(self, event: AttachmentReceived) -> None:
        with self.store.transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO desktop_held_files VALUES (?, ?, ?)",
                (event.sender, event.client_message_id, events.dump(event)),
            )
            db.execute(
                "DELETE FROM desktop_held_files WHERE rowid NOT IN "
                "(SELECT rowid FROM desktop_held_files ORDER BY rowid DESC LIMIT ?)",
                (MAX_HELD,),
            )

    def held_files(self, chat: str) -> list[AttachmentReceived]:
        rows = self._db.execute("SELECT event FROM desktop_held_files WHERE chat = ? ORDER BY rowid", (chat,))
        held = [events.load(r[0]) for r in rows]
        return [e for e in held if isinstance(e, AttachmentReceived)]

    def drop_held(self, chat: str) -> None:
        with self.store.transaction() as db:
            db.execute("DELETE FROM desktop_held_files WHERE chat = ?", (chat,))

    # business messages with buttons -----------------------------------------------------------------------
    def keep_answerable(self, event: TemplateReceived | PayloadReceived, shown: dict[str, Any]) -> None:
        with self.store.transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO desktop_answerable (chat, client_message_id, event, shown, sent_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (event.sender, event.client_message_id, events.dump(event), json.dumps(shown), event.sent_at),
            )
            db.execute(
                "DELETE FROM desktop_answerable WHERE rowid NOT IN "
                "(SELECT rowid FROM desktop_answerable ORDER BY sent_at DESC LIMIT ?)",
                (MAX_ANSWERABLE,),
            )

    def answerable(self, chat: str) -> list[Answerable]:
        rows = self._db.execute(
            "SELECT client_message_id, event, shown, sent_at, answered FROM desktop_answerable WHERE chat = ? "
            "ORDER BY sent_at",
            (chat,),
        )
        found = []
        for cmid, event, shown, sent_at, answered in rows:
            loaded = events.load(event)
            assert isinstance(loaded, TemplateReceived | PayloadReceived)
            found.append(Answerable(cmid, loaded, json.loads(shown), sent_at, bool(answered)))
        return found

    def answered(self, chat: str, client_message_id: str) -> None:
        with self.store.transaction() as db:
            db.execute(
                "UPDATE desktop_answerable SET answered = 1 WHERE chat = ? AND client_message_id = ?",
                (chat, client_message_id),
            )

    # businesses ------------------------------------------------------------------------------------------
    def business(self, account_id: str) -> tuple[str, bool] | None:
        row = self._db.execute(
            "SELECT display_name, verified FROM desktop_businesses WHERE account_id = ?", (account_id,)
        ).fetchone()
        return (row[0], bool(row[1])) if row else None

    def save_business(self, account_id: str, display_name: str, verified: bool) -> None:
        with self.store.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO desktop_businesses VALUES (?, ?, ?)", (account_id, display_name, int(verified))
            )

    def businesses(self) -> set[str]:
        return {r[0] for r in self._db.execute("SELECT account_id FROM desktop_businesses")}

    # what was read -------------------------------------------------------------------------------------------
    def group_seen(self, group_id: str, through: int) -> None:
        with self.store.transaction() as db:
            db.execute(
                "INSERT INTO desktop_group_seen VALUES (?, ?) ON CONFLICT(group_id) DO UPDATE SET "
                "through = MAX(through, excluded.through)",
                (group_id, through),
            )

    def group_unread(self, group_id: str) -> list[tuple[int, str, str]]:
        """``(local_id, sender, client_message_id)`` of the group's received messages not shown here yet."""
        rows = self._db.execute(
            "SELECT local_id, sender_account, client_message_id FROM group_messages WHERE group_id = ? "
            "AND direction = 'in' AND local_id > "
            "COALESCE((SELECT through FROM desktop_group_seen WHERE group_id = ?), 0) ORDER BY local_id",
            (group_id, group_id),
        )
        return [(r[0], r[1], r[2]) for r in rows]

    # conversations -------------------------------------------------------------------------------------------
    def one_to_one(self) -> list[ChatSummary]:
        rows = self._db.execute(
            "SELECT m.peer_account, m.text, m.sent_at, m.direction = 'out', "
            "(SELECT COUNT(*) FROM messages u WHERE u.peer_account = m.peer_account AND u.direction = 'in' "
            "AND u.status != 'read') FROM messages m WHERE m.local_id = "
            "(SELECT MAX(local_id) FROM messages l WHERE l.peer_account = m.peer_account)"
        )
        return [ChatSummary(r[0], r[1], r[2], bool(r[3]), r[4]) for r in rows]

    def groups(self) -> list[ChatSummary]:
        rows = self._db.execute(
            "SELECT g.group_id, m.text, COALESCE(m.sent_at, 0), COALESCE(m.direction = 'out', 0), "
            "(SELECT COUNT(*) FROM group_messages u WHERE u.group_id = g.group_id AND u.direction = 'in' AND "
            "u.local_id > COALESCE((SELECT through FROM desktop_group_seen s WHERE s.group_id = g.group_id), 0)) "
            "FROM group_groups g LEFT JOIN group_messages m ON m.local_id = "
            "(SELECT MAX(local_id) FROM group_messages l WHERE l.group_id = g.group_id) WHERE g.member = 1"
        )
        return [ChatSummary(r[0], r[1] or "", r[2], bool(r[3]), r[4]) for r in rows]
