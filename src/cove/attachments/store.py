"""The blobs on disk, under ``<data_dir>/attachments/<first two hex>/``: ``<id>.part`` while it is uploaded,
renamed to ``<id>`` (atomically, in one directory) once every byte is there.

Several relay processes on one host share the folder and nothing else: the length of ``<id>.part`` is how much
has arrived, and an upload request holds an exclusive ``flock`` on it while it appends, so a second request for
the same blob (in this process or another) is refused rather than interleaved. A blob id is checked to be 32
hex characters before it becomes a path. Every call blocks: the service runs them in a thread.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from pathlib import Path
from typing import BinaryIO

from cove.protocol.attachments import is_blob_id

READ_BYTES = 1024 * 1024


class UploadBusy(Exception):
    """Another request is appending to this blob right now."""


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, blob_id: str, suffix: str = "") -> Path:
        if not is_blob_id(blob_id):
            raise ValueError("a blob id is 32 lowercase hex characters")
        return self.root / blob_id[:2] / f"{blob_id}{suffix}"

    def create(self, blob_id: str) -> None:
        path = self._path(blob_id, ".part")
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))

    def received(self, blob_id: str) -> int | None:
        """Bytes uploaded so far (all of them once complete); ``None`` when neither file exists."""
        for suffix in (".part", ""):
            try:
                return self._path(blob_id, suffix).stat().st_size
            except FileNotFoundError:
                continue
        return None

    def open_for_append(self, blob_id: str) -> BinaryIO:
        """The partial blob, locked for this caller until it is closed; raises :class:`UploadBusy` if another
        holds it, ``FileNotFoundError`` once it is complete or deleted."""
        # Never created here: a late request must not bring back a blob that was completed or deleted.
        file = os.fdopen(os.open(self._path(blob_id, ".part"), os.O_WRONLY | os.O_APPEND), "ab")
        try:
            fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.close()
            raise UploadBusy(blob_id) from None
        return file

    def finish(self, blob_id: str, file: BinaryIO) -> str:
        """Make the locked partial blob complete: synced, renamed, its ciphertext's SHA-256 (hex) returned."""
        file.flush()
        os.fsync(file.fileno())
        digest = hashlib.sha256()
        part = self._path(blob_id, ".part")
        with open(part, "rb") as whole:
            while block := whole.read(READ_BYTES):
                digest.update(block)
        os.rename(part, self._path(blob_id))
        directory = os.open(part.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        return digest.hexdigest()

    def open_complete(self, blob_id: str) -> BinaryIO:
        return open(self._path(blob_id), "rb")  # noqa: SIM115 - streamed, then closed by the response

    def delete(self, blob_id: str) -> None:
        for suffix in (".part", ""):
            self._path(blob_id, suffix).unlink(missing_ok=True)
