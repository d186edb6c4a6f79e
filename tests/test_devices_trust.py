"""What the relay cannot do to linked devices: slip in a device of its own, tamper with a signed device list, read
the provisioning channel; and what unlinking takes away."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
import vodozemac as vz
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import create_async_engine
from websockets.asyncio.client import connect

from cove.accounts.storage import devices
from cove.accounts.tokens import new_token, token_digest
from cove.client import devices as sealing
from cove.client import linking
from cove.client.core import Request, UntrustedDevices
from cove.client.events import DeviceListRefused
from cove.client.transport import RelayError
from cove.devices.storage import device_list_members, device_lists
from cove.messaging.storage import envelopes
from cove.protocol.device_list import DEVICE_LIST, DeviceList, ListedDevice
from devices_world import link
from helpers import assert_no_plaintext, server_rows, texts


async def _database(relay, statement) -> None:  # noqa: ANN001
    engine = create_async_engine(relay.database_url)
    async with engine.begin() as conn:
        await conn.execute(statement)
    await engine.dispose()


async def _queued_for(relay, account_id: str) -> list[int]:  # noqa: ANN001
    engine = create_async_engine(relay.database_url)
    async with engine.connect() as conn:
        rows = (await conn.execute(select(envelopes.c.device_id).where(envelopes.c.account_id == account_id))).all()
    await engine.dispose()
    return sorted(r.device_id for r in rows)


async def _rogue_device(relay, account_id: str, device_id: int) -> tuple[str, vz.Account]:  # noqa: ANN001
    """A device row written straight into the relay's database, with a token the test knows."""
    account, token = vz.Account(), new_token()
    await _database(
        relay,
        insert(devices).values(
            account_id=account_id,
            device_id=device_id,
            registration_id=77,
            identity_curve25519=account.curve25519_key.to_base64(),
            identity_ed25519=account.ed25519_key.to_base64(),
            token_hash=token_digest(token),
            device_model="rogue",
            os_name="x",
            os_version="1",
            app_version="1",
            created_at_ms=1,
            updated_at_ms=1,
            last_seen_at_ms=int(time.time() * 1000),
        ),
    )
    return token, account


async def _frames(base_url: str, token: str) -> list[dict]:
    """What the relay sends a device on connecting, up to its queue_empty."""
    url = base_url.replace("http", "ws") + "/v1/websocket"
    seen = []
    async with connect(url, additional_headers={"Authorization": f"Bearer {token}"}) as ws:
        async for raw in ws:
            frame = json.loads(raw)
            frames = frame["frames"] if frame.get("type") == "batch" else [frame]
            seen += frames
            if any(f["type"] == "queue_empty" for f in frames):
                return seen
    return seen


async def test_a_device_row_added_in_the_database_connects_and_gets_nothing(users, relay):
    alice = await users.register("alice")
    bob = await users.register("bob")
    await link(users, alice, "alice-laptop")
    token, _ = await _rogue_device(relay, alice.core.account_id, 3)

    await bob.send_text(alice.core.account_id, "for alice's own devices")
    assert await _queued_for(relay, alice.core.account_id) == [1, 2]
    assert [f["type"] for f in await _frames(bob.base_url, token)] == ["queue_empty"]
    assert set(bob.core.trusted_devices(alice.core.account_id)) == {1, 2}
    async with httpx.AsyncClient(base_url=bob.base_url) as rogue:
        sent = await rogue.put(
            f"/v1/messages/{bob.core.account_id}",
            json={
                "client_message_id": "x",
                "messages": [{"device_id": 1, "registration_id": 1, "kind": 1, "body": "AA=="}],
            },
            headers={"Authorization": f"Bearer {token}"},
        )
    assert (sent.status_code, sent.json()["error"]["code"]) == (403, "device_not_listed")


async def test_no_client_encrypts_to_a_device_the_relay_insists_on_but_the_signed_list_does_not_name(users, relay):
    alice = await users.register("alice")
    bob = await users.register("bob")
    await bob.send_text(alice.core.account_id, "before")
    _, _ = await _rogue_device(relay, alice.core.account_id, 2)
    # A hostile relay: it counts the rogue device as current, serves it and demands that sends address it.
    await _database(relay, insert(device_list_members).values(account_id=alice.core.account_id, device_id=2))
    relay.restart()  # drops the relay's cached devices, as a relay rewritten to lie would not have them

    with pytest.raises(UntrustedDevices) as refused:
        await bob.send_text(alice.core.account_id, "must not reach the rogue device")
    assert refused.value.device_ids == [2]
    assert await _queued_for(relay, alice.core.account_id) == [1]  # only "before"
    assert not bob.core.store.sessions(alice.core.account_id, 2)


async def test_a_tampered_device_list_is_refused_and_the_verified_one_stays_in_force(users, relay):
    alice = await users.register("alice")
    bob = await users.register("bob")
    await link(users, alice, "alice-laptop")
    await bob.send_text(alice.core.account_id, "hello")
    assert set(bob.core.trusted_devices(alice.core.account_id)) == {1, 2}

    _, rogue = await _rogue_device(relay, alice.core.account_id, 3)
    original = json.loads(alice.core.store.device_pin(alice.core.account_id)[3])
    # The relay adds its device to a newer list and signs it with the rogue key instead of Alice's.
    original["version"] += 1
    original["devices"].append(
        {"device_id": 3, "curve25519": rogue.curve25519_key.to_base64(), "ed25519": rogue.ed25519_key.to_base64()}
    )
    text = json.dumps(original, sort_keys=True, separators=(",", ":"))
    forged = rogue.sign(f"cove:v1:{DEVICE_LIST}:{text}".encode()).to_base64()
    await _database(
        relay,
        update(device_lists)
        .where(device_lists.c.account_id == alice.core.account_id)
        .values(list=text, signature=forged, version=original["version"]),
    )
    await _database(relay, insert(device_list_members).values(account_id=alice.core.account_id, device_id=3))
    relay.restart()

    bob.core.store.forget_devices(alice.core.account_id)
    with pytest.raises(UntrustedDevices):
        await bob.send_text(alice.core.account_id, "not to the rogue device")
    refusals = [e for e in bob.core.take_events() if isinstance(e, DeviceListRefused)]
    assert refusals and all(e.peer == alice.core.account_id for e in refusals)
    assert "signature" in refusals[0].reason
    assert set(bob.core.trusted_devices(alice.core.account_id)) == {1, 2}
    assert not bob.core.store.sessions(alice.core.account_id, 3)


async def test_the_primary_unlinks_a_companion_which_then_cannot_connect_and_gets_nothing(users, relay):
    alice = await users.register("alice")
    bob = await users.register("bob")
    laptop = await link(users, alice, "alice-laptop")
    await bob.send_text(alice.core.account_id, "queued for both")
    assert await _queued_for(relay, alice.core.account_id) == [1, 2]

    await linking.unlink_companion(alice, 2)
    assert await _queued_for(relay, alice.core.account_id) == [1]
    with pytest.raises(RelayError) as refused:
        await laptop.inbox()
    assert refused.value.status == 401
    await bob.send_text(alice.core.account_id, "after the unlink")
    assert await _queued_for(relay, alice.core.account_id) == [1, 1]
    assert texts(await alice.inbox()) == ["queued for both", "after the unlink"]
    assert linking.trust.pin_of(alice.core.store, alice.core.account_id).listed().device_ids() == {1}


async def test_a_companion_unlinks_itself_and_the_primary_drops_it_from_the_list(users, relay):
    alice = await users.register("alice")
    bob = await users.register("bob")
    laptop = await link(users, alice, "alice-laptop")
    await linking.leave(laptop)
    with pytest.raises(RelayError) as refused:
        await laptop.inbox()
    assert refused.value.status == 401
    await bob.send_text(alice.core.account_id, "only the phone")
    assert await _queued_for(relay, alice.core.account_id) == [1]

    await alice.inbox()  # the primary notices as it next talks to the relay, and re-signs
    assert linking.trust.pin_of(alice.core.store, alice.core.account_id).listed().device_ids() == {1}
    assert await linking.reconcile(alice) == []


async def test_only_the_primary_links_unlinks_and_publishes(users):
    alice = await users.register("alice")
    laptop = await link(users, alice, "alice-laptop")
    for request in (
        Request("POST", "/v1/devices/link-token"),
        Request("DELETE", "/v1/devices/1"),
        Request("PUT", "/v1/devices/list", {"list": "{}", "signature": "A" * 86}),
    ):
        with pytest.raises(RelayError) as refused:
            await laptop.call(request)
        assert (refused.value.status, refused.value.code) in {(403, "not_primary"), (400, "primary_device")}
    with pytest.raises(linking.LinkError):
        await linking.link_companion(laptop, "cove-link:1:" + "0" * 32 + ":" + "A" * 43)


async def test_a_stale_or_foreign_device_list_is_refused_by_the_relay(users):
    alice = await users.register("alice")
    bob = await users.register("bob")
    curve, ed = alice.core.own_keys()
    same = DeviceList(alice.core.account_id, 1, 1, (ListedDevice(1, curve, ed),))
    with pytest.raises(RelayError) as stale:
        await alice.call(alice.core.device_list_upload(same))
    assert (stale.value.status, stale.value.code, stale.value.details["version"]) == (409, "stale_version", 1)
    with pytest.raises(RelayError) as foreign:
        await alice.call(alice.core.device_list_upload(DeviceList(bob.core.account_id, 2, 1, same.devices)))
    assert (foreign.value.status, foreign.value.code) == (400, "invalid_device_list")
    unknown = DeviceList(alice.core.account_id, 2, 1, (*same.devices, ListedDevice(2, curve, ed)))
    with pytest.raises(RelayError) as refused:
        await alice.call(alice.core.device_list_upload(unknown))
    assert (refused.value.status, refused.value.code) == (400, "unknown_device")


async def test_a_link_token_links_one_device_once_and_the_relay_reads_no_provisioning_secret(users, relay):
    alice = await users.register("alice")
    companion = users.client("alice-laptop")
    pending = await linking.open_link(companion)
    await asyncio.gather(linking.finish_link(companion, pending), linking.link_companion(alice, pending.code))
    laptop = companion
    rows = await server_rows(relay.database_url)
    (channel,) = [r for t, r in rows if t == "provisioning_channels"]
    opened = sealing.open_sealed(pending.key, channel["message"], sealing.TO_COMPANION + pending.address.encode())
    link_token = opened["link_token"]
    # Tokens and the channel's secret are stored as digests only; the channel's message and reply are sealed: the
    # account, number and keys they carry are not readable there.
    assert_no_plaintext(rows, [link_token, pending.secret, laptop.core.token, alice.core.token])
    sealed = {"message": channel["message"], "reply": channel["reply"]}
    assert_no_plaintext([("provisioning_channels", sealed)], [alice.core.phone_number, *laptop.core.own_keys()])
    assert opened["account_id"] == alice.core.account_id and channel["reply"]

    again = users.client("another-laptop")
    with pytest.raises(RelayError) as refused:
        await again.call(Request("POST", "/v1/devices/link", {"link_token": link_token, **again.core.new_identity()}))
    assert (refused.value.status, refused.value.code) == (403, "invalid_link_token")
