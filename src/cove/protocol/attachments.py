"""The attachment format the SDK and the relay share: blob ids, the chunked ciphertext and the pointer.

A file is encrypted with a random 32-byte key in AES-256-GCM chunks of :data:`CHUNK_BYTES` plaintext; chunk
``i`` uses the nonce ``i`` (96-bit big-endian: one key encrypts one file only, so no nonce repeats) and binds
``i`` and whether it is the last chunk into its associated data. A chunk therefore cannot be moved, and a file
cut at a chunk boundary lacks its last chunk and fails to decrypt. An empty file is one empty last chunk.

The relay stores the ciphertext under a blob id it chose (:data:`BLOB_ID`) and never sees the key. The pointer
that travels inside an end-to-end payload (``{"type": "attachment", "attachment": {...}}``) carries the blob id,
the key, the SHA-256 of the whole ciphertext, the plaintext size, a MIME type and a file name.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any

CHUNK_BYTES = 64 * 1024  # plaintext per chunk
TAG_BYTES = 16  # GCM's authentication tag, after each chunk's ciphertext
KEY_BYTES = 32
BLOB_ID = re.compile(r"^[0-9a-f]{32}$")  # 128 random bits, chosen by the relay
DIGEST = re.compile(r"^[0-9a-f]{64}$")
MAX_PATCH_BYTES = 4 * 1024 * 1024  # the largest body of one upload request
MAX_ATTACHMENT_BYTES = 100 * 1024 * 1024  # the largest ciphertext any relay takes; its setting may lower it
MAX_RECIPIENTS = 10_000  # devices said to fetch one blob (a large group's)
MAX_FILE_BYTES = 1 << 40  # what a pointer may claim; a relay's own limit is lower (COVE_MAX_ATTACHMENT_BYTES)
MAX_NAME_CHARS = 255
MAX_MIME_CHARS = 127
_AAD_PREFIX = b"cove:v1:attachment:"
_MIME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*$")


class InvalidPointer(ValueError):
    """An attachment pointer that does not have the format above."""


def is_blob_id(value: object) -> bool:
    return isinstance(value, str) and BLOB_ID.fullmatch(value) is not None


def chunk_count(size: int) -> int:
    """Chunks of a file of ``size`` plaintext bytes (at least one: the last chunk may be empty)."""
    return max(1, -(-size // CHUNK_BYTES))


def ciphertext_size(size: int) -> int:
    """The bytes the relay stores for a file of ``size`` plaintext bytes."""
    return size + TAG_BYTES * chunk_count(size)


def nonce(index: int) -> bytes:
    return index.to_bytes(12, "big")


def associated_data(index: int, last: bool) -> bytes:
    return _AAD_PREFIX + index.to_bytes(8, "big") + (b"\x01" if last else b"\x00")


@dataclass(frozen=True)
class Pointer:
    id: str
    key: bytes
    digest: str  # SHA-256 of the whole ciphertext, lowercase hex
    size: int  # plaintext bytes
    mime: str
    name: str

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "key": base64.b64encode(self.key).decode(),
            "digest": self.digest,
            "size": self.size,
            "mime": self.mime,
            "name": self.name,
        }


def safe_name(name: str) -> str:
    """A file name that is one plain path component: the last component of ``name``, without control
    characters or a leading dot, never empty."""
    base = re.split(r"[/\\]", name)[-1]
    cleaned = "".join(c for c in base if c.isprintable()).strip().lstrip(".")
    return cleaned[:MAX_NAME_CHARS] or "attachment"


def parse_pointer(value: object) -> Pointer:
    """The pointer in a payload, checked field by field; its name is reduced to :func:`safe_name`."""
    if not isinstance(value, dict):
        raise InvalidPointer("the attachment is not an object")
    blob, key, digest, size = value.get("id"), value.get("key"), value.get("digest"), value.get("size")
    mime, name = value.get("mime", "application/octet-stream"), value.get("name", "attachment")
    if not is_blob_id(blob):
        raise InvalidPointer("the attachment's id is not 32 lowercase hex characters")
    try:
        raw_key = base64.b64decode(key, validate=True) if isinstance(key, str) else b""
    except binascii.Error:
        raw_key = b""
    if len(raw_key) != KEY_BYTES:
        raise InvalidPointer("the attachment's key is not 32 bytes of base64")
    if not isinstance(digest, str) or DIGEST.fullmatch(digest) is None:
        raise InvalidPointer("the attachment's digest is not a SHA-256 in lowercase hex")
    if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= MAX_FILE_BYTES:
        raise InvalidPointer("the attachment's size is not a whole number of bytes")
    if not isinstance(mime, str) or len(mime) > MAX_MIME_CHARS or _MIME.fullmatch(mime) is None:
        mime = "application/octet-stream"
    if not isinstance(name, str):
        name = "attachment"
    return Pointer(str(blob), raw_key, digest, size, mime, safe_name(name))
