"""The Cloud API's media endpoints (Meta's "Media" reference,
https://developers.facebook.com/documentation/business-messaging/whatsapp/business-phone-numbers/media/):

- ``POST /{version}/{phone_number_id}/media``: multipart ``file``, ``type`` (its MIME type),
  ``messaging_product``; answers ``{"id"}``;
- ``GET /{version}/{media_id}``: ``{messaging_product, url, mime_type, sha256, file_size, id}``, the URL valid
  for five minutes and, as Meta's, fetched with the bearer token (served from :func:`add_media_routes`'s download
  route); ``app`` sends this path here when the object id is a media id, since it shares the phone number's;
- ``DELETE /{version}/{media_id}``: ``{"success": true}``.

The upload is parsed as it streams and cut off past the largest file Meta takes (:data:`media_rules.LARGEST`),
so a request cannot fill the gateway's disk; the file part is spooled by Starlette (in memory up to 1 MB, then
a temporary file) before it is checked and kept.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import FileResponse
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from cove.business.errors import MESSAGING_PRODUCT, CloudApiError
from cove.business.gateway import media_rules
from cove.business.gateway.graph import GraphError
from cove.business.gateway.media import MediaService
from cove.protocol.attachments import safe_name

SLACK_BYTES = 64 * 1024  # the form's other fields and boundaries around the file
BLOCK_BYTES = 1 << 20


def _graph(error: CloudApiError) -> GraphError:
    return GraphError(error)


async def _bounded(request: Request, limit: int) -> AsyncIterator[bytes]:
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise _graph(CloudApiError(131053, f"The upload is larger than the largest media file ({limit} bytes)."))
        yield chunk


async def _form(request: Request) -> tuple[dict[str, str], UploadFile]:
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise _graph(CloudApiError(100, "The upload must be multipart/form-data: file, type, messaging_product."))
    limit = media_rules.LARGEST + SLACK_BYTES
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise _graph(CloudApiError(131053, f"The upload is larger than the largest media file ({limit} bytes)."))
    parser = MultiPartParser(request.headers, _bounded(request, limit), max_files=1, max_fields=10)
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise _graph(CloudApiError(100, f"The form could not be read: {exc.message}")) from None
    fields = {k: v for k, v in form.multi_items() if isinstance(v, str)}
    file = form.get("file")
    if not isinstance(file, UploadFile):
        await form.close()
        raise _graph(CloudApiError(100, "file: required parameter is missing"))
    return fields, file


def add_media_routes(api: APIRouter, media: MediaService | None, own: Any, version: str) -> None:  # noqa: ANN401
    """The media routes on the app's authorised router; ``own`` checks a phone number id is this gateway's."""

    def enabled() -> MediaService:
        if media is None:
            raise _graph(CloudApiError(131051, "This gateway keeps no media."))
        return media

    @api.post(
        "/{version}/{phone_number_id}/media",
        summary="Upload media (multipart: file, type, messaging_product)",
        description="Keeps the file 30 days under a new media id, for sends by `id`. The `type` is its MIME "
        "type, one Meta supports; sizes as Meta's: image 5 MB, video and audio 16 MB, document 100 MB, sticker "
        "(image/webp) 100 KB or 500 KB animated. 131053 otherwise, or when the gateway's media storage is full.",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "required": ["file", "type", "messaging_product"],
                            "properties": {
                                "file": {"type": "string", "format": "binary"},
                                "type": {"type": "string", "example": "image/jpeg"},
                                "messaging_product": {"type": "string", "enum": [MESSAGING_PRODUCT]},
                            },
                        }
                    }
                },
            }
        },
    )
    async def upload(request: Request, version: str = Path(pattern=version), phone_number_id: str = Path()) -> Any:
        own(phone_number_id)
        kept = enabled()
        fields, file = await _form(request)
        try:
            if fields.get("messaging_product") != MESSAGING_PRODUCT:
                raise _graph(CloudApiError(100, "messaging_product: must be 'whatsapp'"))
            mime = media_rules.mime_of(fields.get("type") or file.content_type)
            if media_rules.kind_of(mime) is None:
                raise _graph(media_rules.unsupported_type(mime or "(none)"))
            part = kept.store.part()
            with await asyncio.to_thread(part.open, "xb") as out:
                while block := await file.read(BLOCK_BYTES):
                    await asyncio.to_thread(out.write, block)
            name = media_rules.kind_of(mime) == "document" and file.filename or None
            try:
                media_id = await kept.keep_upload(part, mime, _plain_name(name))
            except CloudApiError as exc:
                raise _graph(exc) from exc
        finally:
            await file.close()
        return {"id": media_id}

    @api.delete(
        "/{version}/{object_id}",
        summary="Delete media (DELETE /{media_id})",
        description="Deletes an uploaded or received file now; its id and URL stop working. The path is the one "
        "GET /{phone_number_id} has: a Graph object's.",
    )
    async def delete(
        version: str = Path(pattern=version),
        object_id: str = Path(description="A media id (digits)"),
        phone_number_id: str | None = Query(None, description="Accepted, as Meta's; it must be this gateway's"),
    ) -> Any:
        if phone_number_id is not None:
            own(phone_number_id)
        media_id = object_id
        if not media_rules.is_media_id(media_id) or not enabled().store.delete(media_id):
            raise _graph(
                CloudApiError(100, f"Unsupported delete request: object with ID '{media_id[:40]}' does not exist.")
            )
        return {"success": True}

    @api.get(
        "/media/download/{media_id}",
        summary="Download media (the URL GET /{media-id} answers)",
        description="Valid for five minutes after it was given; needs the bearer token, as Meta's media URLs do.",
        response_class=FileResponse,
    )
    async def download(
        media_id: str = Path(pattern=media_rules.MEDIA_ID),
        expires: int = Query(..., ge=0),
        signature: str = Query(..., max_length=64, pattern=r"^[A-Za-z0-9_-]+$"),
    ) -> FileResponse:
        try:
            found, path = enabled().download(media_id, expires, signature)
        except CloudApiError as exc:
            raise _graph(exc) from exc
        return FileResponse(path, media_type=found.mime, headers={"Cache-Control": "private, no-store"})


def retrieve(media: MediaService | None, request: Request, media_id: str) -> dict[str, Any]:
    """``GET /{version}/{media_id}``: where to download the file, and what it is."""
    if media is None:
        raise _graph(CloudApiError(131051, "This gateway keeps no media."))
    try:
        found = media.info(media_id)
    except CloudApiError as exc:
        raise _graph(exc) from exc
    return {
        "messaging_product": MESSAGING_PRODUCT,
        "url": media.url(str(request.base_url), media_id),
        "mime_type": found.mime,
        "sha256": found.sha256,
        "file_size": found.size,
        "id": found.media_id,
    }


def _plain_name(name: str | None) -> str | None:
    return safe_name(name) if name else None
