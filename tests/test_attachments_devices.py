"""Attachments for people with several devices, and in groups (a real relay, real vodozemac, SQLite and
PostgreSQL): every device that gets the message (or, for the sender's other devices, its transcript) gets the
file intact from one upload, the relay holds neither plaintext nor key, and the blob is gone once every device it
was uploaded for fetched it."""

from __future__ import annotations

import httpx
import pytest

from cove.attachments.service import purge_expired
from cove.attachments.storage import FETCHED_GRACE_MS
from cove.attachments.store import BlobStore
from cove.client.attachments import carries_file
from cove.client.events import AttachmentReceived, SentElsewhere
from cove.client.group_client import Groups
from cove.clock import now_ms
from cove.db import create_engine
from devices_world import link
from helpers import assert_no_plaintext, server_rows
from test_attachments import MARKER, MiB, blobs, sha256_of, write_file


@pytest.fixture
def relay_env() -> dict[str, str]:
    return {"COVE_PROVISIONING_PER_SOURCE": "1000"}  # every companion is linked from 127.0.0.1


async def files(client) -> list[AttachmentReceived]:  # noqa: ANN001
    return [e for e in await client.inbox() if isinstance(e, AttachmentReceived)]


async def served(relay, client, blob_id: str) -> int:  # noqa: ANN001
    """The status of a whole download of the blob by ``client``'s device (which counts as its fetch)."""
    headers = {"Authorization": f"Bearer {client.core.token}"}
    async with httpx.AsyncClient(base_url=relay.url, headers=headers) as http:
        return (await http.get(f"/v1/attachments/{blob_id}", headers={"Range": "bytes=0-0"})).status_code


async def purged(relay) -> int:  # noqa: ANN001
    """Purge as it would run once a device that fetched a blob no longer needs it to resume."""
    engine = create_engine(relay.database_url)
    try:
        return await purge_expired(engine, BlobStore(relay.data_dir / "attachments"), now_ms() + FETCHED_GRACE_MS)
    finally:
        await engine.dispose()


async def test_a_20_mb_file_reaches_every_device_of_both_people_and_expires_once_all_fetched_it(users, relay, tmp_path):
    alice, bob = await users.register("alice"), await users.register("bob")
    await alice.send_text(bob.core.account_id, "before bob had a laptop")  # alice knows bob's devices of then
    alice_laptop = await link(users, alice, "alice-laptop")
    bob_laptop = await link(users, bob, "bob-laptop")
    source = tmp_path / "report.pdf"
    original = write_file(source, 20 * MiB)

    await alice.send_file(bob.core.account_id, source, text="the report")

    [blob] = blobs(relay)
    [row] = [r for t, r in await server_rows(relay.database_url) if t == "attachments"]
    # bob's two devices (the laptop linked since alice last looked) and alice's laptop, which gets the transcript
    assert blob.name == row["id"] and row["recipients"] == 3
    [on_phone] = await files(bob)
    [on_laptop] = await files(bob_laptop)
    assert on_phone.attachment == on_laptop.attachment and on_laptop.text == "the report"
    assert on_phone.group is None
    [transcript] = [e for e in await alice_laptop.inbox() if isinstance(e, SentElsewhere)]
    assert carries_file(transcript) and transcript.peer == bob.core.account_id
    assert transcript.payload["attachment"] == on_phone.attachment

    for i, (device, event) in enumerate(((bob, on_phone), (bob_laptop, on_laptop), (alice_laptop, transcript))):
        assert await purged(relay) == 0 and blobs(relay) == [blob]  # a device it is for has not fetched it yet
        saved = await device.save_attachment(event, tmp_path / f"device{i}")
        assert saved.name == "report.pdf" and sha256_of(saved) == original

    secrets = [MARKER.decode(), on_phone.attachment["key"], "report.pdf", "the report"]
    assert_no_plaintext(await server_rows(relay.database_url), secrets)
    stored = blob.read_bytes()  # noqa: ASYNC240 - the test's own check, nothing else runs meanwhile
    assert MARKER not in stored and on_phone.attachment["key"].encode() not in stored
    # Every device it was for has it: they alone may fetch it again (to resume), nobody else.
    assert await served(relay, bob, blob.name) == 206 and await served(relay, alice, blob.name) == 404
    assert await purged(relay) == 1 and blobs(relay) == []


async def test_a_group_file_is_uploaded_once_and_every_member_device_saves_it(users, relay, tmp_path):
    phones = [await users.register(name) for name in ("alice", "bob", "carol")]
    laptops = [await link(users, phone, f"laptop{i}") for i, phone in enumerate(phones)]
    alice = phones[0]
    group = await Groups(alice).create([p.core.account_id for p in phones[1:]])
    await Groups(laptops[1]).send_text(group, "send the plans")
    source = tmp_path / "plans.bin"
    original = write_file(source, 3 * MiB + 5)

    cmid = await Groups(alice).send_file(group, source, text="the plans")

    [blob] = blobs(relay)  # one upload for the six devices
    [row] = [r for t, r in await server_rows(relay.database_url) if t == "attachments"]
    assert row["id"] == blob.name and row["recipients"] == 5  # every member device but the sending one
    others = [*phones[1:], *laptops]
    for i, device in enumerate(others):
        [event] = await files(device)
        assert (event.group, event.sender, event.client_message_id, event.text) == (
            group,
            alice.core.account_id,
            cmid,
            "the plans",
        )
        saved = await device.save_attachment(event, tmp_path / f"device{i}")
        assert saved.name == "plans.bin" and sha256_of(saved) == original
        shown = [m.text for m in device.core.groups.db.messages(group) if m.client_message_id == cmid]
        assert shown == ["[file plans.bin, 3145733 bytes] the plans"]

    assert_no_plaintext(await server_rows(relay.database_url), [MARKER.decode(), "plans.bin", "the plans"])
    assert await purged(relay) == 1 and blobs(relay) == []  # all five fetched it
    [mine] = [m.text for m in alice.core.groups.db.messages(group) if m.client_message_id == cmid]
    assert mine == "[file plans.bin, 3145733 bytes] the plans"
