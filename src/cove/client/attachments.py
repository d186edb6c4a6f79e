"""Attachments in the SDK, without I/O of its own: a file encrypted chunk by chunk from one open file into
another (:func:`encrypt_file`), a download decrypted as it arrives (:class:`Decryptor`), and the ``attachment``
payload that carries the pointer (:mod:`cove.protocol.attachments` has the format).

Neither side holds more than a chunk of the file in memory. A download is checked against the pointer's size and
digest before its last chunk is decrypted: the caller writes to a temporary file and keeps it only if
:meth:`Decryptor.finish` returns.
"""

from __future__ import annotations

import hashlib
from typing import Any, BinaryIO, TypeGuard

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cove.client.events import AttachmentReceived, Event, SentElsewhere, Undecryptable
from cove.protocol.attachments import (
    CHUNK_BYTES,
    TAG_BYTES,
    InvalidPointer,
    Pointer,
    associated_data,
    chunk_count,
    ciphertext_size,
    nonce,
    parse_pointer,
)
from cove.protocol.payload import PAYLOAD_VERSION

MAX_TEXT_CHARS = 4096  # a caption


class AttachmentError(Exception):
    """A download that is not the file its pointer names (size, digest, or a chunk that does not decrypt)."""


def encrypt_file(source: BinaryIO, sealed: BinaryIO, key: bytes) -> tuple[str, int, int]:
    """Encrypt ``source`` into ``sealed``; returns the ciphertext's SHA-256 (hex), the plaintext's size and the
    ciphertext's size. The last chunk is known by reading one chunk ahead."""
    aes = AESGCM(key)
    digest = hashlib.sha256()
    index = plain = written = 0
    block = source.read(CHUNK_BYTES)
    while True:
        ahead = source.read(CHUNK_BYTES) if len(block) == CHUNK_BYTES else b""
        last = not ahead
        chunk = aes.encrypt(nonce(index), block, associated_data(index, last))
        sealed.write(chunk)
        digest.update(chunk)
        plain, written, index = plain + len(block), written + len(chunk), index + 1
        if last:
            return digest.hexdigest(), plain, written
        block = ahead


class Decryptor:
    """Feed it the ciphertext as it arrives (from any byte a resumed download restarts at, in order); it writes
    the plaintext of every chunk but the last to ``out``, and :meth:`finish` checks the whole before the last."""

    def __init__(self, pointer: Pointer, out: BinaryIO) -> None:
        self._aes = AESGCM(pointer.key)
        self._pointer = pointer
        self._out = out
        self._chunks = chunk_count(pointer.size)
        self.expected = ciphertext_size(pointer.size)
        self.received = 0
        self._digest = hashlib.sha256()
        self._buffer = bytearray()
        self._index = 0

    def feed(self, data: bytes) -> None:
        if self.received + len(data) > self.expected:
            raise AttachmentError("the download is longer than the attachment's size says")
        self.received += len(data)
        self._digest.update(data)
        self._buffer += data
        whole = CHUNK_BYTES + TAG_BYTES
        while self._index < self._chunks - 1 and len(self._buffer) >= whole:
            self._out.write(self._open(bytes(self._buffer[:whole]), last=False))
            del self._buffer[:whole]

    def finish(self) -> None:
        if self.received != self.expected:
            raise AttachmentError(f"the download has {self.received} of {self.expected} bytes")
        if self._digest.hexdigest() != self._pointer.digest:
            raise AttachmentError("the download's digest is not the one the sender gave: refused")
        self._out.write(self._open(bytes(self._buffer), last=True))
        self._buffer.clear()

    def _open(self, chunk: bytes, last: bool) -> bytes:
        try:
            plain = self._aes.decrypt(nonce(self._index), chunk, associated_data(self._index, last))
        except InvalidTag:
            raise AttachmentError(f"chunk {self._index} of the attachment does not decrypt") from None
        self._index += 1
        return plain


def payload(
    client_message_id: str, pointer: Pointer, text: str | None, sent_at: int, group: str | None = None
) -> dict[str, Any]:
    """The ``attachment`` payload; a group message names its group as a group text does."""
    body: dict[str, Any] = {
        "v": PAYLOAD_VERSION,
        "type": "attachment",
        "id": client_message_id,
        "ts": sent_at,
        "attachment": pointer.to_json(),
    }
    if text:
        body["text"] = text
    if group is not None:
        body["group"] = group
    return body


def received(
    sender: str,
    sender_device: int,
    client_message_id: str,
    body: dict[str, Any],
    sent_at: int,
    envelope_id: int,
    group: str | None = None,
    business: dict[str, Any] | None = None,
) -> Event:
    """The event of an ``attachment`` payload (in ``group``, already checked, when it came in one; from a business,
    with the envelope's visible ``business`` header): its pointer checked, its caption bounded."""
    try:
        pointer = parse_pointer(body.get("attachment"))
    except InvalidPointer as exc:
        return Undecryptable(sender, sender_device, envelope_id, str(exc))
    text = body.get("text")
    caption = text[:MAX_TEXT_CHARS] if isinstance(text, str) and text else None
    return AttachmentReceived(
        sender, sender_device, client_message_id, pointer.to_json(), caption, sent_at, group, business
    )


def carries_file(event: Event) -> TypeGuard[AttachmentReceived | SentElsewhere]:
    """A file received, or the transcript of one another of this person's devices sent (the same pointer, which
    the upload counted this device among the fetchers for)."""
    if isinstance(event, SentElsewhere):
        return event.payload.get("type") == "attachment"
    return isinstance(event, AttachmentReceived)


def pointer_of(event: AttachmentReceived | SentElsewhere) -> Pointer:
    """The event's pointer, checked (``InvalidPointer``): a transcript's arrives as the sending device wrote it."""
    return parse_pointer(event.attachment if isinstance(event, AttachmentReceived) else event.payload.get("attachment"))


def file_line(event: AttachmentReceived | SentElsewhere) -> str:
    """How a file event is shown: as the history shows it, or the caption of a transcript with a broken pointer."""
    try:
        pointer = pointer_of(event)
    except InvalidPointer:
        return f"[a file that cannot be opened] {event.text or ''}".rstrip()
    return history_text(pointer.name, pointer.size, event.text)


def history_text(name: str, size: int, text: str | None) -> str:
    """How the conversation history shows a file."""
    line = f"[file {name}, {size} bytes]"
    return f"{line} {text}" if text else line
