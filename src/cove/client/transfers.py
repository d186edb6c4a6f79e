"""Moving attachments between a file on disk and the relay: encrypt, upload resumably, download (resuming with
``Range``), verify and decrypt into a temporary file that becomes the named file only when everything checked.

The ciphertext goes to a temporary file first (encrypting twice would cost as much as uploading from it, and a
file changed meanwhile would no longer match its digest); requests carry it a block at a time, so no more than
a chunk of the file is in memory. A broken connection is resumed from what the relay reports it has, as long as
no more than :data:`MAX_RESUMES` requests in a row bring nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import mimetypes
import os
import secrets
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, BinaryIO

import httpx

from cove.client import paths
from cove.client.attachments import AttachmentError, Decryptor, encrypt_file
from cove.client.errors import RelayError
from cove.protocol.attachments import KEY_BYTES, MAX_PATCH_BYTES, Pointer, is_blob_id, parse_pointer, safe_name

MAX_RESUMES = 5
_RESUMABLE = {"wrong_offset", "upload_in_progress"}  # answers after which the status says where to go on
BLOCK_BYTES = 256 * 1024


class Transfers:
    def __init__(self, http: httpx.AsyncClient, token: Callable[[], str | None]) -> None:
        self._http = http
        self._token = token

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token()}"}

    async def _json(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        response = await self._http.request(method, path, json=body, headers=self._auth())
        return _answer(response)

    # uploading -------------------------------------------------------------------------------------------
    async def upload(self, path: Path, recipients: int, name: str | None = None, mime: str | None = None) -> Pointer:
        """Encrypt the file with a fresh key and upload it for ``recipients`` devices; returns its pointer. The
        pointer names the file ``name`` with type ``mime`` (default: the path's name and what it suggests)."""
        key = secrets.token_bytes(KEY_BYTES)
        with tempfile.TemporaryFile() as sealed:
            with await asyncio.to_thread(open, path, "rb") as source:
                digest, size, sealed_size = await asyncio.to_thread(encrypt_file, source, sealed, key)
            created = await self._json("POST", "/v1/attachments", {"size": sealed_size, "recipients": recipients})
            blob_id = created.get("id")
            if not is_blob_id(blob_id):
                raise AttachmentError("the relay named the upload with something that is not a blob id")
            stored = await self._send(str(blob_id), sealed, sealed_size, int(created["upload_offset"]))
        if stored.get("digest") != digest:
            raise AttachmentError("the relay stored other bytes than were uploaded")
        mime = mime or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return Pointer(str(blob_id), key, digest, size, mime, safe_name(name or path.name))

    async def _send(self, blob_id: str, sealed: BinaryIO, size: int, offset: int) -> dict[str, Any]:
        idle = 0  # requests in a row that took the upload no further
        target = paths.build(paths.ATTACHMENT, attachment_id=blob_id)
        while True:
            length = min(MAX_PATCH_BYTES, size - offset)
            headers = self._auth() | {
                "Upload-Offset": str(offset),
                "Content-Length": str(length),
                "Content-Type": "application/octet-stream",
            }
            try:
                response = await self._http.patch(target, content=_blocks(sealed, offset, length), headers=headers)
                status = _answer(response)
            except (httpx.TransportError, RelayError) as exc:
                if isinstance(exc, RelayError) and exc.code not in _RESUMABLE:
                    raise
                if isinstance(exc, RelayError) and exc.code == "upload_in_progress":
                    # The relay has not yet seen the end of the broken request that still holds the upload.
                    await asyncio.sleep(0.2 * (idle + 1))
                status = await self._json("GET", paths.build(paths.ATTACHMENT_STATUS, attachment_id=blob_id))
            if status["complete"]:
                return status
            moved_to = int(status["upload_offset"])
            if not 0 <= moved_to < size:
                raise AttachmentError("the relay reports an upload offset outside the file")
            idle = 0 if moved_to > offset else idle + 1
            if idle > MAX_RESUMES:
                raise AttachmentError(f"the upload went no further in {idle} requests")
            offset = moved_to

    # downloading -----------------------------------------------------------------------------------------
    async def download(self, pointer: dict[str, Any] | Pointer, destination: Path) -> Path:
        """Fetch, check and decrypt to ``destination`` (never overwritten: an existing name gets `` (1)``...);
        returns the path written. ``AttachmentError`` if the download is not the file the pointer names, and
        then nothing is left behind."""
        found = pointer if isinstance(pointer, Pointer) else parse_pointer(pointer)
        folder = destination.parent
        await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
        part = folder / f".{secrets.token_hex(8)}.part"
        try:
            with await asyncio.to_thread(open, part, "xb") as out:
                decryptor = Decryptor(found, out)
                await self._fetch(found.id, decryptor)
                await asyncio.to_thread(decryptor.finish)
                out.flush()
                os.fsync(out.fileno())
            return _keep(part, destination)
        finally:
            part.unlink(missing_ok=True)

    async def add_recipients(self, blob_id: str, count: int) -> None:
        """Expect ``count`` more devices to fetch a blob uploaded before: a forward sends its pointer again. A
        ``RelayError`` 404 once it expired, 403 when this device may not fetch it either."""
        await self._json("POST", paths.build(paths.ATTACHMENT_RECIPIENTS, attachment_id=blob_id), {"count": count})

    async def _fetch(self, blob_id: str, decryptor: Decryptor) -> None:
        target = paths.build(paths.ATTACHMENT, attachment_id=blob_id)
        idle = 0  # requests in a row that brought nothing
        while decryptor.received < decryptor.expected:
            before = decryptor.received
            headers = self._auth()
            if before:
                headers["Range"] = f"bytes={before}-"
            with contextlib.suppress(httpx.TransportError):
                async with self._http.stream("GET", target, headers=headers) as response:
                    if response.status_code >= 400:
                        await response.aread()
                        _answer(response)
                    if before and response.status_code != 206:
                        raise AttachmentError("the relay did not resume the download where it stopped")
                    async for block in response.aiter_bytes(BLOCK_BYTES):
                        await asyncio.to_thread(decryptor.feed, block)
            idle = 0 if decryptor.received > before else idle + 1
            if idle > MAX_RESUMES:
                raise AttachmentError(f"the download went no further in {idle} requests")


def _answer(response: httpx.Response) -> dict[str, Any]:
    body = response.json() if response.content else {}
    if response.status_code >= 400:
        raise RelayError(response.status_code, body)
    return body


async def _blocks(sealed: BinaryIO, offset: int, length: int) -> AsyncIterator[bytes]:
    await asyncio.to_thread(sealed.seek, offset)
    while length > 0:
        block = await asyncio.to_thread(sealed.read, min(BLOCK_BYTES, length))
        if not block:
            raise AttachmentError("the encrypted copy is shorter than it was")
        length -= len(block)
        yield block


def _keep(part: Path, destination: Path) -> Path:
    """Give the checked file its name without replacing one that exists: a hard link fails rather than
    overwrite, so two saves of the same name cannot clobber each other."""
    stem, suffix = destination.stem, destination.suffix
    for n in range(1000):
        candidate = destination if n == 0 else destination.with_name(f"{stem} ({n}){suffix}")
        try:
            os.link(part, candidate)
        except FileExistsError:
            continue
        return candidate
    raise AttachmentError(f"too many files named like {destination.name} in {destination.parent}")
