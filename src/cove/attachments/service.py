"""Creating, uploading, downloading and expiring attachment blobs.

Nothing a process needs is kept in it between requests: the table says who uploads a blob and when it expires,
the partial file's length says how much has arrived (:mod:`cove.attachments.store`), so any relay process on
the host can take the next request of an upload or a download.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import BinaryIO

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from starlette.requests import ClientDisconnect

from cove.accounts.storage import DeviceRecord
from cove.attachments import rules, storage
from cove.attachments.models import MoreRecipients, NewUpload, Recipients, UploadStatus
from cove.attachments.store import BlobStore, UploadBusy
from cove.clock import now_ms
from cove.context import Relay
from cove.errors import ApiError
from cove.limits.table import Limiter
from cove.protocol.attachments import MAX_PATCH_BYTES, MAX_RECIPIENTS

log = logging.getLogger("cove.attachments")

WRITE_BYTES = 1024 * 1024  # gathered from the request body before each write to disk
READ_BYTES = 256 * 1024  # read from disk per chunk of a download
PURGE_BATCH = 500


def blob_store(relay: Relay) -> BlobStore:
    return BlobStore(relay.settings.data_dir / "attachments")


def _gone() -> ApiError:
    return ApiError(404, "attachment_not_found", "no such attachment: unknown, not uploaded completely, or expired")


def _status(blob: storage.Blob, received: int, digest: str | None = None) -> UploadStatus:
    return UploadStatus(
        id=blob.id,
        size=blob.size,
        upload_offset=received,
        max_bytes=MAX_PATCH_BYTES,
        complete=received >= blob.size,
        digest=digest or blob.digest,
    )


async def create(relay: Relay, device: DeviceRecord, body: NewUpload) -> UploadStatus:
    limit = relay.settings.max_attachment_bytes
    if body.size > limit:
        raise ApiError(413, "attachment_too_large", f"an attachment may have at most {limit} bytes of ciphertext")
    await relay.limits.check(Limiter.ATTACHMENT_CREATE, device.account_id)
    blob_id = secrets.token_hex(16)
    now = now_ms()
    ttl = int(relay.settings.attachment_upload_hours * 3_600_000)
    # The row first: a file without one would never expire, a row without a file expires like any other.
    async with relay.engine.begin() as conn:
        await storage.create(conn, blob_id, device.account_id, device.device_id, body.size, body.recipients, now, ttl)
    await asyncio.to_thread(blob_store(relay).create, blob_id)
    return UploadStatus(id=blob_id, size=body.size, upload_offset=0, max_bytes=MAX_PATCH_BYTES, complete=False)


async def _uploaders_blob(relay: Relay, device: DeviceRecord, blob_id: str) -> storage.Blob:
    async with relay.engine.connect() as conn:
        blob = await storage.get(conn, blob_id)
    if blob is None or blob.expires_at_ms <= now_ms():
        raise _gone()
    if (blob.uploader_account_id, blob.uploader_device_id) != (device.account_id, device.device_id):
        raise ApiError(403, "not_uploader", "only the device that created an attachment uploads to it")
    return blob


async def status(relay: Relay, device: DeviceRecord, blob_id: str) -> UploadStatus:
    blob = await _uploaders_blob(relay, device, blob_id)
    received = await asyncio.to_thread(blob_store(relay).received, blob_id)
    if received is None:
        raise _gone()
    return _status(blob, received)


async def upload(
    relay: Relay,
    device: DeviceRecord,
    blob_id: str,
    offset: int,
    announced: int | None,
    body: AsyncIterator[bytes],
) -> UploadStatus:
    """Append one request's body at ``offset``. What arrives before the client goes away is kept: the next request
    continues from the length the status reports."""
    blob = await _uploaders_blob(relay, device, blob_id)
    if blob.complete:
        raise ApiError(409, "wrong_offset", "the upload is complete", upload_offset=blob.size)
    store = blob_store(relay)
    try:
        part = await asyncio.to_thread(store.open_for_append, blob_id)
    except UploadBusy:
        raise ApiError(409, "upload_in_progress", "another request is uploading to this attachment") from None
    except FileNotFoundError:  # completed or purged since the row was read
        raise _gone() from None
    try:
        received = part.tell()
        try:
            room = rules.upload_room(blob.size, received, offset, MAX_PATCH_BYTES)
        except rules.WrongOffset as exc:
            raise ApiError(409, "wrong_offset", str(exc), upload_offset=exc.expected) from None
        if announced is not None and announced > room:
            raise ApiError(413, "upload_too_large", f"this request may carry at most {room} bytes")
        try:
            await _append(part, body, room)
        finally:
            received = part.tell()  # what the file holds, even when the body was refused or broken off midway
            async with relay.engine.begin() as conn:
                await storage.set_received(conn, blob_id, received)
        if received < blob.size:
            return _status(blob, received)
        try:
            digest = await asyncio.to_thread(store.finish, blob_id, part)
        except FileNotFoundError:  # purged while it was uploading
            raise _gone() from None
        async with relay.engine.begin() as conn:
            await storage.complete(conn, blob_id, digest, now_ms(), relay.retention_ms)
        return _status(blob, received, digest)
    finally:
        await asyncio.to_thread(part.close)


async def _append(part: BinaryIO, body: AsyncIterator[bytes], room: int) -> None:
    """Write the body to the file as it arrives, a megabyte at a time. A body longer than ``room`` is refused
    with 413 once it passes it, keeping what fitted."""
    written = 0
    pending: list[bytes] = []
    pending_bytes = 0
    try:
        async for chunk in body:
            if written + pending_bytes + len(chunk) > room:
                raise ApiError(413, "upload_too_large", f"this request may carry at most {room} bytes")
            pending.append(chunk)
            pending_bytes += len(chunk)
            if pending_bytes >= WRITE_BYTES:
                await asyncio.to_thread(part.write, b"".join(pending))
                written, pending, pending_bytes = written + pending_bytes, [], 0
    except ClientDisconnect:
        log.info("an attachment upload was interrupted; it resumes from what arrived")
    finally:
        if pending:
            await asyncio.to_thread(part.write, b"".join(pending))
        await asyncio.to_thread(part.flush)


@dataclass
class Download:
    file: BinaryIO
    size: int
    first: int
    last: int
    partial: bool
    uploader: tuple[str, int]  # whose own fetches do not count: the recipients are the others


async def _serves(conn: AsyncConnection, blob: storage.Blob, device: DeviceRecord) -> bool:
    """Whether a complete blob is fetched by ``device``: by any while not every expected device has, then only
    by those that did, to resume a download that broke (``storage.FETCHED_GRACE_MS``)."""
    return blob.fetches < blob.recipients or await storage.has_fetched(
        conn, blob.id, device.account_id, device.device_id
    )


async def open_download(relay: Relay, device: DeviceRecord, blob_id: str, range_header: str | None) -> Download:
    """Every device that knows the id may fetch a complete blob, until every expected device has: then only
    those, to resume a download that broke (``storage.FETCHED_GRACE_MS``)."""
    async with relay.engine.connect() as conn:
        blob = await storage.get(conn, blob_id)
        if blob is None or not blob.complete or blob.expires_at_ms <= now_ms():
            raise _gone()
        if not await _serves(conn, blob, device):
            raise _gone()
    try:
        wanted = rules.byte_range(range_header, blob.size)
    except rules.RangeNotSatisfiable as exc:
        error = ApiError(416, "range_not_satisfiable", str(exc))
        error.headers["Content-Range"] = f"bytes */{blob.size}"
        raise error from None
    try:
        file = await asyncio.to_thread(blob_store(relay).open_complete, blob_id)
    except FileNotFoundError:
        raise _gone() from None
    first, last = wanted or (0, blob.size - 1)
    uploader = (blob.uploader_account_id, blob.uploader_device_id)
    return Download(file, blob.size, first, last, wanted is not None, uploader)


async def stream(relay: Relay, device: DeviceRecord, blob_id: str, download: Download) -> AsyncIterator[bytes]:
    """The bytes asked for. A device (other than the uploader) about to be sent the blob's last byte has fetched
    it: counted once, before that byte leaves, so that whoever asks next already sees the count."""
    counts = download.last == download.size - 1 and (device.account_id, device.device_id) != download.uploader
    try:
        await asyncio.to_thread(download.file.seek, download.first)
        left = download.last - download.first + 1
        while left > 0:
            block = await asyncio.to_thread(download.file.read, min(READ_BYTES, left))
            if not block:
                return
            left -= len(block)
            if left == 0 and counts:
                async with relay.engine.begin() as conn:
                    await storage.record_fetch(conn, blob_id, device.account_id, device.device_id, now_ms())
            yield block
    finally:
        await asyncio.to_thread(download.file.close)


async def add_recipients(relay: Relay, device: DeviceRecord, blob_id: str, body: MoreRecipients) -> Recipients:
    """A forward sends a blob's pointer to devices its upload did not count: whoever may fetch it (its uploader,
    a device that fetched it, or any while not every expected device has) makes room for them first."""
    async with relay.engine.connect() as conn:
        blob = await storage.get(conn, blob_id)
        if blob is None or not blob.complete or blob.expires_at_ms <= now_ms():
            raise _gone()
        uploader = (blob.uploader_account_id, blob.uploader_device_id) == (device.account_id, device.device_id)
        may = uploader or await _serves(conn, blob, device)
    if not may:
        raise ApiError(403, "not_a_fetcher", "only a device that may fetch an attachment adds recipients to it")
    if blob.recipients + body.count > MAX_RECIPIENTS:  # before the bucket is spent; the update checks it again
        raise _too_many(blob.recipients)
    await relay.limits.check(Limiter.ATTACHMENT_RECIPIENTS, device.account_id, body.count)
    async with relay.engine.begin() as conn:
        added = await storage.add_recipients(conn, blob_id, body.count, MAX_RECIPIENTS, now_ms(), relay.retention_ms)
        blob = await storage.get(conn, blob_id)
    if blob is None or blob.expires_at_ms <= now_ms():
        raise _gone()
    if not added:
        raise _too_many(blob.recipients)
    return Recipients(id=blob.id, recipients=blob.recipients, fetches=blob.fetches)


def _too_many(expected: int) -> ApiError:
    return ApiError(
        409,
        "too_many_recipients",
        f"an attachment may be fetched by at most {MAX_RECIPIENTS} devices; it expects {expected} already",
        limit=MAX_RECIPIENTS,
    )


async def purge_expired(engine: AsyncEngine, store: BlobStore, now: int) -> int:
    """Delete the blobs past their expiry (fetched by every recipient, kept for the retention, or an upload
    never completed): the files first, then the rows, so a failure in between is finished by the next run."""
    removed = 0
    while True:
        async with engine.connect() as conn:
            ids = await storage.expired(conn, now, PURGE_BATCH)
        if not ids:
            return removed
        for blob_id in ids:
            await asyncio.to_thread(store.delete, blob_id)
        async with engine.begin() as conn:
            await storage.forget(conn, ids)
        removed += len(ids)


async def purge_expired_forever(engine: AsyncEngine, store: BlobStore, every_seconds: float) -> None:
    while True:
        try:
            removed = await purge_expired(engine, store, now_ms())
            if removed:
                log.info("deleted %d expired attachments", removed)
        except Exception:
            log.exception("purge of expired attachments failed")
        await asyncio.sleep(every_seconds)
