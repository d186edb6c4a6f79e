"""One person's devices show one conversation: sent transcripts, read state and a new device's history, through a
real relay with real vodozemac, and nothing of it readable in the relay's database."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

from cove.client import linking, sync, sync_flow
from cove.client.core import Outgoing
from cove.client.events import Delivered, HistoryImported, Read, ReadElsewhere, SentElsewhere, Undecryptable
from cove.client.request import Request
from cove.client.store import ClientStore
from cove.client.transport import CoveClient
from cove.protocol.attachments import Pointer
from devices_world import link
from helpers import assert_no_plaintext, server_rows, texts

DAY_MS = 86_400_000


def conversation(client: CoveClient, peer: str) -> list[tuple[str, str, str]]:
    """What the device shows of one conversation: (direction, id, text), in order sent."""
    kept = sorted(client.core.store.messages(peer, 1000), key=lambda m: (m.sent_at, m.client_message_id))
    return [(m.direction, m.client_message_id, m.text) for m in kept]


def mirrored(rows: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    return [("in" if d == "out" else "out", i, t) for d, i, t in rows]


async def test_two_people_with_two_devices_each_see_the_same_conversation_on_every_device(users, relay):
    alice = await users.register("alice")
    bob = await users.register("bob")
    alice_laptop = await link(users, alice, "alice-laptop")
    bob_laptop = await link(users, bob, "bob-laptop")
    a, b = alice.core.account_id, bob.core.account_id

    await alice.send_text(b, "from alice's phone")
    await bob_laptop.send_text(a, "from bob's laptop")
    await alice_laptop.send_text(b, "from alice's laptop")
    await bob.send_text(a, "from bob's phone")

    for device in (alice, alice_laptop, bob, bob_laptop):
        await device.inbox()
    seen_by_alice = conversation(alice, b)
    assert [t for _, _, t in seen_by_alice] == [
        "from alice's phone",
        "from bob's laptop",
        "from alice's laptop",
        "from bob's phone",
    ]
    assert conversation(alice_laptop, b) == seen_by_alice
    assert conversation(bob, a) == conversation(bob_laptop, a) == mirrored(seen_by_alice)

    stored = await server_rows(relay.database_url)
    assert_no_plaintext(stored, ["from alice's phone", "from bob's laptop", "from alice's laptop", "from bob's"])


async def test_a_transcript_is_shown_as_sent_by_another_device_and_not_as_a_message_received(users):
    alice = await users.register("alice")
    bob = await users.register("bob")
    await alice.send_text(bob.core.account_id, "while alice had one device")  # she read her own list then
    alice_laptop = await link(users, alice, "alice-laptop")
    cmid = await alice.send_text(bob.core.account_id, "for the record")
    await bob.inbox()
    events = await alice_laptop.inbox()
    assert texts(events) == []
    [transcript] = [e for e in events if isinstance(e, SentElsewhere)]
    assert (transcript.peer, transcript.sender_device, transcript.client_message_id, transcript.text) == (
        bob.core.account_id,
        1,
        cmid,
        "for the record",
    )
    assert [m.status for m in alice_laptop.core.store.messages(bob.core.account_id)][-1:] == ["sent"]
    delivered = [e for e in await alice.inbox() if isinstance(e, Delivered)]
    # Bob's two receipts; the laptop's for the transcript says nothing to show
    assert [e.peer for e in delivered] == [bob.core.account_id] * 2


async def test_devices_linked_later_get_the_transcripts_of_every_device_that_knew_the_list_before(users):
    alice = await users.register("alice")
    bob = await users.register("bob")
    laptop = await link(users, alice, "alice-laptop")
    await laptop.send_text(bob.core.account_id, "laptop knows phone and laptop")
    tablet = await link(users, alice, "alice-tablet")
    await laptop.send_text(bob.core.account_id, "from the laptop")
    await alice.send_text(bob.core.account_id, "from the phone")
    sent_to_tablet = [e.text for e in await tablet.inbox() if isinstance(e, SentElsewhere)]
    assert sent_to_tablet == ["from the laptop", "from the phone"]
    await alice.inbox()
    assert [t for _, _, t in conversation(alice, bob.core.account_id)] == [
        "laptop knows phone and laptop",
        "from the laptop",
        "from the phone",
    ]


async def test_read_state_syncs_and_a_message_read_on_one_device_gets_one_read_receipt(users):
    alice = await users.register("alice")
    bob = await users.register("bob")
    bob_laptop = await link(users, bob, "bob-laptop")
    a = alice.core.account_id
    ids = [await alice.send_text(bob.core.account_id, f"note {i}") for i in range(3)]

    assert texts(await bob.inbox()) == ["note 0", "note 1", "note 2"]
    await bob.call(Request("PUT", f"/v1/safety/requests/{a}"))  # Bob accepts: read receipts reach Alice
    await bob.mark_read(a, ids)
    assert {m.status for m in bob.core.store.messages(a)} == {"read"}

    on_laptop = await bob_laptop.inbox()
    assert texts(on_laptop) == ["note 0", "note 1", "note 2"]
    assert [e for e in on_laptop if isinstance(e, ReadElsewhere)] == [ReadElsewhere(a, ids)]
    assert {m.status for m in bob_laptop.core.store.messages(a)} == {"read"}
    await bob_laptop.mark_read(a, ids)  # what `cove inbox` does with what it showed: already read, no receipt

    receipts = [e for e in await alice.inbox() if isinstance(e, Read)]
    assert receipts == [Read(bob.core.account_id, ids)]
    assert {m.status for m in alice.core.store.messages(bob.core.account_id)} == {"read"}


async def test_a_person_with_one_device_sends_nothing_to_their_own_account(users, relay):
    alice = await users.register("alice")
    bob = await users.register("bob")
    cmid = await alice.send_text(bob.core.account_id, "only one phone")
    assert texts(await bob.inbox()) == ["only one phone"]
    await bob.mark_read(alice.core.account_id, [cmid])
    queued = [r for t, r in await server_rows(relay.database_url) if t == "envelopes"]
    assert queued and not [r for r in queued if r["sender_account_id"] == r["account_id"]]


async def test_history_is_not_sent_to_a_new_device_unless_asked(users):
    alice = await users.register("alice")
    bob = await users.register("bob")
    await alice.send_text(bob.core.account_id, "before the laptop")
    laptop = await link(users, alice, "alice-laptop")
    events = await laptop.inbox()
    assert not [e for e in events if isinstance(e, HistoryImported)]
    assert laptop.core.store.messages() == []


async def test_the_chosen_days_of_history_reach_the_new_device_only_in_bounded_parts_and_no_plaintext_on_the_relay(
    users, relay
):
    alice = await users.register("alice")
    bob = await users.register("bob")
    b = bob.core.account_id
    first_laptop = await link(users, alice, "alice-laptop")
    await alice.send_text(b, "recent and short")
    await bob.send_text(alice.core.account_id, "an answer")
    await alice.inbox()
    await first_laptop.inbox()
    now = int(time.time() * 1000)
    long_ago = now - 30 * DAY_MS
    alice.core.store.add_message(b, "out", uuid.uuid4().hex, "from last month", long_ago, "read")
    for i in range(150):  # about 150 KB: several parts
        alice.core.store.add_message(b, "in", f"bulk-{i:03d}", f"bulk {i} " + "x" * 1000, now - DAY_MS, "read")
    before = conversation(first_laptop, b)

    tablet = users.client("alice-tablet")
    pending = await linking.open_link(tablet)
    _, device_id = await asyncio.gather(
        linking.finish_link(tablet, pending), linking.link_companion(alice, pending.code)
    )
    assert await sync_flow.send_history(alice, device_id, days=7) == 152

    imported = [e for e in await tablet.inbox() if isinstance(e, HistoryImported)]
    assert len(imported) == imported[0].parts >= 3 and sum(e.count for e in imported) == 152
    expected = [row for row in conversation(alice, b) if row[2] != "from last month"]
    assert conversation(tablet, b) == expected
    assert conversation(first_laptop, b) == before  # every device got a copy; only the tablet imports it

    stored = await server_rows(relay.database_url)
    assert_no_plaintext(stored, ["recent and short", "an answer", "bulk 7 xxxx"])
    assert max(len(r["body"]) for t, r in stored if t == "envelopes" and r["body"]) < 96 * 1024


async def test_own_device_payloads_from_another_account_are_refused(users):
    alice = await users.register("alice")
    mallory = await users.register("mallory")
    forged = sync.transcript(
        mallory.core.account_id, json.dumps({"type": "text", "id": "x", "text": "hi", "ts": 1}).encode()
    )
    assert forged is not None
    await mallory.send(Outgoing(alice.core.account_id, uuid.uuid4().hex, forged))
    events = await alice.inbox()
    assert [e.reason for e in events if isinstance(e, Undecryptable)] == [
        "an own-device payload from another account's device"
    ]
    assert alice.core.store.messages() == []


# the rules, on a local store ------------------------------------------------------------------------------
ME, PEER = "0a11ce00-0000-4000-8000-000000000001", "0b0b0000-0000-4000-8000-000000000002"


def applied(payload: dict, sender: str = ME, device: int = 1, me_device: int = 2):  # noqa: ANN201
    store = ClientStore(":memory:")
    events = sync.apply(store, sync.Me(ME, me_device, frozenset({1, 2, 3})), sender, device, payload, 7)
    return events, store.messages(None, 1000)


def test_own_device_payloads_from_an_unlisted_device_or_this_device_are_refused():
    payload = json.loads(sync.read_sync(PEER, ["a"]))
    for sender, device in ((ME, 4), (ME, 2), (PEER, 1)):
        events, _ = applied(payload, sender, device)
        assert [type(e) for e in events] == [Undecryptable]


def test_malformed_sync_payloads_are_reported_and_change_nothing():
    good = {"peer": PEER, "direction": "in", "id": "m1", "text": "hi", "ts": 1, "status": "read"}
    for payload in (
        {"type": "sent", "to": "../x", "message": {"type": "text", "id": "m", "text": "t", "ts": 1}},
        {"type": "sent", "to": PEER, "message": "not an object"},
        {"type": "read_sync", "peer": PEER, "ids": ["x"] * (sync.MAX_READ_IDS + 1)},
        {"type": "read_sync", "peer": PEER, "ids": ["y" * 65]},
        {"type": "history", "for_device": 2, "part": 0, "parts": 1, "messages": [good, {**good, "peer": "nope"}]},
        {"type": "history", "for_device": 2, "part": 1, "parts": 1, "messages": [good]},
    ):
        events, stored = applied(payload)
        assert [type(e) for e in events] == [Undecryptable], payload
        assert stored == []


def test_history_is_imported_only_by_the_device_named_and_only_from_the_primary():
    store = ClientStore(":memory:")
    store.add_message(PEER, "out", "m1", "hello", 1_000, "read")
    [part] = sync.history_parts(store.messages(), for_device=2)
    payload = json.loads(part)
    assert applied(payload, me_device=3)[0] == []
    from_laptop, stored = applied(payload, device=3)
    assert [type(e) for e in from_laptop] == [Undecryptable] and stored == []
    events, stored = applied(payload)
    assert events == [HistoryImported(1, 0, 1)] and [(m.direction, m.text) for m in stored] == [("out", "hello")]


def test_a_transcript_of_a_file_reaches_the_app_with_its_payload_and_the_history_with_its_line():
    pointer = Pointer("0" * 32, bytes(32), "ab" * 32, 3, "text/plain", "a.txt").to_json()
    for attachment, line in (
        ({"type": "attachment", "id": "f1", "text": "see", "attachment": pointer}, "[file a.txt, 3 bytes] see"),
        ({"type": "attachment", "id": "f1", "attachment": {"id": "0" * 32}}, "[a file that cannot be opened]"),
    ):
        payload = json.loads(sync.transcript(PEER, json.dumps(attachment).encode()) or b"null")
        [event], stored = applied(payload)
        assert isinstance(event, SentElsewhere) and (event.peer, event.payload) == (PEER, attachment)
        assert [(m.peer_account, m.direction, m.text) for m in stored] == [(PEER, "out", line)]
    assert sync.transcript(PEER, json.dumps({"type": "read", "ids": ["a"]}).encode()) is None
