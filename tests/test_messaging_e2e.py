"""End to end through a real relay process: registration, Olm sessions, queues, receipts, restarts."""

from __future__ import annotations

import asyncio

import pytest

from cove.client.core import IdentityChanged
from cove.client.events import Delivered, MessageReceived, Read
from cove.client.transport import RelayError
from cove.messaging.envelope import receipt_ids
from helpers import assert_no_plaintext, server_rows, texts


async def test_two_users_exchange_messages_both_ways_and_the_server_holds_only_ciphertext(users, relay):
    alice = await users.register("alice")
    bob = await users.register("bob")

    # Bob is offline: the relay must hold Alice's messages for him.
    await alice.send_text(bob.core.account_id, "meet at the blue door at noon")
    await alice.send_text(bob.core.account_id, "bring the second key")
    stored = await server_rows(relay.database_url)
    queued = [r for t, r in stored if t == "envelopes"]
    assert len(queued) == 2 and all(len(r["body"]) > 0 for r in queued)
    assert_no_plaintext(stored, ["meet at the blue door", "second key"])

    assert texts(await bob.inbox()) == ["meet at the blue door at noon", "bring the second key"]
    sent_by_bob = [await bob.send_text(alice.core.account_id, "the blue door it is")]
    read_receipt = bob.core.compose_read_receipt(
        alice.core.account_id, [m.client_message_id for m in bob.core.store.messages() if m.direction == "in"]
    )
    await bob.send(read_receipt)
    sent_by_bob.append(read_receipt.client_message_id)

    events = await alice.inbox()
    assert texts(events) == ["the blue door it is"]
    assert len([e for e in events if isinstance(e, Delivered)]) == 2
    assert any(isinstance(e, Read) and len(e.client_message_ids) == 2 for e in events)
    assert {m.status for m in alice.core.store.messages() if m.direction == "out"} == {"read"}

    stored = await server_rows(relay.database_url)
    # Everything Bob acked is gone; what is left for him is the receipts for his own two messages.
    left_for_bob = [r for t, r in stored if t == "envelopes" and r["account_id"] == bob.core.account_id]
    assert {r["kind"] for r in left_for_bob} == {5}
    assert sorted(i for r in left_for_bob for i in receipt_ids(r["body"])) == sorted(sent_by_bob)
    assert_no_plaintext(stored, ["meet at the blue door", "second key", "the blue door it is"])
    assert "blue door" not in relay.log()


async def test_messages_queued_for_an_offline_user_survive_a_relay_restart(users, relay):
    alice = await users.register("alice")
    bob = await users.register("bob")
    await alice.send_text(bob.core.account_id, "before the restart")
    relay.restart()
    await alice.send_text(bob.core.account_id, "after the restart")
    assert texts(await bob.inbox()) == ["before the restart", "after the restart"]
    await bob.send_text(alice.core.account_id, "got both")
    assert texts(await alice.inbox()) == ["got both"]


async def test_a_connected_device_receives_live_messages_in_order(users):
    alice = await users.register("alice")
    bob = await users.register("bob")
    received: list[str] = []

    async def listen() -> None:
        async for event in bob.events():
            if isinstance(event, MessageReceived):
                received.append(event.text)
                if len(received) == 5:
                    return

    listener = asyncio.create_task(listen())
    await asyncio.sleep(0.3)
    for i in range(5):
        await alice.send_text(bob.core.account_id, f"live {i}")
    await asyncio.wait_for(listener, 10)
    assert received == [f"live {i}" for i in range(5)]


async def test_an_unacked_envelope_is_redelivered_and_applied_once(users):
    alice = await users.register("alice")
    bob = await users.register("bob")
    await alice.send_text(bob.core.account_id, "exactly once")

    # Simulate a crash after the store commit but before the ack reached the relay.
    import json

    from websockets.asyncio.client import connect

    url = bob.base_url.replace("http", "ws") + "/v1/websocket"
    async with connect(url, additional_headers={"Authorization": f"Bearer {bob.core.token}"}) as ws:
        frame = json.loads(await ws.recv())
        received = bob.core.receive(frame)
        if received.need_identity:
            bob.core.identity_received(await bob.call(bob.core.identity_request(received.need_identity)))
            received = bob.core.receive(frame, identity_refreshed=True)
        assert texts(received.events) == ["exactly once"]
        assert texts(bob.core.take_events()) == ["exactly once"]  # what an app driving the core itself does

    assert await bob.inbox() == []  # redelivered, recognised, acked, not shown again
    assert [m.text for m in bob.core.store.messages()] == ["exactly once"]


async def test_resending_the_same_client_message_id_queues_it_once(users, relay):
    alice = await users.register("alice")
    bob = await users.register("bob")
    outgoing = alice.core.compose_text(bob.core.account_id, "only once")
    await alice.send(outgoing)
    request = alice.core.encrypt(outgoing)
    second = await alice.call(request)
    assert second["duplicate"] is True and second["queued"] == 0
    assert texts(await bob.inbox()) == ["only once"]


async def test_reregistering_a_number_logs_out_old_devices_and_warns_contacts(users):
    alice = await users.register("alice")
    bob = await users.register("bob", "+14155550177")
    await alice.send_text(bob.core.account_id, "to the old phone")
    assert texts(await bob.inbox()) == ["to the old phone"]

    new_bob = await users.register("bob-new-phone", "+14155550177")
    assert new_bob.core.account_id == bob.core.account_id
    with pytest.raises(RelayError) as refused:
        await bob.call(bob.core.key_count())
    assert refused.value.status == 401

    events = await alice.send(alice.core.compose_text(bob.core.account_id, "to the new phone"))
    assert any(isinstance(e, IdentityChanged) for e in events)
    assert texts(await new_bob.inbox()) == ["to the new phone"]


async def test_a_second_connection_of_the_same_device_replaces_the_first(users):
    import json

    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    bob = await users.register("bob")
    url = bob.base_url.replace("http", "ws") + "/v1/websocket"
    headers = {"Authorization": f"Bearer {bob.core.token}"}
    async with connect(url, additional_headers=headers) as first:
        assert json.loads(await first.recv())["type"] == "queue_empty"
        async with connect(url, additional_headers=headers) as second:
            assert json.loads(await second.recv())["type"] == "queue_empty"
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(first.recv(), 5)
            assert closed.value.rcvd.code == 4409


async def test_one_time_keys_are_consumed_then_the_fallback_key_is_served_and_refilled(users):
    alice = await users.register("alice")
    bob = await users.register("bob")
    count = await bob.call(bob.core.key_count())
    assert count == {"one_time_keys": 50, "max_one_time_keys": 50, "has_fallback_key": True}

    seen = set()
    for _ in range(50):
        bundle = await alice.call(alice.core.bundles_request(bob.core.account_id, [1]))
        key = bundle["devices"][0]
        assert key["is_fallback"] is False
        seen.add(key["one_time_key"]["key_id"])
    assert len(seen) == 50
    bundle = await alice.call(alice.core.bundles_request(bob.core.account_id, [1]))
    assert bundle["devices"][0]["is_fallback"] is True
    assert (await bob.call(bob.core.key_count()))["one_time_keys"] == 0

    # A session built on the fallback key still works, and bob refills when his queue drains.
    await alice.send_text(bob.core.account_id, "via fallback")
    assert texts(await bob.inbox()) == ["via fallback"]
    assert (await bob.call(bob.core.key_count()))["one_time_keys"] == 50


async def test_a_message_after_the_queue_emptied_is_not_mistaken_for_a_redelivery(users):
    # Clients recognise redeliveries by queue id, so the relay must never hand out an id twice, even
    # after every envelope was acked and deleted (SQLite would reuse rowids without AUTOINCREMENT).
    alice = await users.register("alice")
    bob = await users.register("bob")
    await alice.send_text(bob.core.account_id, "one")
    assert texts(await bob.inbox()) == ["one"]
    await alice.inbox()  # acks the delivery receipt: every queue is empty now
    await alice.send_text(bob.core.account_id, "two")
    assert texts(await bob.inbox()) == ["two"]


async def test_a_device_cannot_ack_away_another_devices_envelopes(users, relay):
    import json

    from websockets.asyncio.client import connect

    alice = await users.register("alice")
    bob = await users.register("bob")
    carol = await users.register("carol")
    await alice.send_text(bob.core.account_id, "for bob only")
    queued = [r for t, r in await server_rows(relay.database_url) if t == "envelopes"]
    url = carol.base_url.replace("http", "ws") + "/v1/websocket"
    async with connect(url, additional_headers={"Authorization": f"Bearer {carol.core.token}"}) as ws:
        await ws.recv()  # queue_empty
        await ws.send(json.dumps({"type": "ack", "ids": [r["id"] for r in queued]}))
        await asyncio.sleep(0.3)
    assert texts(await bob.inbox()) == ["for bob only"]
