"""Request and response bodies of the attachment routes."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from cove.accounts.models import Count
from cove.protocol.attachments import MAX_ATTACHMENT_BYTES, MAX_RECIPIENTS


class NewUpload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    size: int = Field(
        ge=1,
        le=MAX_ATTACHMENT_BYTES,
        description="Bytes of ciphertext to upload; a relay may take less (COVE_MAX_ATTACHMENT_BYTES: 413 above)",
    )
    recipients: int = Field(
        ge=1, le=MAX_RECIPIENTS, description="Devices that will fetch it: once they all have, it is deleted"
    )


class UploadStatus(BaseModel):
    id: str = Field(description="The blob id: 32 hex characters, unguessable; give it only to the recipients")
    size: int = Field(description="Bytes of ciphertext announced")
    upload_offset: int = Field(description="Bytes received so far: the next upload request starts here")
    max_bytes: int = Field(description="The largest body one upload request may carry")
    complete: bool
    digest: str | None = Field(None, description="SHA-256 (hex) of the ciphertext as stored, once complete")


class MoreRecipients(BaseModel):
    model_config = ConfigDict(extra="forbid")

    count: Count = Field(
        ge=1, le=MAX_RECIPIENTS, description="More devices that will fetch it (a forward's recipient devices)"
    )


class Recipients(BaseModel):
    id: str = Field(description="The blob id")
    recipients: int = Field(description="Devices now expected to fetch it: once they all have, it is deleted")
    fetches: int = Field(description="Distinct devices (other than the uploader) that fetched it so far")
