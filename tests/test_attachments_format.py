"""The attachment format on its own: chunked AES-GCM that a reordered, cut or altered ciphertext fails, the
pointer's checks, and the relay's pure rules of offsets and ranges."""

from __future__ import annotations

import hashlib
import io
import os

import pytest

from cove.attachments import rules
from cove.attachments.store import BlobStore, UploadBusy
from cove.client.attachments import AttachmentError, Decryptor, encrypt_file
from cove.protocol.attachments import (
    CHUNK_BYTES,
    TAG_BYTES,
    InvalidPointer,
    Pointer,
    ciphertext_size,
    parse_pointer,
    safe_name,
)

KEY = bytes(range(32))


def seal(plain: bytes) -> tuple[bytes, Pointer]:
    sealed = io.BytesIO()
    digest, size, written = encrypt_file(io.BytesIO(plain), sealed, KEY)
    assert size == len(plain) and written == len(sealed.getvalue()) == ciphertext_size(len(plain))
    return sealed.getvalue(), Pointer("0" * 32, KEY, digest, size, "application/octet-stream", "f")


def open_sealed(ciphertext: bytes, pointer: Pointer, pieces: int = 7) -> bytes:
    out = io.BytesIO()
    decryptor = Decryptor(pointer, out)
    step = max(1, len(ciphertext) // pieces)
    for start in range(0, len(ciphertext), step):
        decryptor.feed(ciphertext[start : start + step])
    decryptor.finish()
    return out.getvalue()


@pytest.mark.parametrize("size", [0, 1, CHUNK_BYTES - 1, CHUNK_BYTES, CHUNK_BYTES + 1, 3 * CHUNK_BYTES + 17])
def test_every_size_round_trips_through_chunks_fed_in_any_pieces(size):
    plain = os.urandom(size)
    ciphertext, pointer = seal(plain)
    assert plain == open_sealed(ciphertext, pointer)
    # A few random bytes turn up in any ciphertext by chance (one byte in a 17-byte one: 1 time in 15); from 16
    # bytes on, finding the plaintext would mean it was not encrypted.
    assert plain[:64] not in ciphertext or size < 16


def test_swapped_chunks_are_refused_even_with_a_matching_digest():
    ciphertext, pointer = seal(os.urandom(3 * CHUNK_BYTES))
    whole = CHUNK_BYTES + TAG_BYTES
    swapped = ciphertext[whole : 2 * whole] + ciphertext[:whole] + ciphertext[2 * whole :]
    forged = Pointer(pointer.id, KEY, hashlib.sha256(swapped).hexdigest(), pointer.size, pointer.mime, pointer.name)
    with pytest.raises(AttachmentError, match="does not decrypt"):
        open_sealed(swapped, forged)


def test_a_file_cut_at_a_chunk_boundary_is_refused_even_when_the_pointer_agrees():
    plain = os.urandom(2 * CHUNK_BYTES)
    ciphertext, pointer = seal(plain)
    cut = ciphertext[: CHUNK_BYTES + TAG_BYTES]
    forged = Pointer(pointer.id, KEY, hashlib.sha256(cut).hexdigest(), CHUNK_BYTES, pointer.mime, pointer.name)
    with pytest.raises(AttachmentError, match="does not decrypt"):
        open_sealed(cut, forged)


def test_a_wrong_digest_a_short_and_a_long_download_are_refused():
    ciphertext, pointer = seal(os.urandom(1000))
    altered = bytes([ciphertext[0] ^ 1]) + ciphertext[1:]
    with pytest.raises(AttachmentError, match="digest"):
        open_sealed(altered, pointer)
    with pytest.raises(AttachmentError, match="has 1015 of 1016"):
        open_sealed(ciphertext[:-1], pointer)
    with pytest.raises(AttachmentError, match="longer"):
        open_sealed(ciphertext + b"x", pointer)


def test_a_pointer_is_checked_field_by_field_and_its_name_made_one_safe_component():
    good = Pointer("ab" * 16, KEY, "c" * 64, 5, "image/png", "x.png").to_json()
    assert parse_pointer(good).key == KEY
    for field, bad in [("id", "../etc/passwd"), ("key", "AAAA"), ("digest", "C" * 64), ("size", -1), ("size", True)]:
        with pytest.raises(InvalidPointer):
            parse_pointer(good | {field: bad})
    assert parse_pointer(good | {"mime": "text/html; x"}).mime == "application/octet-stream"
    assert parse_pointer(good | {"name": "../../.bashrc"}).name == "bashrc"
    assert safe_name("a\\b\\..\\c\x00d.txt") == "cd.txt"
    assert safe_name("..") == "attachment"


def test_an_upload_continues_exactly_where_the_blob_ends_and_carries_what_is_left_at_most():
    assert rules.upload_room(size=10, received=4, offset=4, max_request_bytes=3) == 3
    assert rules.upload_room(size=10, received=8, offset=8, max_request_bytes=3) == 2
    for received, offset in [(4, 0), (4, 5), (10, 10)]:
        with pytest.raises(rules.WrongOffset) as refused:
            rules.upload_room(size=10, received=received, offset=offset, max_request_bytes=3)
        assert refused.value.expected == received


def test_one_range_is_served_clamped_to_the_end_one_beyond_it_is_not_and_other_forms_are_ignored():
    assert rules.byte_range(None, 10) is None
    assert rules.byte_range("bytes=3-", 10) == (3, 9)
    assert rules.byte_range("bytes=3-100", 10) == (3, 9)
    for header in ("bytes=10-", "bytes=5-4"):
        with pytest.raises(rules.RangeNotSatisfiable):
            rules.byte_range(header, 10)
    for ignored in ("bytes=0-1,3-4", "items=0-1", "0", "bytes=-3"):
        assert rules.byte_range(ignored, 10) is None


def test_the_blob_store_lets_one_writer_at_a_time_append_and_renames_only_a_complete_blob(tmp_path):
    """The lock is an flock on the partial file: a second open file, as another relay process would hold, is
    refused while the first appends."""
    store = BlobStore(tmp_path)
    blob_id = "ab" * 16
    store.create(blob_id)
    first = store.open_for_append(blob_id)
    with pytest.raises(UploadBusy):
        store.open_for_append(blob_id)
    first.write(b"sealed bytes")
    assert store.finish(blob_id, first) == hashlib.sha256(b"sealed bytes").hexdigest()
    first.close()
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == [blob_id]
    with pytest.raises(FileNotFoundError):
        store.open_for_append(blob_id)  # complete: nothing more is appended
    assert store.received(blob_id) == len(b"sealed bytes")
    with pytest.raises(ValueError, match="32 lowercase hex"):
        store.received("../" + "a" * 29)
    store.delete(blob_id)
    assert store.received(blob_id) is None
