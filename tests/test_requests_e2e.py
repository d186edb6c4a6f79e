"""Message requests, blocks and reports as the SDK's users meet them, through a real relay process."""

from __future__ import annotations

import pytest

from cove.client.events import MessageReceived, Read, RequestReceived
from cove.client.group_client import Groups
from cove.client.safety_client import GROUP, MESSAGE, PERSON, Safety, chat_messages, group_messages
from cove.client.transport import RelayError
from devices_world import link
from helpers import server_rows, texts


def reads(events: list) -> list[str]:
    return [i for e in events if isinstance(e, Read) for i in e.client_message_ids]


async def test_a_strangers_first_message_waits_as_a_request_and_its_receipt_goes_when_accepted(users):
    alice, bob = await users.register("alice"), await users.register("bob")
    a = alice.core.account_id
    first = await alice.send_text(bob.core.account_id, "hi, we met at the climbing wall")

    events = await bob.inbox()
    [message] = [e for e in events if isinstance(e, MessageReceived)]
    assert events[events.index(message) - 1] == RequestReceived(a, first, message.sent_at)
    assert texts(events) == ["hi, we met at the climbing wall"]  # an app that ignores requests still shows it
    assert bob.core.contacts.waiting(events[1])
    await bob.mark_read(a, [first])  # an app that sends the receipt anyway: the relay withholds it
    assert reads(await alice.inbox()) == []
    [waiting] = bob.core.contacts.requests()
    assert (waiting.account_id, waiting.messages) == (a, 1)

    second = await alice.send_text(bob.core.account_id, "are you there?")
    assert [(e.sender, e.client_message_id) for e in await bob.inbox() if isinstance(e, RequestReceived)] == [
        (a, second)
    ]
    assert await Safety(bob).accept(a) == [second]  # the first was marked read already, by the app above
    assert reads(await alice.inbox()) == [second]
    assert bob.core.contacts.requests() == [] and bob.core.contacts.is_contact(a)

    third = await alice.send_text(bob.core.account_id, "great")
    events = await bob.inbox()
    assert not [e for e in events if isinstance(e, RequestReceived)] and texts(events) == ["great"]
    await bob.mark_read(a, [third])
    assert reads(await alice.inbox()) == [third]


async def test_replying_accepts_a_request(users):
    alice, bob = await users.register("alice"), await users.register("bob")
    a = alice.core.account_id
    first = await alice.send_text(bob.core.account_id, "hello?")
    await bob.inbox()
    await bob.send_text(a, "hello, who is this?")
    assert bob.core.contacts.requests() == []
    assert await Safety(bob).read_accepted(a) == [first]
    events = await alice.inbox()
    assert texts(events) == ["hello, who is this?"] and reads(events) == [first]
    # Alice wrote first: Bob is her contact, his reply no request
    assert not [e for e in events if isinstance(e, RequestReceived)]


async def test_a_contact_added_beforehand_writes_no_request(users):
    alice, bob = await users.register("alice", "+14155550101"), await users.register("bob")
    a = await bob.resolve("+14155550101")
    await Safety(bob).add_contact(a, "Alice")
    cmid = await alice.send_text(bob.core.account_id, "it's me")
    events = await bob.inbox()
    assert not [e for e in events if isinstance(e, RequestReceived)]
    await bob.mark_read(a, [cmid])
    assert reads(await alice.inbox()) == [cmid]
    [contact] = bob.core.contacts.contacts()
    assert (contact.account_id, contact.phone_number, contact.name, contact.how) == (
        a,
        "+14155550101",
        "Alice",
        "added",
    )


async def test_a_blocked_person_is_not_told_and_reaches_nobody_until_unblocked(users):
    alice, bob = await users.register("alice"), await users.register("bob")
    a, b = alice.core.account_id, bob.core.account_id
    await alice.send_text(b, "first")
    await bob.inbox()
    await bob.send_text(a, "hi")  # Alice is a contact now
    await Safety(bob).block(a)
    assert not bob.core.contacts.is_contact(a)
    assert [x["account_id"] for x in await Safety(bob).blocked()] == [a]

    await alice.send_text(b, "you cannot ignore me")  # accepted by the relay as any send
    assert texts(await bob.inbox()) == []
    await Safety(bob).block(a)  # idempotent

    await Safety(bob).unblock(a)
    assert await Safety(bob).blocked() == []
    await alice.send_text(b, "sorry")
    events = await bob.inbox()
    assert texts(events) == ["sorry"] and [e.sender for e in events if isinstance(e, RequestReceived)] == [a]

    with pytest.raises(RelayError) as refused:
        await Safety(bob).unblock(a)
    assert refused.value.code == "not_blocked"
    with pytest.raises(RelayError) as refused:
        await Safety(bob).block(b)
    assert refused.value.code == "cannot_block_self"


async def test_a_report_carries_the_messages_the_user_saw_or_none_and_can_block(users, relay):
    alice, bob = await users.register("alice"), await users.register("bob")
    a = alice.core.account_id
    for n in range(3):
        await alice.send_text(bob.core.account_id, f"buy cheap watches {n}")
    await bob.inbox()
    shown = chat_messages(bob.core, a, 2)
    assert [m.text for m in shown] == ["buy cheap watches 1", "buy cheap watches 2"]

    answer = await Safety(bob).report(PERSON, a, attached=shown)
    assert (answer["attached"], answer["blocked"], answer["left_group"]) == (2, False, False)
    answer = await Safety(bob).report(MESSAGE, a, message_ids=[shown[0].client_message_id])
    assert answer["attached"] == 0
    stored = [r["text"] for t, r in await server_rows(relay.database_url) if t == "safety_report_messages"]
    assert sorted(stored) == ["buy cheap watches 1", "buy cheap watches 2"]

    answer = await Safety(bob).report(PERSON, a, block=True)
    assert answer["blocked"] and not bob.core.contacts.requested(a)
    await alice.send_text(bob.core.account_id, "still here")
    assert texts(await bob.inbox()) == []

    with pytest.raises(ValueError, match="at most 5"):
        await Safety(bob).report(PERSON, a, attached=chat_messages(bob.core, a, 3) * 2)


async def test_reporting_a_group_can_leave_it_in_the_same_step(users):
    alice, bob, carol = [await users.register(n) for n in ("alice", "bob", "carol")]
    group = await Groups(alice).create([bob.core.account_id, carol.core.account_id])
    await Groups(alice).send_text(group, "join my pyramid scheme")
    await bob.inbox()
    shown = group_messages(bob.core, group, 5)
    assert [m.text for m in shown] == ["join my pyramid scheme"]

    answer = await Safety(bob).report(GROUP, group_id=group, attached=shown, leave=True)
    assert (answer["attached"], answer["left_group"]) == (1, True)
    view = await Groups(alice).refresh(group)
    assert bob.core.account_id not in {m["account_id"] for m in view["members"]}
    assert bob.core.groups.db.outbound(group) is None  # as after a leave: a next session if he is added back
    with pytest.raises(RelayError) as refused:
        await Safety(bob).report(GROUP, group_id=group)
    assert refused.value.code == "unknown_group"


async def test_a_newly_linked_device_learns_whom_the_account_accepts(users):
    alice, bob, carol = [await users.register(n) for n in ("alice", "bob", "carol")]
    a, c = alice.core.account_id, carol.core.account_id
    await alice.send_text(bob.core.account_id, "hi from alice")
    await bob.inbox()
    await Safety(bob).accept(a)
    await bob.send_text(c, "hi carol")
    laptop = await link(users, bob, "bob-laptop")
    assert sorted(await Safety(laptop).accepted()) == sorted([a, c])
    assert {x.account_id for x in laptop.core.contacts.contacts()} == {a, c}

    await alice.send_text(bob.core.account_id, "on your laptop too?")
    events = await laptop.inbox()
    assert [e.text for e in events if isinstance(e, MessageReceived)][-1] == "on your laptop too?"
    assert not [e for e in events if isinstance(e, RequestReceived)]
