"""Forwarding a file (a real relay, real vodozemac, SQLite and PostgreSQL): the forward sends the pointer again and
uploads nothing, so the forwarding device first has the relay expect the new recipients' devices to fetch the
blob; who may do that, and how far."""

from __future__ import annotations

import dataclasses

import httpx
import pytest

from cove.attachments.service import purge_expired
from cove.attachments.store import BlobStore
from cove.client.events import AttachmentReceived
from cove.client.transport import CoveClient, RelayError
from cove.clock import now_ms
from cove.config import Settings
from cove.db import create_engine
from cove.protocol import forwarding
from cove.protocol.attachments import MAX_RECIPIENTS, parse_pointer
from devices_world import link
from helpers import server_rows
from test_attachments import MiB, blobs, sha256_of, write_file

DAY_MS = 86_400_000


@pytest.fixture
def relay_env() -> dict[str, str]:
    # Companions are linked from 127.0.0.1; the bucket is made to run out within a test (a device costs 1).
    return {
        "COVE_PROVISIONING_PER_SOURCE": "1000",
        "COVE_ATTACHMENT_RECIPIENTS_BUCKET": str(MAX_RECIPIENTS),
        "COVE_ATTACHMENT_RECIPIENTS_PER_HOUR": "1",
    }


async def files(client: CoveClient) -> list[AttachmentReceived]:
    return [e for e in await client.inbox() if isinstance(e, AttachmentReceived)]


async def row(relay, blob_id: str) -> dict:  # noqa: ANN001
    [found] = [r for t, r in await server_rows(relay.database_url) if t == "attachments" and r["id"] == blob_id]
    return found


async def post(relay, client: CoveClient | None, path: str, body: object) -> httpx.Response:  # noqa: ANN001
    """The route itself, for what the SDK never sends."""
    headers = {"Authorization": f"Bearer {client.core.token}"} if client else {}
    async with httpx.AsyncClient(base_url=relay.url, headers=headers) as http:
        return await http.post(path, json=body)


async def add(relay, client: CoveClient | None, blob_id: str, body: object) -> httpx.Response:  # noqa: ANN001
    return await post(relay, client, f"/v1/attachments/{blob_id}/recipients", body)


async def purged_after_grace(relay) -> int:  # noqa: ANN001
    engine = create_engine(relay.database_url)
    try:
        return await purge_expired(engine, BlobStore(relay.data_dir / "attachments"), now_ms() + 2 * 3_600_000)
    finally:
        await engine.dispose()


async def test_a_fetched_file_forwarded_to_two_people_on_two_devices_each_reaches_all_four(users, relay, tmp_path):
    alice, bob, carol, dave = [await users.register(n) for n in ("alice", "bob", "carol", "dave")]
    laptops = [await link(users, person, f"{name}-laptop") for person, name in ((carol, "carol"), (dave, "dave"))]
    source = tmp_path / "map.png"
    original = write_file(source, 2 * MiB + 3)
    await alice.send_file(bob.core.account_id, source, "the map")
    [received] = await files(bob)
    pointer = parse_pointer(received.attachment)
    assert sha256_of(await bob.save_attachment(received, tmp_path / "bob")) == original
    fetched = await row(relay, pointer.id)
    assert (fetched["recipients"], fetched["fetches"]) == (1, 1)  # fetched by all it was for: an hour left
    assert fetched["expires_at_ms"] < now_ms() + 2 * 3_600_000

    # Bob forwards it to carol and dave: their four devices are expected as well, for the retention again.
    reached = await bob.fetching_devices(bob.core.account_id, carol.core.account_id, dave.core.account_id)
    assert reached == 4
    await bob.add_attachment_recipients(pointer, reached)
    header = forwarding.header(1, forwarding.new_batch())
    for person in (carol, dave):
        outgoing = bob.core.compose_attachment(person.core.account_id, pointer, received.text)
        await bob.send(dataclasses.replace(outgoing, forward=header))
    room = await row(relay, pointer.id)
    assert (room["recipients"], room["fetches"]) == (5, 1)
    retention_ms = Settings.model_fields["message_retention_days"].default * DAY_MS
    assert room["expires_at_ms"] == room["completed_at_ms"] + retention_ms  # again, and never past it

    for i, device in enumerate((carol, dave, *laptops)):
        [event] = await files(device)
        assert (event.sender, event.attachment, event.text) == (bob.core.account_id, received.attachment, "the map")
        saved = await device.save_attachment(event, tmp_path / f"device{i}")
        assert saved.name == "map.png" and sha256_of(saved) == original
    assert [b.name for b in blobs(relay)] == [pointer.id]  # one upload for all five
    assert (await row(relay, pointer.id))["fetches"] == 5
    assert await purged_after_grace(relay) == 1 and blobs(relay) == []


async def test_only_a_device_the_blob_is_served_to_adds_recipients_and_within_bounds(users, relay, tmp_path):
    alice, bob, eve = [await users.register(n) for n in ("alice", "bob", "eve")]
    source = tmp_path / "notes.txt"
    write_file(source, 1000)
    await alice.send_file(bob.core.account_id, source)
    [received] = await files(bob)
    pointer = parse_pointer(received.attachment)
    # While bob has not fetched it, whoever knows the id could fetch it: so they may make room for more.
    assert (await add(relay, eve, pointer.id, {"count": 1})).status_code == 200
    await bob.save_attachment(received, tmp_path / "bob")
    await (await link(users, eve, "eve-laptop")).download_attachment(received.attachment, tmp_path / "eve")
    assert (await row(relay, pointer.id))["fetches"] == 2

    # Every expected device has it: a device that never fetched it cannot add recipients, nor fetch it.
    refused = await add(relay, eve, pointer.id, {"count": 3})
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "not_a_fetcher")
    with pytest.raises(RelayError) as denied:
        await eve.add_attachment_recipients(pointer, 3)
    assert (denied.value.status, denied.value.code) == (403, "not_a_fetcher")
    # Its uploader and a device that fetched it may.
    assert (await add(relay, bob, pointer.id, {"count": 1})).json() == {"id": pointer.id, "recipients": 3, "fetches": 2}
    await alice.add_attachment_recipients(pointer, 2)
    assert (await row(relay, pointer.id))["recipients"] == 5

    # At most MAX_RECIPIENTS devices a blob, then the account's bucket (MAX_RECIPIENTS here, 1 an hour back).
    too_many = await add(relay, alice, pointer.id, {"count": MAX_RECIPIENTS - 4})
    assert (too_many.status_code, too_many.json()["error"]["code"]) == (409, "too_many_recipients")
    assert too_many.json()["error"]["limit"] == MAX_RECIPIENTS
    last = await add(relay, alice, pointer.id, {"count": MAX_RECIPIENTS - 5})
    assert last.status_code == 200, last.text
    another = parse_pointer(await alice.upload_attachment(source, recipients=1))
    spent = await add(relay, alice, another.id, {"count": 10})
    assert (spent.status_code, spent.json()["error"]["code"]) == (429, "rate_limited")


@pytest.mark.parametrize(
    ("blob_id", "body", "status"),
    [
        (None, {"count": 0}, 400),
        (None, {"count": -1}, 400),
        (None, {"count": MAX_RECIPIENTS + 1}, 400),
        (None, {"count": True}, 400),
        (None, {"count": "two"}, 400),
        (None, {"count": 1.5}, 400),
        (None, {"count": 1, "more": True}, 400),
        (None, {}, 400),
        (None, [1], 400),
        ("NOT-A-BLOB-ID", {"count": 1}, 400),
        ("0" * 32, {"count": 1}, 404),
    ],
)
async def test_bad_requests_to_add_recipients_are_refused(users, relay, tmp_path, blob_id, body, status):
    alice = await users.register("alice")
    source = tmp_path / "a.bin"
    write_file(source, 10)
    pointer = parse_pointer(await alice.upload_attachment(source, recipients=1))
    answer = await add(relay, alice, blob_id or pointer.id, body)
    assert answer.status_code == status and answer.json()["error"]["message"]
    assert (await row(relay, pointer.id))["recipients"] == 1


async def test_an_incomplete_blob_gets_no_recipients_and_nobody_unauthenticated_adds_any(users, relay):
    alice = await users.register("alice")
    started = (await post(relay, alice, "/v1/attachments", {"size": 100, "recipients": 1})).json()["id"]
    answer = await add(relay, alice, started, {"count": 1})
    assert (answer.status_code, answer.json()["error"]["code"]) == (404, "attachment_not_found")
    assert (await add(relay, None, started, {"count": 1})).status_code == 401
    assert (await row(relay, started))["recipients"] == 1
