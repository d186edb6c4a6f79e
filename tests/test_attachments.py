"""Attachments end to end through a real relay process, on SQLite and PostgreSQL: files sent and saved intact,
uploads and downloads resumed after a broken connection, refusals, expiry, and nothing readable on the relay."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

import httpx
import pytest

from cove.attachments.service import purge_expired
from cove.attachments.storage import FETCHED_GRACE_MS
from cove.attachments.store import BlobStore
from cove.client.attachments import AttachmentError
from cove.client.events import AttachmentReceived
from cove.client.transport import RelayError
from cove.clock import now_ms
from cove.db import create_engine
from cove.protocol.attachments import MAX_PATCH_BYTES
from helpers import assert_no_plaintext, server_rows

MiB = 1024 * 1024
MARKER = b"the quarterly numbers nobody may read"


def write_file(path: Path, size: int) -> str:
    """A file of random bytes with a recognisable phrase every megabyte; returns its SHA-256."""
    digest = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left:
            block = (MARKER + os.urandom(MiB - len(MARKER)))[:left]
            f.write(block)
            digest.update(block)
            left -= len(block)
    return digest.hexdigest()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(MiB):
            digest.update(block)
    return digest.hexdigest()


def blobs(relay) -> list[Path]:  # noqa: ANN001
    return sorted(p for p in (relay.data_dir / "attachments").rglob("*") if p.is_file())


async def received_file(client) -> AttachmentReceived:  # noqa: ANN001
    events = [e for e in await client.inbox() if isinstance(e, AttachmentReceived)]
    assert len(events) == 1
    return events[0]


class Faults(httpx.AsyncBaseTransport):
    """The network between a client and the relay, breaking the first upload request that continues an upload
    (or the first download) after its first megabyte has gone through."""

    def __init__(self, method: str) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.method = method
        self.broken = False
        self.offsets: list[int] = []  # of every upload request
        self.ranges: list[str | None] = []  # of every download request

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "PATCH":
            self.offsets.append(int(request.headers["Upload-Offset"]))
        if request.method == "GET" and "/v1/attachments/" in request.url.path:
            self.ranges.append(request.headers.get("Range"))
        breaks = not self.broken and request.method == self.method and "/v1/attachments/" in request.url.path
        if breaks and self.method == "PATCH" and self.offsets[-1] > 0:
            self.broken = True
            request.stream = _cut(request.stream)
            return await self.inner.handle_async_request(request)
        response = await self.inner.handle_async_request(request)
        if breaks and self.method == "GET":
            self.broken = True
            response.stream = _cut(response.stream)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


class _cut(httpx.AsyncByteStream):  # noqa: N801 - reads as what it does to a stream
    def __init__(self, stream) -> None:  # noqa: ANN001
        self.stream = stream

    async def __aiter__(self):  # noqa: ANN204
        passed = 0
        async for block in self.stream:
            yield block
            passed += len(block)
            if passed >= MiB:
                raise httpx.ReadError("the cable was pulled")

    async def aclose(self) -> None:
        await self.stream.aclose()


async def test_a_20_mb_file_reaches_the_recipient_intact_and_the_relay_holds_neither_plaintext_nor_key(
    users, relay, tmp_path
):
    alice = await users.register("alice")
    bob = await users.register("bob")
    source = tmp_path / "report.pdf"
    original = write_file(source, 20 * MiB)

    await alice.send_file(bob.core.account_id, source, text="the report")

    # What the relay holds while the file waits: the ciphertext under a random id, and a row about it.
    [blob] = blobs(relay)
    rows = await server_rows(relay.database_url)
    [row] = [r for t, r in rows if t == "attachments"]
    assert blob.name == row["id"] and row["recipients"] == 1 and row["size"] == blob.stat().st_size
    assert row["digest"] == sha256_of(blob)

    event = await received_file(bob)
    assert (event.text, event.attachment["name"], event.attachment["size"]) == ("the report", "report.pdf", 20 * MiB)
    assert event.attachment["mime"] == "application/pdf"
    key = base64.b64decode(event.attachment["key"])
    saved = await bob.save_attachment(event, tmp_path / "bob-files")
    assert saved == tmp_path / "bob-files" / "report.pdf" and sha256_of(saved) == original
    assert [p.name for p in (tmp_path / "bob-files").iterdir()] == ["report.pdf"]  # no temporary file left

    secrets = [MARKER.decode(), event.attachment["key"], "report.pdf", "the report"]
    assert_no_plaintext(rows + await server_rows(relay.database_url), secrets)
    stored = blob.read_bytes()  # noqa: ASYNC240 - the test's own check, nothing else runs meanwhile
    assert MARKER not in stored and key not in stored and event.attachment["key"].encode() not in stored
    assert MARKER.decode() not in relay.log() and event.attachment["key"] not in relay.log()


async def test_an_upload_broken_off_midway_resumes_where_the_relay_stopped(users, relay, tmp_path):
    alice = await users.register("alice")
    bob = await users.register("bob")
    faults = Faults("PATCH")
    alice_again = type(alice)(relay.url, alice.core, transport=faults)
    source = tmp_path / "film.mkv"
    original = write_file(source, 3 * MAX_PATCH_BYTES)

    await alice_again.send_file(bob.core.account_id, source)
    await alice_again.aclose()

    assert faults.broken
    broken_at = faults.offsets.index(MAX_PATCH_BYTES)
    resumed = faults.offsets[broken_at + 1 :]
    # The next request starts at what the relay kept of the broken one, never from the beginning.
    assert resumed and all(o >= MAX_PATCH_BYTES for o in resumed)
    saved = await bob.save_attachment(await received_file(bob), tmp_path / "bob")
    assert sha256_of(saved) == original


async def test_a_download_broken_off_midway_resumes_with_a_range(users, relay, tmp_path):
    alice = await users.register("alice")
    bob = await users.register("bob")
    source = tmp_path / "photo.jpg"
    original = write_file(source, 5 * MiB + 123)
    await alice.send_file(bob.core.account_id, source)
    event = await received_file(bob)

    faults = Faults("GET")
    bob_again = type(bob)(relay.url, bob.core, transport=faults)
    saved = await bob_again.save_attachment(event, tmp_path / "bob")
    await bob_again.aclose()

    assert faults.broken and faults.ranges[0] is None
    assert faults.ranges[1] is not None and int(faults.ranges[1].removeprefix("bytes=").rstrip("-")) >= MiB
    assert sha256_of(saved) == original


async def test_a_download_that_is_not_what_the_pointer_names_is_refused_and_leaves_no_file(users, relay, tmp_path):
    alice = await users.register("alice")
    bob = await users.register("bob")
    source = tmp_path / "notes.txt"
    write_file(source, 300_000)
    # Every complete download counts as one by that device, refused or not: say there are more recipients.
    pointer = await alice.upload_attachment(source, recipients=10)
    folder = tmp_path / "bob"
    folder.mkdir()

    wrong_digest = pointer | {"digest": "0" * 64}
    with pytest.raises(AttachmentError, match="digest"):
        await bob.download_attachment(wrong_digest, folder / "notes.txt")
    wrong_key = pointer | {"key": base64.b64encode(bytes(32)).decode()}
    with pytest.raises(AttachmentError, match="does not decrypt"):
        await bob.download_attachment(wrong_key, folder / "notes.txt")
    wrong_size = pointer | {"size": pointer["size"] - 1}
    with pytest.raises(AttachmentError):
        await bob.download_attachment(wrong_size, folder / "notes.txt")
    assert list(folder.iterdir()) == []

    # The real pointer still works, and a second save never overwrites the first.
    first = await bob.download_attachment(pointer, folder / "notes.txt")
    second = await bob.download_attachment(pointer, folder / "notes.txt")
    assert (first.name, second.name) == ("notes.txt", "notes (1).txt")


@pytest.mark.parametrize("relay_env", [{"COVE_MAX_ATTACHMENT_BYTES": str(MiB)}])
async def test_an_attachment_above_the_size_limit_is_refused(users, tmp_path):
    alice = await users.register("alice")
    bob = await users.register("bob")
    source = tmp_path / "big.bin"
    write_file(source, MiB)  # its ciphertext is a few bytes more than the limit
    with pytest.raises(RelayError) as refused:
        await alice.send_file(bob.core.account_id, source)
    assert (refused.value.status, refused.value.code) == (413, "attachment_too_large")
    assert [e for e in await bob.inbox() if isinstance(e, AttachmentReceived)] == []


async def test_only_the_uploader_uploads_offsets_must_follow_on_and_nothing_is_served_until_complete(users, relay):
    alice = await users.register("alice")
    bob = await users.register("bob")
    http = httpx.AsyncClient(base_url=relay.url)

    def auth(client) -> dict[str, str]:  # noqa: ANN001
        return {"Authorization": f"Bearer {client.core.token}"}

    created = (await http.post("/v1/attachments", json={"size": 10, "recipients": 1}, headers=auth(alice))).json()
    target = f"/v1/attachments/{created['id']}"
    assert (created["upload_offset"], created["complete"], created["max_bytes"]) == (0, False, MAX_PATCH_BYTES)

    upload = auth(alice) | {"Upload-Offset": "0"}
    assert (await http.patch(target, content=b"01234", headers=upload)).json()["upload_offset"] == 5
    by_bob = await http.patch(target, content=b"56789", headers=auth(bob) | {"Upload-Offset": "5"})
    assert (by_bob.status_code, by_bob.json()["error"]["code"]) == (403, "not_uploader")
    assert (await http.get(f"{target}/status", headers=auth(bob))).status_code == 403
    again = await http.patch(target, content=b"56789", headers=upload)
    assert (again.status_code, again.json()["error"]["code"], again.json()["error"]["upload_offset"]) == (
        409,
        "wrong_offset",
        5,
    )
    too_much = await http.patch(target, content=b"56789X", headers=auth(alice) | {"Upload-Offset": "5"})
    assert (too_much.status_code, too_much.json()["error"]["code"]) == (413, "upload_too_large")
    incomplete = await http.get(target, headers=auth(bob))
    assert (incomplete.status_code, incomplete.json()["error"]["code"]) == (404, "attachment_not_found")

    done = (await http.patch(target, content=b"56789", headers=auth(alice) | {"Upload-Offset": "5"})).json()
    assert done["complete"] and done["digest"] == hashlib.sha256(b"0123456789").hexdigest()
    for offset in ("0", "10"):  # a complete blob takes no more bytes, from anywhere
        late = await http.patch(target, content=b"X", headers=auth(alice) | {"Upload-Offset": offset})
        assert (late.status_code, late.json()["error"]["upload_offset"]) == (409, 10)
    part = await http.get(target, headers=auth(bob) | {"Range": "bytes=3-5"})
    assert (part.status_code, part.content, part.headers["content-range"]) == (206, b"345", "bytes 3-5/10")
    beyond = await http.get(target, headers=auth(bob) | {"Range": "bytes=10-"})
    assert beyond.status_code == 416
    unknown = await http.get(f"/v1/attachments/{'0' * 32}", headers=auth(bob))
    assert unknown.status_code == 404
    assert (await http.get(target)).status_code == 401
    assert (await http.get("/v1/attachments/..%2f..%2fcove.db", headers=auth(bob))).status_code in (400, 404)
    await http.aclose()


async def test_a_blob_expires_once_every_recipient_fetched_it_and_others_at_retention(users, relay, tmp_path):
    alice = await users.register("alice")
    bob = await users.register("bob")
    source = tmp_path / "a.txt"
    write_file(source, 1000)
    await alice.send_file(bob.core.account_id, source)
    unfetched = await alice.upload_attachment(source, recipients=2)
    http = httpx.AsyncClient(base_url=relay.url, headers={"Authorization": f"Bearer {alice.core.token}"})
    never_done = (await http.post("/v1/attachments", json={"size": 100, "recipients": 1})).json()["id"]
    assert len(blobs(relay)) == 3

    event = await received_file(bob)
    await bob.save_attachment(event, tmp_path / "bob")
    # Its one recipient has it: no one else can fetch it, and it goes once that recipient could no longer need
    # it to resume a broken download.
    assert (await http.get(f"/v1/attachments/{event.attachment['id']}")).status_code == 404
    engine = create_engine(relay.database_url)
    store = BlobStore(relay.data_dir / "attachments")
    try:
        assert await purge_expired(engine, store, now_ms()) == 0
        assert await purge_expired(engine, store, now_ms() + FETCHED_GRACE_MS) == 1
        assert {p.name.removesuffix(".part") for p in blobs(relay)} == {unfetched["id"], never_done}

        # A download by one of two recipients keeps it; an upload never completed goes after a day...
        await bob.download_attachment(unfetched, tmp_path / "bob" / "b.txt")
        assert (await http.get(f"/v1/attachments/{unfetched['id']}")).status_code == 200
        assert await purge_expired(engine, store, now_ms() + 86_400_000 + 1000) == 1
        assert [p.name for p in blobs(relay)] == [unfetched["id"]]
        # ... and one nobody else fetched, at the message retention (30 days by default).
        assert await purge_expired(engine, store, now_ms() + 30 * 86_400_000 + 1000) == 1
    finally:
        await engine.dispose()
        await http.aclose()
    assert blobs(relay) == []
    assert [t for t, _ in await server_rows(relay.database_url) if t.startswith("attachment")] == []


async def test_starting_uploads_is_rate_limited_per_account(users, relay):
    alice = await users.register("alice")
    bob = await users.register("bob")
    http = httpx.AsyncClient(base_url=relay.url)
    new = {"size": 16, "recipients": 1}

    async def start(client) -> httpx.Response:  # noqa: ANN001
        return await http.post("/v1/attachments", json=new, headers={"Authorization": f"Bearer {client.core.token}"})

    assert {(await start(alice)).status_code for _ in range(50)} == {200}  # Signal's attachmentCreate burst
    # It refills one every 1.2 s: far fewer than the requests below, however slow the machine.
    answers = [await start(alice) for _ in range(100)]
    refused = [a for a in answers if a.status_code == 429]
    assert refused and refused[0].json()["error"]["code"] == "rate_limited" and "retry-after" in refused[0].headers
    assert (await start(bob)).status_code == 200  # per account
    await http.aclose()
