"""Media in the Cloud API's terms, as pure rules: which files each message type takes, how large, the ids, and the
send shapes (``{"type": "image", "image": {"id" | "link", "caption"?}}``).

The types and limits are Meta's "Supported media types" table
(https://developers.facebook.com/documentation/business-messaging/whatsapp/business-phone-numbers/media/): sizes
are decimal megabytes as Meta states them, so the largest (a 100 MB document) still fits the relay's 100 MiB
attachment ciphertext. A sticker is a WebP of at most 100 KB, or 500 KB when animated (the WebP's ``VP8X``
header says so). Media ids are digits like Meta's; an uploaded file is kept 30 days and one a user sent 7, as
Meta keeps them.
"""

from __future__ import annotations

import re
import secrets
from typing import Literal

from pydantic import Field, model_validator

from cove.business.errors import CloudApiError
from cove.protocol.business_messages import Shape, shape_error

MediaKind = Literal["image", "video", "audio", "document", "sticker"]
KINDS: tuple[MediaKind, ...] = ("image", "video", "audio", "document", "sticker")
MB = 1_000_000
KB = 1_000

#: MIME types each message type takes (Meta's table; ``audio/ogg`` is Opus, as Meta requires).
MIME_TYPES: dict[MediaKind, frozenset[str]] = {
    "image": frozenset({"image/jpeg", "image/png"}),
    "video": frozenset({"video/mp4", "video/3gpp"}),
    "audio": frozenset({"audio/aac", "audio/amr", "audio/mpeg", "audio/mp4", "audio/ogg"}),
    "document": frozenset(
        {
            "text/plain",
            "application/pdf",
            "application/msword",
            "application/vnd.ms-excel",
            "application/vnd.ms-powerpoint",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "application/vnd.openxmlformats-officedocument.presentationml.presentation",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        }
    ),
    "sticker": frozenset({"image/webp"}),
}
MAX_BYTES: dict[MediaKind, int] = {
    "image": 5 * MB,
    "video": 16 * MB,
    "audio": 16 * MB,
    "document": 100 * MB,
    "sticker": 500 * KB,  # animated; a static sticker is STATIC_STICKER_BYTES
}
STATIC_STICKER_BYTES = 100 * KB
LARGEST = max(MAX_BYTES.values())
SUPPORTED = frozenset().union(*MIME_TYPES.values())
EXTENSIONS = {
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/webp": "webp",
    "video/mp4": "mp4",
    "video/3gpp": "3gp",
    "audio/aac": "aac",
    "audio/amr": "amr",
    "audio/mpeg": "mp3",
    "audio/mp4": "m4a",
    "audio/ogg": "ogg",
    "text/plain": "txt",
    "application/pdf": "pdf",
    "application/msword": "doc",
    "application/vnd.ms-excel": "xls",
    "application/vnd.ms-powerpoint": "ppt",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": "pptx",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
}

MEDIA_ID = r"^[0-9]{16}$"  # what this gateway issues: 16 digits, the first not 0
UPLOADED_KEPT_MS = 30 * 86_400_000
RECEIVED_KEPT_MS = 7 * 86_400_000
CAPTION_MAX = 1_024
FILENAME_MAX = 240
LINK_MAX = 2_048
LINK = r"^https?://[^\s]+$"  # the scheme only; media_fetch checks the rest (host, address) before any request


def new_media_id() -> str:
    """16 random digits: Meta's ids are digits, and clients store them as strings of about that length."""
    return str(10**15 + secrets.randbelow(9 * 10**15))


def is_media_id(value: str) -> bool:
    return re.fullmatch(MEDIA_ID, value) is not None


def mime_of(declared: str | None) -> str:
    """A Content-Type without its parameters, lowercased (``audio/ogg; codecs=opus`` is ``audio/ogg``)."""
    return (declared or "").split(";", 1)[0].strip().lower()


def kind_of(mime: str) -> MediaKind | None:
    return next((kind for kind in KINDS if mime in MIME_TYPES[kind]), None)


def animated_webp(head: bytes) -> bool:
    """Whether a WebP's extended header (``VP8X``) has its animation flag: the first chunk of an animated one."""
    return len(head) >= 21 and head[:4] == b"RIFF" and head[8:16] == b"WEBPVP8X" and bool(head[20] & 0x02)


def size_limit(mime: str, head: bytes = b"") -> int:
    """The largest file of this MIME type Meta takes, given its first bytes (a sticker's animation flag)."""
    kind = kind_of(mime)
    if kind is None:
        raise unsupported_type(mime)
    if kind == "sticker" and not animated_webp(head):
        return STATIC_STICKER_BYTES
    return MAX_BYTES[kind]


def unsupported_type(mime: str) -> CloudApiError:
    return CloudApiError(
        131053, f"{mime[:80]!r} is not a supported media type; supported: {', '.join(sorted(SUPPORTED))}."
    )


def too_large(mime: str, size: int, limit: int) -> CloudApiError:
    return CloudApiError(131053, f"The {mime} file is {size} bytes; the limit for it is {limit} bytes.")


def check_file(mime: str, size: int, head: bytes) -> None:
    """A file a business uploads or links to: a supported type within its size (131053 otherwise)."""
    limit = size_limit(mime, head)
    if size > limit:
        raise too_large(mime, size, limit)
    if size == 0:
        raise CloudApiError(131053, "The file is empty.")


def check_kind(kind: MediaKind, mime: str) -> None:
    """A send of ``kind`` with a file of ``mime``: an image message carries a JPEG or PNG, and so on."""
    if mime not in MIME_TYPES[kind]:
        raise CloudApiError(
            131053,
            f"A {kind} message takes {', '.join(sorted(MIME_TYPES[kind]))}; this media is {mime}.",
        )


def file_name(media_id: str, mime: str, given: str | None) -> str:
    """The name the user's client saves the file under: the document's ``filename``, else the id and extension."""
    return given or f"{media_id}.{EXTENSIONS.get(mime, 'bin')}"


# send shapes -----------------------------------------------------------------------------------------------------


class MediaObject(Shape):
    """``{"id"}`` (an uploaded file) or ``{"link"}`` (the gateway fetches it), exactly one of them."""

    id: str | None = Field(None, pattern=MEDIA_ID)
    link: str | None = Field(None, max_length=LINK_MAX, pattern=LINK)

    @model_validator(mode="after")
    def _one(self) -> MediaObject:
        if (self.id is None) == (self.link is None):
            raise shape_error("id", "give either id or link, not both or neither")
        return self


class CaptionedMedia(MediaObject):
    caption: str | None = Field(None, min_length=1, max_length=CAPTION_MAX)


class DocumentMedia(CaptionedMedia):
    filename: str | None = Field(None, min_length=1, max_length=FILENAME_MAX)


#: What each type's object may hold: Meta gives audio and stickers no caption, and only documents a filename.
OBJECTS: dict[MediaKind, type[MediaObject]] = {
    "image": CaptionedMedia,
    "video": CaptionedMedia,
    "audio": MediaObject,
    "document": DocumentMedia,
    "sticker": MediaObject,
}


def caption_of(media: MediaObject) -> str | None:
    return media.caption if isinstance(media, CaptionedMedia) else None


def filename_of(media: MediaObject) -> str | None:
    return media.filename if isinstance(media, DocumentMedia) else None
