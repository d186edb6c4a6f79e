"""Where the gateway keeps media: each file under the profile's ``media/`` folder by its media id, its facts in
the gateway's SQLite file, and the files users sent that are still to be fetched from the relay.

- ``gw_media``: an uploaded or received file: MIME type, SHA-256 (hex, of the file as stored), size, the name to
  give it, where it came from, and when it expires (30 days for an upload, 7 for a user's, as Meta's ids).
- ``gw_media_inbound``: a user's attachment whose envelope is applied but whose file is not fetched yet: its
  pointer (blob id and key) waits here, written in the envelope's transaction, so a crash loses no file and the
  webhook is queued only once the file is stored (:mod:`.media`).

The store is bounded: ``quota_bytes`` for all files together; a file that would pass it is refused (131053),
as an expired one is removed by :meth:`MediaStore.prune`. A file is written to a temporary name and renamed
when complete, so a crash leaves no half file under an id.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cove.business.errors import CloudApiError
from cove.business.gateway.media_rules import is_media_id
from cove.client.store import ClientStore

SCHEMA = """
CREATE TABLE IF NOT EXISTS gw_media (
    media_id TEXT PRIMARY KEY, mime TEXT NOT NULL, sha256 TEXT NOT NULL, size INTEGER NOT NULL,
    filename TEXT, origin TEXT NOT NULL, created_at_ms INTEGER NOT NULL, expires_at_ms INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS ix_gw_media_expires ON gw_media (expires_at_ms);
CREATE TABLE IF NOT EXISTS gw_media_inbound (
    account_id TEXT NOT NULL, client_message_id TEXT NOT NULL, wa_id TEXT NOT NULL, pointer TEXT NOT NULL,
    caption TEXT, received_at_ms INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (account_id, client_message_id));
"""

DEFAULT_QUOTA_BYTES = 2 * 1024**3
MAX_PENDING = 10_000  # users' files waiting to be fetched; past it the oldest envelopes wait in the relay instead
PART_KEPT_MS = 3_600_000


@dataclass(frozen=True)
class Media:
    media_id: str
    mime: str
    sha256: str
    size: int
    filename: str | None
    origin: str  # "upload" (the business's) or "received" (a user's)
    expires_at_ms: int


@dataclass(frozen=True)
class PendingFile:
    account_id: str
    client_message_id: str
    wa_id: str
    pointer: dict[str, Any]
    caption: str | None
    received_at_ms: int
    attempts: int


class MediaStore:
    def __init__(self, client_store: ClientStore, folder: Path, quota_bytes: int = DEFAULT_QUOTA_BYTES) -> None:
        self.client_store = client_store
        self.db: sqlite3.Connection = client_store.connection
        self.db.executescript(SCHEMA)
        self.folder = folder
        self.quota_bytes = quota_bytes
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)

    # files -------------------------------------------------------------------------------------------------------
    def path(self, media_id: str) -> Path:
        if not is_media_id(media_id):  # the id becomes a file name: digits only, never a path
            raise ValueError(f"not a media id: {media_id[:40]!r}")
        return self.folder / media_id

    def part(self) -> Path:
        """A temporary file to write a new file into (kept only by :meth:`add`)."""
        return self.folder / f".{secrets.token_hex(8)}.part"

    def used_bytes(self) -> int:
        return int(self.db.execute("SELECT COALESCE(SUM(size), 0) FROM gw_media").fetchone()[0])

    def room_for(self, size: int) -> None:
        """131053 if a file of ``size`` bytes would take the store past its quota."""
        if self.used_bytes() + size > self.quota_bytes:
            raise CloudApiError(
                131053,
                f"The gateway's media storage is full ({self.quota_bytes} bytes); delete media or wait for it to"
                " expire.",
            )

    def add(self, part: Path, media: Media, now_ms: int) -> None:
        """Keep a complete file written to ``part`` under its id (within the quota, else 131053 and ``part`` is
        removed)."""
        with self.client_store.transaction() as db:
            try:
                self.room_for(media.size)
            except CloudApiError:
                part.unlink(missing_ok=True)
                raise
            os.replace(part, self.path(media.media_id))
            db.execute(
                "INSERT INTO gw_media VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (media.media_id, media.mime, media.sha256, media.size, media.filename, media.origin, now_ms,
                 media.expires_at_ms),
            )  # fmt: skip

    def get(self, media_id: str, now_ms: int) -> Media | None:
        if not is_media_id(media_id):
            return None
        row = self.db.execute(
            "SELECT media_id, mime, sha256, size, filename, origin, expires_at_ms FROM gw_media "
            "WHERE media_id = ? AND expires_at_ms > ?",
            (media_id, now_ms),
        ).fetchone()
        return Media(*row) if row else None

    def delete(self, media_id: str) -> bool:
        if not is_media_id(media_id):
            return False
        with self.client_store.transaction() as db:
            gone = db.execute("DELETE FROM gw_media WHERE media_id = ?", (media_id,)).rowcount == 1
        self.path(media_id).unlink(missing_ok=True)
        return gone

    def prune(self, now_ms: int) -> int:
        """Remove expired files, and files no row names (a crash between writing and recording one)."""
        with self.client_store.transaction() as db:
            expired = [r[0] for r in db.execute("SELECT media_id FROM gw_media WHERE expires_at_ms <= ?", (now_ms,))]
            db.execute("DELETE FROM gw_media WHERE expires_at_ms <= ?", (now_ms,))
        known = {r[0] for r in self.db.execute("SELECT media_id FROM gw_media")}
        removed = 0
        for path in self.folder.iterdir():
            stale = path.name.endswith(".part") and path.stat().st_mtime * 1000 < now_ms - PART_KEPT_MS
            if path.name in expired or stale or (is_media_id(path.name) and path.name not in known):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                removed += 1
        return removed

    # users' files waiting to be fetched --------------------------------------------------------------------------
    def add_pending(self, pending: PendingFile) -> bool:
        """Record a user's attachment to fetch (inside the envelope's transaction); once only per message."""
        cursor = self.db.execute(
            "INSERT INTO gw_media_inbound VALUES (?, ?, ?, ?, ?, ?, 0) ON CONFLICT DO NOTHING",
            (pending.account_id, pending.client_message_id, pending.wa_id, json.dumps(pending.pointer),
             pending.caption, pending.received_at_ms),
        )  # fmt: skip
        return cursor.rowcount == 1

    def pending_count(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM gw_media_inbound").fetchone()[0])

    def pending(self, limit: int = 10) -> list[PendingFile]:
        rows = self.db.execute(
            "SELECT account_id, client_message_id, wa_id, pointer, caption, received_at_ms, attempts "
            "FROM gw_media_inbound ORDER BY received_at_ms LIMIT ?",
            (limit,),
        ).fetchall()
        return [PendingFile(r[0], r[1], r[2], json.loads(r[3]), r[4], r[5], r[6]) for r in rows]

    def attempted(self, pending: PendingFile) -> None:
        with self.client_store.transaction() as db:
            db.execute(
                "UPDATE gw_media_inbound SET attempts = attempts + 1 WHERE account_id = ? AND client_message_id = ?",
                (pending.account_id, pending.client_message_id),
            )

    def done(self, pending: PendingFile) -> None:
        """Forget a fetched (or given up) file's pointer: call it in the transaction that queues its webhook."""
        self.db.execute(
            "DELETE FROM gw_media_inbound WHERE account_id = ? AND client_message_id = ?",
            (pending.account_id, pending.client_message_id),
        )
