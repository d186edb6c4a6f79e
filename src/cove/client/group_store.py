"""The group tables of the client's store (declared in :data:`cove.client.store.SCHEMA`): each call joins the
caller's transaction, so a group envelope's effects are written with its "processed" mark."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from cove.client.store import ClientStore

MAX_PENDING = 1000  # group messages waiting for their sender's key, per profile
PENDING_SECONDS = 7 * 24 * 3600  # a key that has not come in a week is not coming
RECEIPT_RANK = {"sent": 0, "delivered": 1, "read": 2}  # a receipt never lowers a member's state


@dataclass(frozen=True)
class Member:
    account_id: str
    role: str
    devices: tuple[int, ...]  # the devices the relay fans out to


@dataclass(frozen=True)
class Group:
    group_id: str
    revision: int
    member: bool  # False once this account was removed or left
    name: str | None
    description: str | None
    avatar: bytes | None


@dataclass(frozen=True)
class GroupMessage:
    group_id: str
    sender: str
    direction: str
    client_message_id: str
    text: str
    sent_at: int


class GroupStore:
    def __init__(self, store: ClientStore) -> None:
        self.store = store
        self._db = store.connection

    # groups and members -------------------------------------------------------------------------------
    def group(self, group_id: str) -> Group | None:
        row = self._db.execute("SELECT * FROM group_groups WHERE group_id = ?", (group_id,)).fetchone()
        return Group(row[0], row[1], bool(row[2]), row[3], row[4], row[5]) if row else None

    def groups(self) -> list[Group]:
        rows = self._db.execute("SELECT * FROM group_groups ORDER BY group_id")
        return [Group(r[0], r[1], bool(r[2]), r[3], r[4], r[5]) for r in rows]

    def save_group(self, group_id: str, revision: int, member: bool = True) -> None:
        with self.store.transaction() as db:
            db.execute(
                "INSERT INTO group_groups (group_id, revision, member) VALUES (?, ?, ?) ON CONFLICT(group_id) "
                "DO UPDATE SET revision = MAX(revision, excluded.revision), member = excluded.member",
                (group_id, revision, int(member)),
            )

    def save_info(self, group_id: str, name: str, description: str, avatar: bytes | None) -> None:
        with self.store.transaction() as db:
            db.execute("INSERT OR IGNORE INTO group_groups (group_id) VALUES (?)", (group_id,))
            db.execute(
                "UPDATE group_groups SET name = ?, description = ?, avatar = ? WHERE group_id = ?",
                (name, description, avatar, group_id),
            )

    def members(self, group_id: str) -> dict[str, Member]:
        rows = self._db.execute(
            "SELECT account_id, role, devices FROM group_members WHERE group_id = ? ORDER BY account_id", (group_id,)
        )
        return {r[0]: Member(r[0], r[1], tuple(json.loads(r[2]))) for r in rows}

    def save_member(self, group_id: str, member: Member) -> None:
        with self.store.transaction() as db:
            db.execute(
                "INSERT INTO group_members VALUES (?, ?, ?, ?) ON CONFLICT(group_id, account_id) DO UPDATE SET "
                "role = excluded.role, devices = excluded.devices",
                (group_id, member.account_id, member.role, json.dumps(list(member.devices))),
            )

    def drop_members(self, group_id: str, accounts: list[str] | None = None) -> None:
        with self.store.transaction() as db:
            if accounts is None:
                db.execute("DELETE FROM group_members WHERE group_id = ?", (group_id,))
            else:
                db.executemany(
                    "DELETE FROM group_members WHERE group_id = ? AND account_id = ?", [(group_id, a) for a in accounts]
                )

    # this device's outbound session, and who has its key ----------------------------------------------
    def outbound(self, group_id: str) -> tuple[str, str] | None:
        row = self._db.execute("SELECT session_id, pickle FROM group_outbound WHERE group_id = ?", (group_id,))
        found = row.fetchone()
        return (found[0], found[1]) if found else None

    def save_outbound(self, group_id: str, session_id: str, pickle: str) -> None:
        with self.store.transaction() as db:
            db.execute(
                "INSERT INTO group_outbound VALUES (?, ?, ?, ?) ON CONFLICT(group_id) DO UPDATE SET "
                "session_id = excluded.session_id, pickle = excluded.pickle",
                (group_id, session_id, pickle, time.time()),
            )

    def drop_outbound(self, group_id: str) -> None:
        """The next message starts a new session, whose key only the members of that moment receive."""
        with self.store.transaction() as db:
            db.execute("DELETE FROM group_outbound WHERE group_id = ?", (group_id,))
            db.execute("DELETE FROM group_shared WHERE group_id = ?", (group_id,))

    def shared(self, group_id: str, session_id: str) -> set[tuple[str, int]]:
        rows = self._db.execute(
            "SELECT account_id, device_id FROM group_shared WHERE group_id = ? AND session_id = ?",
            (group_id, session_id),
        )
        return {(r[0], r[1]) for r in rows}

    def mark_shared(self, group_id: str, session_id: str, account_id: str, devices: list[int]) -> None:
        with self.store.transaction() as db:
            db.executemany(
                "INSERT OR IGNORE INTO group_shared VALUES (?, ?, ?, ?)",
                [(group_id, session_id, account_id, d) for d in devices],
            )

    # other devices' sessions ---------------------------------------------------------------------------
    def inbound(self, group_id: str, sender: str, sender_device: int) -> list[tuple[str, str]]:
        """``(session_id, pickle)`` of a sender device's sessions for the group, newest first."""
        rows = self._db.execute(
            "SELECT session_id, pickle FROM group_inbound WHERE group_id = ? AND sender_account = ? "
            "AND sender_device = ? ORDER BY received_at DESC",
            (group_id, sender, sender_device),
        )
        return [(r[0], r[1]) for r in rows]

    def has_inbound(self, group_id: str, sender: str, sender_device: int, session_id: str) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM group_inbound WHERE group_id = ? AND sender_account = ? AND sender_device = ? "
            "AND session_id = ?",
            (group_id, sender, sender_device, session_id),
        )
        return row.fetchone() is not None

    def save_inbound(self, group_id: str, sender: str, sender_device: int, session_id: str, pickle: str) -> None:
        with self.store.transaction() as db:
            db.execute(
                "INSERT INTO group_inbound VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT DO UPDATE SET pickle = excluded.pickle",
                (group_id, sender, sender_device, session_id, pickle, time.time()),
            )

    def first_seen(self, sender: str, sender_device: int, session_id: str, index: int) -> bool:
        """Record a message index; ``False`` if it was seen before (a replay)."""
        with self.store.transaction() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO group_seen VALUES (?, ?, ?, ?)", (sender, sender_device, session_id, index)
            )
            return cursor.rowcount == 1

    # messages that came before their sender's key ---------------------------------------------------
    def keep_pending(self, frame: dict[str, Any]) -> None:
        """Keep a Megolm envelope until a key of its sender device arrives; the oldest go first past the bounds."""
        now = time.time()
        with self.store.transaction() as db:
            db.execute("DELETE FROM group_pending WHERE received_at < ?", (now - PENDING_SECONDS,))
            db.execute(
                "INSERT OR IGNORE INTO group_pending VALUES (?, ?, ?, ?, ?, ?)",
                (frame["id"], frame["group"], frame["sender"], frame["sender_device"], json.dumps(frame), now),
            )
            db.execute(
                "DELETE FROM group_pending WHERE envelope_id NOT IN "
                "(SELECT envelope_id FROM group_pending ORDER BY received_at DESC, envelope_id DESC LIMIT ?)",
                (MAX_PENDING,),
            )

    def pending(self, group_id: str, sender: str, sender_device: int) -> list[dict[str, Any]]:
        """The envelopes of a sender device in a group that wait for a key, in the order they arrived."""
        rows = self._db.execute(
            "SELECT frame FROM group_pending WHERE group_id = ? AND sender_account = ? AND sender_device = ? "
            "AND received_at >= ? ORDER BY envelope_id",
            (group_id, sender, sender_device, time.time() - PENDING_SECONDS),
        )
        return [json.loads(r[0]) for r in rows]

    def drop_pending(self, envelope_id: int) -> None:
        with self.store.transaction() as db:
            db.execute("DELETE FROM group_pending WHERE envelope_id = ?", (envelope_id,))

    # history and receipts ------------------------------------------------------------------------------
    def add_message(self, message: GroupMessage) -> None:
        with self.store.transaction() as db:
            db.execute(
                "INSERT INTO group_messages (group_id, sender_account, direction, client_message_id, text, sent_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (
                    message.group_id,
                    message.sender,
                    message.direction,
                    message.client_message_id,
                    message.text,
                    message.sent_at,
                ),
            )

    def messages(self, group_id: str, limit: int = 50) -> list[GroupMessage]:
        rows = self._db.execute(
            "SELECT group_id, sender_account, direction, client_message_id, text, sent_at FROM group_messages "
            "WHERE group_id = ? ORDER BY local_id DESC LIMIT ?",
            (group_id, limit),
        )
        return [GroupMessage(*r) for r in reversed(rows.fetchall())]

    def raise_receipt(self, group_id: str, client_message_ids: list[str], account_id: str, state: str) -> None:
        """Only for this account's own messages; a state is never lowered (a late delivery after a read)."""
        with self.store.transaction() as db:
            for cmid in client_message_ids:
                own = db.execute(
                    "SELECT 1 FROM group_messages WHERE group_id = ? AND client_message_id = ? AND direction = 'out'",
                    (group_id, cmid),
                ).fetchone()
                if own is None:
                    continue
                current = db.execute(
                    "SELECT state FROM group_receipts WHERE group_id = ? AND client_message_id = ? AND account_id = ?",
                    (group_id, cmid, account_id),
                ).fetchone()
                if current is None or RECEIPT_RANK[current[0]] < RECEIPT_RANK[state]:
                    db.execute(
                        "INSERT INTO group_receipts VALUES (?, ?, ?, ?) "
                        "ON CONFLICT DO UPDATE SET state = excluded.state",
                        (group_id, cmid, account_id, state),
                    )

    def receipts(self, group_id: str, client_message_id: str) -> dict[str, str]:
        rows = self._db.execute(
            "SELECT account_id, state FROM group_receipts WHERE group_id = ? AND client_message_id = ?",
            (group_id, client_message_id),
        )
        return {r[0]: r[1] for r in rows}
