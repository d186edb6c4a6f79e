"""Media both ways, as Cove's end-to-end encrypted attachments (:mod:`cove.protocol.attachments`).

Out: a business sends ``{"type": "image", "image": {"id" | "link", ...}}``. The file (uploaded earlier, or
fetched now from the link, :mod:`.media_fetch`) is checked against Meta's types and limits
(:mod:`.media_rules`), encrypted with a fresh key and uploaded to the relay as a blob for the user's devices; the
message is an ordinary ``attachment`` payload (pointer, caption) with ``media`` naming the Cloud API type, so any
Cove client saves and shows it, with the business label the visible header gives every business message. The
relay stores ciphertext it has no key for.

In: a user's attachment to the business is recorded with its pointer in the envelope's transaction
(:meth:`Media.hold`); :meth:`Media.run` then fetches, verifies and decrypts it into the media store and queues
Meta's webhook (``{"type": "document", "document": {id, mime_type, sha256, caption?, filename?}}``) in the
transaction that forgets the pointer. A file that cannot be fetched after :data:`ATTEMPTS` tries, or that is not
what its pointer says, is reported as a message with error 131052.

Downloads: ``GET /{media_id}`` answers a URL that works for :data:`URL_MINUTES` minutes and, as Meta's, needs
the bearer token too; it is signed (HMAC with a key kept in the profile) so it names one file until it expires.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from cove.business.errors import CloudApiError
from cove.business.gateway import media_fetch, media_rules
from cove.business.gateway.cloud import MediaSend, media_of
from cove.business.gateway.media_store import MAX_PENDING, Media, MediaStore, PendingFile
from cove.client.attachments import AttachmentError, history_text
from cove.client.attachments import payload as attachment_payload
from cove.client.events import AttachmentReceived
from cove.client.transport import CoveClient, RelayError
from cove.protocol.attachments import InvalidPointer, parse_pointer

log = logging.getLogger("cove.gateway")

URL_MINUTES = 5
ATTEMPTS = 5
RETRY_S = 2.0
URL_KEY = "gateway_media_url_key"


class MediaService:
    def __init__(
        self,
        client: CoveClient,
        store: MediaStore,
        http: httpx.AsyncClient,
        clock: Callable[[], int],
        allow_private_links: bool = False,
    ) -> None:
        self.client = client
        self.store = store
        self.http = http
        self.clock = clock
        self.allow_private_links = allow_private_links
        self.on_received: Callable[[PendingFile, dict[str, Any]], None] | None = None
        self._wake = asyncio.Event()
        key = store.client_store.get(URL_KEY)
        if key is None:
            key = secrets.token_hex(32)
            store.client_store.set(URL_KEY, key)
        self._url_key = bytes.fromhex(key)

    # the business's uploads --------------------------------------------------------------------------------------
    async def keep_upload(self, part: Path, mime: str, filename: str | None) -> str:
        """A file the business uploaded (written to ``part``): checked, kept under a new media id."""
        try:
            size, head = await asyncio.to_thread(_size_and_head, part)
            media_rules.check_file(mime, size, head)
            sha256 = await asyncio.to_thread(_sha256, part)
            media_id = media_rules.new_media_id()
            now = self.clock()
            record = Media(media_id, mime, sha256, size, filename, "upload", now + media_rules.UPLOADED_KEPT_MS)
            self.store.add(part, record, now)
            return media_id
        finally:
            await asyncio.to_thread(part.unlink, missing_ok=True)

    def info(self, media_id: str) -> Media:
        found = self.store.get(media_id, self.clock())
        if found is None:
            raise CloudApiError(
                100, f"Unsupported request: object with ID '{media_id[:40]}' does not exist or has expired."
            )
        return found

    # download URLs -----------------------------------------------------------------------------------------------
    def _signature(self, media_id: str, expires_ms: int) -> str:
        mac = hmac.new(self._url_key, f"{media_id}\n{expires_ms}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()

    def url(self, base_url: str, media_id: str) -> str:
        expires = self.clock() + URL_MINUTES * 60_000
        query = f"expires={expires}&signature={self._signature(media_id, expires)}"
        return f"{base_url.rstrip('/')}/media/download/{media_id}?{query}"

    def download(self, media_id: str, expires_ms: int, signature: str) -> tuple[Media, Path]:
        """The file a signed URL names, while it is valid (100 otherwise, as for an unknown object)."""
        good = hmac.compare_digest(self._signature(media_id, expires_ms), signature)
        if not good or expires_ms <= self.clock():
            raise CloudApiError(100, "This media URL is not valid or has expired; ask GET /{media-id} for a new one.")
        found = self.info(media_id)
        return found, self.store.path(media_id)

    # sending -----------------------------------------------------------------------------------------------------
    def check(self, send: MediaSend) -> None:
        """What is refused at once, before anything is sent: an id this gateway does not have (100, in Meta's
        words) or an uploaded file the message type does not take (131053). A link is fetched with the send."""
        kind, media = media_of(send)
        if media.id is None:
            return
        found = self.store.get(media.id, self.clock())
        if found is None:
            raise CloudApiError(100, f"Param {kind}['id'] is not a valid whatsapp business account media attachment ID")
        media_rules.check_kind(kind, found.mime)

    async def attachment(self, send: MediaSend, account_id: str, message_id: str, now: int) -> tuple[bytes, str]:
        """The plaintext of the business's media message to ``account_id`` (the file encrypted and uploaded for
        that user's devices) and how the history shows it. ``CloudApiError``: 100 for an unknown media id,
        131053 for a link that cannot be fetched or a file the type does not take."""
        kind, media = media_of(send)
        part = self.store.part()
        try:
            if media.id is not None:
                found = self.info(media.id)
                source, mime, filename = self.store.path(found.media_id), found.mime, found.filename
                name_id = found.media_id
            else:
                assert media.link is not None
                fetched = await media_fetch.fetch(self.http, media.link, part, self.allow_private_links)
                source, mime, filename, name_id = part, fetched.mime, None, media_rules.new_media_id()
            media_rules.check_kind(kind, mime)
            name = media_rules.file_name(name_id, mime, media_rules.filename_of(media) or filename)
            devices = max(1, await self.client.fetching_devices(account_id))
            try:
                pointer = await self.client.upload_attachment(source, devices, name=name, mime=mime)
            except RelayError as exc:
                if exc.status == 429:  # the relay's limit on uploads started: the business retries, as for a throttle
                    retry = exc.details.get("retry_after")
                    raise CloudApiError(
                        130429,
                        "The relay's limit on file uploads was reached; retry after Retry-After seconds.",
                        retry_after_ms=int(retry) * 1000 if retry else None,
                    ) from exc
                raise CloudApiError(131053, f"The file could not be stored for the recipient: {exc}") from exc
            except AttachmentError as exc:
                raise CloudApiError(131053, f"The file could not be stored for the recipient: {exc}") from exc
        finally:
            await asyncio.to_thread(part.unlink, missing_ok=True)
        caption = media_rules.caption_of(media)
        body = attachment_payload(message_id, parse_pointer(pointer), caption, now)
        body["media"] = kind  # the Cloud API type; a client that ignores it shows the file as any other
        shown = history_text(pointer["name"], pointer["size"], caption)
        return _json(body), shown

    # receiving ---------------------------------------------------------------------------------------------------
    def hold(self, event: AttachmentReceived, wa_id: str, at_ms: int) -> None:
        """Inside the envelope's transaction: remember the user's file to fetch."""
        pending = PendingFile(event.sender, event.client_message_id, wa_id, event.attachment, event.text, at_ms, 0)
        if self.store.pending_count() >= MAX_PENDING:
            # Bounded: the business hears of the message, without its file, rather than the gateway filling up.
            if self.on_received is not None:
                self.on_received(pending, _failed("Too many users' files are waiting to be fetched by the gateway."))
            return
        if self.store.add_pending(pending):
            self._wake.set()

    async def run(self) -> None:
        """Fetch users' files for ever, in the order they came."""
        while True:
            self._wake.clear()
            waiting = self.store.pending()
            for pending in waiting:
                await self._fetch_one(pending)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), RETRY_S if waiting else None)

    async def _fetch_one(self, pending: PendingFile) -> None:
        try:
            content = await self._received(pending)
        except (httpx.TransportError, OSError, RelayError) as exc:
            if isinstance(exc, RelayError) and exc.status < 500 and exc.status != 429:
                content = _failed(f"The file could not be fetched: {exc}")  # gone (expired) or refused: final
                if self.on_received is not None:
                    self.on_received(pending, content)
                return
            log.warning("could not fetch a user's file yet: %s", exc)
            self.store.attempted(pending)
            if pending.attempts + 1 < ATTEMPTS:
                return
            content = _failed(f"The file could not be fetched from the relay after {ATTEMPTS} tries.")
        except (AttachmentError, InvalidPointer, CloudApiError) as exc:
            content = _failed(f"The file could not be fetched: {exc}")
        if self.on_received is not None:
            self.on_received(pending, content)

    async def _received(self, pending: PendingFile) -> dict[str, Any]:
        pointer = parse_pointer(pending.pointer)
        self.store.room_for(pointer.size)
        part = self.store.part()
        try:
            saved = await self.client.download_attachment(pointer.to_json(), part)
            sha256 = await asyncio.to_thread(_sha256, saved)
            mime = media_rules.mime_of(pointer.mime) or "application/octet-stream"
            kind = media_rules.kind_of(mime) or "document"  # a user may send any file: Meta calls it a document
            if kind == "sticker" and pointer.size > media_rules.MAX_BYTES["sticker"]:
                kind = "image"
            animated = media_rules.animated_webp((await asyncio.to_thread(_size_and_head, saved))[1])
            media_id = media_rules.new_media_id()
            now = self.clock()
            filename = pointer.name if kind == "document" else None
            kept = now + media_rules.RECEIVED_KEPT_MS
            self.store.add(saved, Media(media_id, mime, sha256, pointer.size, filename, "received", kept), now)
        finally:
            await asyncio.to_thread(part.unlink, missing_ok=True)
        found: dict[str, Any] = {"mime_type": mime, "sha256": sha256, "id": media_id}
        if pending.caption and kind in ("image", "video", "document"):
            found["caption"] = pending.caption
        if kind == "document":
            found["filename"] = pointer.name
        if kind == "audio":
            found["voice"] = False
        if kind == "sticker":
            found["animated"] = animated
        return {"type": kind, kind: found}


def _failed(why: str) -> dict[str, Any]:
    """A user's message whose file the business cannot have: Meta's unsupported message with its error."""
    return {"type": "unsupported", "errors": [CloudApiError(131052, why).to_webhook_error()]}


def _size_and_head(path: Path) -> tuple[int, bytes]:
    with path.open("rb") as f:
        return path.stat().st_size, f.read(32)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _json(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()
