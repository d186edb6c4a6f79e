"""HTTP routes of attachment blobs: create, upload resumably, ask how far an upload got, download (with Range)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Header, Path, Request
from fastapi.responses import StreamingResponse

from cove.accounts.auth import current_device
from cove.accounts.storage import DeviceRecord
from cove.attachments import service
from cove.attachments.models import MoreRecipients, NewUpload, Recipients, UploadStatus
from cove.context import Relay, get_relay
from cove.errors import error_responses
from cove.protocol.attachments import BLOB_ID, MAX_PATCH_BYTES

router = APIRouter(tags=["attachments"])


def _blob_id() -> Any:  # noqa: ANN401 - a FastAPI parameter declaration
    return Path(pattern=BLOB_ID.pattern, description="The blob id the relay chose (32 lowercase hex characters)")


_RAW_BODY = {
    "requestBody": {
        "required": True,
        "description": f"The next bytes of ciphertext, at most `max_bytes` ({MAX_PATCH_BYTES})",
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}
_CIPHERTEXT = {
    200: {"description": "The whole ciphertext", "content": {"application/octet-stream": {}}},
    206: {"description": "The bytes the Range asked for", "content": {"application/octet-stream": {}}},
}


@router.post(
    "/v1/attachments",
    response_model=UploadStatus,
    responses=error_responses(400, 401, 413, 429),
    summary="Start uploading an encrypted attachment",
    description="The relay picks an unguessable blob id. `size` is the ciphertext's length (413 "
    "`attachment_too_large` above COVE_MAX_ATTACHMENT_BYTES); `recipients` is how many devices will fetch it: "
    "once that many distinct devices have fetched it to the end it is deleted, and otherwise after the message "
    "retention. An upload not completed within COVE_ATTACHMENT_UPLOAD_HOURS is deleted.",
)
async def create(
    body: NewUpload, device: DeviceRecord = Depends(current_device), relay: Relay = Depends(get_relay)
) -> UploadStatus:
    return await service.create(relay, device, body)


@router.patch(
    "/v1/attachments/{attachment_id}",
    response_model=UploadStatus,
    responses=error_responses(400, 401, 403, 404, 409, 413),
    summary="Upload the next bytes of an attachment",
    description="Only the device that created it uploads. `Upload-Offset` must equal the bytes received so far "
    "(409 `wrong_offset` carries `upload_offset`); 409 `upload_in_progress` while another request uploads to it. "
    "A body larger than `max_bytes` or than what is left is 413 `upload_too_large`. If the connection breaks, "
    "what arrived is kept: ask the status and continue from its `upload_offset`. The answer to the last bytes is "
    "`complete` with the stored ciphertext's `digest`.",
    openapi_extra=_RAW_BODY,
)
async def upload(
    request: Request,
    attachment_id: str = _blob_id(),
    upload_offset: int = Header(alias="Upload-Offset", ge=0, le=1 << 40),
    device: DeviceRecord = Depends(current_device),
    relay: Relay = Depends(get_relay),
) -> UploadStatus:
    length = request.headers.get("content-length")
    announced = int(length) if length and length.isdigit() else None
    return await service.upload(relay, device, attachment_id, upload_offset, announced, request.stream())


@router.get(
    "/v1/attachments/{attachment_id}/status",
    response_model=UploadStatus,
    responses=error_responses(401, 403, 404),
    summary="How much of an attachment has been uploaded",
    description="For its uploader only: where the next upload request starts (`upload_offset`).",
)
async def upload_status(
    attachment_id: str = _blob_id(), device: DeviceRecord = Depends(current_device), relay: Relay = Depends(get_relay)
) -> UploadStatus:
    return await service.status(relay, device, attachment_id)


@router.post(
    "/v1/attachments/{attachment_id}/recipients",
    response_model=Recipients,
    responses=error_responses(400, 401, 403, 404, 409, 429),
    summary="Expect more devices to fetch an attachment (a forward)",
    description="A forward sends a file's pointer again, nothing uploaded: before it, the forwarding device says "
    "how many more devices will fetch the blob (`count`), so that they find it. Allowed to its uploader and to any "
    "device it is served to (403 `not_a_fetcher` otherwise). A blob every expected device had fetched lives "
    "again until the message retention after its upload, never longer. At most 10000 devices in all (409 "
    "`too_many_recipients`); rate-limited per account (`attachment recipients`, a device costing 1).",
)
async def add_recipients(
    body: MoreRecipients,
    attachment_id: str = _blob_id(),
    device: DeviceRecord = Depends(current_device),
    relay: Relay = Depends(get_relay),
) -> Recipients:
    return await service.add_recipients(relay, device, attachment_id, body)


@router.get(
    "/v1/attachments/{attachment_id}",
    response_class=StreamingResponse,
    responses={**_CIPHERTEXT, **error_responses(400, 401, 404, 416)},
    summary="Download an attachment's ciphertext",
    description="Any registered device that knows the id. 404 until the upload is complete and once it expired; "
    "once every device it was uploaded for fetched it, only those may, for an hour (to resume). "
    "`Range: bytes=FIRST-[LAST]` resumes a download (206; 416 beyond the end; other forms are ignored). "
    "A device other than the uploader that was sent the last byte has fetched it.",
)
async def download(
    attachment_id: str = _blob_id(),
    range_header: str = Header(  # not `| None`: a header is absent or a string, never null
        None, alias="Range", description="`bytes=FIRST-[LAST]`; a Range of another form is ignored"
    ),
    device: DeviceRecord = Depends(current_device),
    relay: Relay = Depends(get_relay),
) -> StreamingResponse:
    found = await service.open_download(relay, device, attachment_id, range_header)
    headers = {"Accept-Ranges": "bytes", "Content-Length": str(found.last - found.first + 1)}
    if found.partial:
        headers["Content-Range"] = f"bytes {found.first}-{found.last}/{found.size}"
    return StreamingResponse(
        service.stream(relay, device, attachment_id, found),
        status_code=206 if found.partial else 200,
        media_type="application/octet-stream",
        headers=headers,
    )
