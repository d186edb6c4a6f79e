"""Groups whose members have several devices (a real relay, real vodozemac): every device of every member gets each
group message, one's own other devices included, and an unlinked device reads nothing sent afterwards."""

from __future__ import annotations

import pytest

linking = pytest.importorskip("cove.client.linking", reason="needs the devices branch (linked devices)")

from cove.client.group_client import Groups  # noqa: E402
from cove.client.transport import RelayError  # noqa: E402
from devices_world import link  # noqa: E402
from test_groups_e2e import decrypts_with_any_session, group_texts, stored_ciphertexts  # noqa: E402


@pytest.fixture
def relay_env() -> dict[str, str]:
    return {"COVE_PROVISIONING_PER_SOURCE": "1000"}  # fifty companions are linked from 127.0.0.1


async def test_every_device_of_every_member_and_an_unlinked_device_reads_nothing_more(users, relay):
    alice, bob, carol = [await users.register(n) for n in ("alice", "bob", "carol")]
    laptops = {
        c.core.account_id: await link(users, c, f"{n}-laptop")
        for c, n in ((alice, "alice"), (bob, "bob"), (carol, "carol"))
    }
    alice_laptop, bob_laptop, carol_laptop = laptops.values()
    group = await Groups(alice).create([bob.core.account_id, carol.core.account_id])
    view = await Groups(alice).refresh(group)
    assert {m["account_id"]: m["devices"] for m in view["members"]} == {a: [1, 2] for a in laptops}

    await Groups(alice).send_text(group, "from alice's phone")
    for device in (alice_laptop, bob, bob_laptop, carol, carol_laptop):
        assert group_texts(await device.inbox()) == ["from alice's phone"]
    await Groups(bob_laptop).send_text(group, "from bob's laptop")
    for device in (alice, alice_laptop, bob, carol, carol_laptop):
        assert group_texts(await device.inbox()) == ["from bob's laptop"]

    await linking.unlink_companion(bob, 2)
    await Groups(alice).send_text(group, "bob's laptop is gone")
    [after] = await stored_ciphertexts(relay.database_url)
    with pytest.raises(RelayError) as logged_out:  # the relay no longer serves it
        await bob_laptop.inbox()
    assert logged_out.value.status == 401
    assert not decrypts_with_any_session(bob_laptop, after)  # and what it kept cannot open what follows
    for device in (alice_laptop, bob, carol, carol_laptop):
        assert group_texts(await device.inbox()) == ["bob's laptop is gone"]


async def test_a_group_of_fifty_with_two_devices_each(users):
    phones = [await users.register(f"member{i}") for i in range(50)]
    laptops = [await link(users, phone, f"member{i}-laptop") for i, phone in enumerate(phones)]
    group = await Groups(phones[0]).create([p.core.account_id for p in phones[1:]])
    await Groups(phones[0]).send_text(group, "hello to a hundred devices")
    for device in [*phones[1:], *laptops]:
        assert group_texts(await device.inbox()) == ["hello to a hundred devices"]
    await Groups(laptops[9]).send_text(group, "a reply from a laptop")
    for device in [*phones, *laptops]:
        if device is not laptops[9]:
            assert group_texts(await device.inbox()) == ["a reply from a laptop"]
