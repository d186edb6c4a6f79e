"""Several devices per person, end to end through a real relay: linking companions, the signed device list that
decides who gets messages, and unlinking."""

from __future__ import annotations

from cove.client.events import DeviceListRefused, DevicesChanged, IdentityChanged
from devices_world import link
from helpers import texts


async def test_two_people_with_two_devices_each_every_device_of_the_recipient_gets_each_message(users):
    alice = await users.register("alice")
    bob = await users.register("bob")
    alice_laptop = await link(users, alice, "alice-laptop")
    bob_laptop = await link(users, bob, "bob-laptop")
    assert (alice_laptop.core.account_id, alice_laptop.core.device_id) == (alice.core.account_id, 2)
    assert (bob_laptop.core.account_id, bob_laptop.core.device_id) == (bob.core.account_id, 2)

    await alice.send_text(bob.core.account_id, "to both of bob's devices")
    assert texts(await bob.inbox()) == ["to both of bob's devices"]
    assert texts(await bob_laptop.inbox()) == ["to both of bob's devices"]

    await bob_laptop.send_text(alice.core.account_id, "from bob's laptop")
    assert texts(await alice.inbox()) == ["from bob's laptop"]
    assert texts(await alice_laptop.inbox()) == ["from bob's laptop"]
    assert set(bob_laptop.core.trusted_devices(alice.core.account_id)) == {1, 2}


async def test_a_contact_is_told_when_a_device_is_linked(users):
    alice = await users.register("alice")
    bob = await users.register("bob")
    await alice.send_text(bob.core.account_id, "hello")
    await link(users, bob, "bob-laptop")
    await alice.send_text(bob.core.account_id, "hello again")
    changed = [e for e in alice.core.take_events() if isinstance(e, DevicesChanged)]
    assert changed == [DevicesChanged(bob.core.account_id, [2], [])]


async def test_a_companion_keeps_working_while_the_primary_is_offline(users):
    alice = await users.register("alice")
    bob = await users.register("bob")
    laptop = await link(users, alice, "alice-laptop")
    await alice.aclose()  # the phone is off from here on
    await laptop.send_text(bob.core.account_id, "sent from the laptop alone")
    assert texts(await bob.inbox()) == ["sent from the laptop alone"]
    await bob.send_text(alice.core.account_id, "answer")
    assert texts(await laptop.inbox()) == ["answer"]


async def test_a_new_phone_pins_its_new_key_and_the_old_companions_are_gone(users):
    alice = await users.register("alice")
    bob = await users.register("bob")
    await link(users, bob, "bob-laptop")
    await alice.send_text(bob.core.account_id, "to the old phone and laptop")
    assert set(alice.core.trusted_devices(bob.core.account_id)) == {1, 2}

    new_phone = await users.register("bob-new-phone", bob.core.phone_number)
    events = await alice.send(alice.core.compose_text(bob.core.account_id, "to the new phone"))
    events += alice.core.take_events()
    assert any(isinstance(e, IdentityChanged) and e.peer == bob.core.account_id for e in events)
    assert not any(isinstance(e, DeviceListRefused) for e in events)
    trusted = alice.core.trusted_devices(bob.core.account_id)
    assert set(trusted) == {1} and trusted[1].ed25519 == new_phone.core.own_keys()[1]
    assert texts(await new_phone.inbox()) == ["to the new phone"]
