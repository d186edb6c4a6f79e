"""Contact verification: safety numbers and the SAS comparison as rules, then between two people over a relay."""

from __future__ import annotations

import asyncio

import pytest
import vodozemac as vz

from cove.client.events import PayloadReceived, VerifiedKeyChanged
from cove.client.verification import (
    SAS_KEY,
    SAS_START,
    Party,
    SasState,
    SasVerification,
    Verified,
    key_changed,
    qr_matches,
    safety_number,
)
from cove.client.verify_flow import SasFailed, mark_verified, safety, verify_by_sas
from devices_world import link
from helpers import texts

ALICE, BOB, MALLORY = (
    "0a11ce00-0000-4000-8000-000000000001",
    "0b0b0000-0000-4000-8000-000000000002",
    "0ba10000-0000-4000-8000-000000000003",
)


def key() -> str:
    return vz.Account().ed25519_key.to_base64()


# safety numbers -------------------------------------------------------------------------------------------
def test_both_people_see_the_same_sixty_digits_and_the_same_qr_payload():
    alice_key, bob_key = key(), key()
    seen_by_alice = safety_number(ALICE, alice_key, BOB, bob_key)
    seen_by_bob = safety_number(BOB, bob_key, ALICE, alice_key)
    assert seen_by_alice == seen_by_bob
    assert len(seen_by_alice.digits) == 60 and seen_by_alice.digits.isdigit()
    assert len(seen_by_alice.groups()) == 12 and all(len(g) == 5 for g in seen_by_alice.groups())
    assert qr_matches(seen_by_bob.qr, seen_by_alice)


def test_another_key_or_another_account_gives_another_number_and_the_qr_does_not_match():
    alice_key, bob_key = key(), key()
    real = safety_number(ALICE, alice_key, BOB, bob_key)
    relay_in_between = safety_number(ALICE, alice_key, BOB, key())
    other_account = safety_number(ALICE, alice_key, MALLORY, bob_key)
    assert real.digits != relay_in_between.digits and real.digits != other_account.digits
    assert not qr_matches(relay_in_between.qr, real)
    assert not qr_matches(other_account.qr, real)


def test_the_number_follows_the_documented_construction():
    """Recomputed here from docs/protocol.md, so that another client can implement it from the text."""
    import base64
    import hashlib

    alice_key, bob_key = key(), key()

    def half(account: str, ed25519: str) -> str:
        raw = base64.b64decode(ed25519 + "=" * (-len(ed25519) % 4))
        h = b"\x00\x00" + raw + account.encode()
        for _ in range(5200):
            h = hashlib.sha512(h + raw).digest()
        return "".join(f"{int.from_bytes(h[i : i + 5], 'big') % 100000:05d}" for i in range(0, 30, 5))

    assert safety_number(ALICE, alice_key, BOB, bob_key).digits == "".join(
        sorted([half(ALICE, alice_key), half(BOB, bob_key)])
    )


def test_a_verified_contact_is_flagged_on_a_new_key_or_a_new_phone_once():
    record = Verified(BOB, "k1", 1, "sas", 0)
    assert not key_changed(None, 2, "k2")  # never verified: nothing to flag
    assert not key_changed(record, 1, "k1")
    assert key_changed(record, 1, "k2")
    assert key_changed(record, 2, "k1")
    assert not key_changed(Verified(BOB, "k1", 1, "sas", 0, changed=True), 3, "k3")  # already flagged


# SAS as rules ----------------------------------------------------------------------------------------------
def exchange(alice: SasVerification, start: dict, bob_party: Party, alice_party: Party) -> SasVerification:
    bob, bob_key = SasVerification.accept(bob_party, alice_party, start)
    [alice_key] = alice.receive(bob_party, bob_key)
    assert alice_key["type"] == SAS_KEY and bob.receive(alice_party, alice_key) == []
    return bob


def test_sas_both_sides_show_the_same_emoji_and_each_macs_proves_the_primary_key():
    alice_party, bob_party = Party(ALICE, 1), Party(BOB, 1)
    alice_primary, bob_primary = key(), key()
    alice, start = SasVerification.start(alice_party, BOB)
    assert start["type"] == SAS_START and "key" not in start  # only a commitment before the other's key
    bob = exchange(alice, start, bob_party, alice_party)
    assert alice.state is bob.state is SasState.COMPARING
    assert alice.emoji() == bob.emoji() and len(alice.emoji()) == 7
    assert alice.decimals() == bob.decimals()

    alice_mac, bob_mac = alice.confirm(alice_primary), bob.confirm(bob_primary)
    alice.receive(bob_party, bob_mac)
    bob.receive(alice_party, alice_mac)
    assert alice.check(bob_primary) and bob.check(alice_primary)
    assert alice.state is bob.state is SasState.DONE


def test_sas_a_mac_over_another_key_than_the_one_held_cancels():
    alice_party, bob_party = Party(ALICE, 1), Party(BOB, 1)
    alice, start = SasVerification.start(alice_party, BOB)
    bob = exchange(alice, start, bob_party, alice_party)
    alice.confirm(key())
    alice.receive(bob_party, bob.confirm(key()))  # Bob's MAC is over a key Alice was not served
    assert not alice.check(key())
    assert alice.state is SasState.CANCELLED and "does not verify" in (alice.cancel_reason or "")


def test_sas_someone_in_between_shows_other_emoji_and_cannot_swap_keys_after_the_commitment():
    alice_party, bob_party, mallory_party = Party(ALICE, 1), Party(BOB, 1), Party(BOB, 1)
    alice, start = SasVerification.start(alice_party, BOB)
    # Mallory answers Alice as Bob, and starts her own comparison with Bob: two different shared secrets.
    mallory_as_bob = exchange(alice, start, mallory_party, alice_party)
    bob_side, bob_start = SasVerification.start(bob_party, ALICE)
    mallory_as_alice = exchange(bob_side, bob_start, alice_party, bob_party)
    assert alice.emoji() == mallory_as_bob.emoji() and bob_side.emoji() == mallory_as_alice.emoji()
    assert alice.emoji() != bob_side.emoji()

    # A responder gets the initiator's key only after answering: one that differs from the commitment cancels.
    answering, _ = SasVerification.accept(bob_party, alice_party, start)
    [cancel] = answering.receive(alice_party, {"v": 1, "type": SAS_KEY, "txn": start["txn"], "key": key()})
    assert cancel["type"] == "sas_cancel" and answering.state is SasState.CANCELLED


def test_sas_payloads_of_another_comparison_or_device_are_ignored_and_out_of_order_ones_cancel():
    alice_party, bob_party = Party(ALICE, 1), Party(BOB, 1)
    alice, start = SasVerification.start(alice_party, BOB)
    bob = exchange(alice, start, bob_party, alice_party)
    assert alice.receive(Party(BOB, 2), {"type": "sas_mac", "txn": alice.txn, "mac": "x"}) == []
    assert alice.receive(bob_party, {"type": "sas_mac", "txn": "0" * 32, "mac": "x"}) == []
    assert alice.state is SasState.COMPARING
    [cancel] = bob.receive(alice_party, {"type": SAS_KEY, "txn": alice.txn, "key": key()})  # a second key
    assert cancel["type"] == "sas_cancel" and bob.state is SasState.CANCELLED


# over a relay --------------------------------------------------------------------------------------------
async def test_two_people_compare_emoji_over_the_relay_and_both_record_the_other_as_verified(users):
    alice = await users.register("alice")
    bob = await users.register("bob")
    shown: dict[str, list] = {}

    def confirm_as(name: str):  # noqa: ANN202
        async def confirm(comparison: SasVerification) -> bool:
            shown[name] = comparison.emoji()
            return True

        return confirm

    alice_done, bob_done = await asyncio.wait_for(
        asyncio.gather(
            verify_by_sas(alice, bob.core.account_id, confirm_as("alice")),
            verify_by_sas(bob, alice.core.account_id, confirm_as("bob")),
        ),
        60,
    )
    assert shown["alice"] == shown["bob"] and len(shown["alice"]) == 7
    assert alice_done.ed25519 == bob.core.own_keys()[1] and alice_done.method == "sas"
    assert bob_done.ed25519 == alice.core.own_keys()[1]
    assert alice.core.store.verification(bob.core.account_id) == alice_done
    assert bob.core.store.verification(alice.core.account_id) == bob_done
    assert [m.text for m in alice.core.store.messages()] == []  # the comparison is no conversation


async def test_when_one_person_says_the_emoji_differ_neither_side_records_a_verification(users):
    alice = await users.register("alice")
    bob = await users.register("bob")

    async def yes(_: SasVerification) -> bool:
        return True

    async def no(_: SasVerification) -> bool:
        return False

    results = await asyncio.wait_for(
        asyncio.gather(
            verify_by_sas(alice, bob.core.account_id, no),
            verify_by_sas(bob, alice.core.account_id, yes),
            return_exceptions=True,
        ),
        60,
    )
    assert all(isinstance(r, SasFailed) for r in results)
    assert "do not match" in str(results[0]) and "cancelled" in str(results[1])
    assert alice.core.store.verification(bob.core.account_id) is None
    assert bob.core.store.verification(alice.core.account_id) is None


async def test_a_verified_contact_on_a_new_phone_is_flagged_until_verified_again(users):
    alice = await users.register("alice")
    bob = await users.register("bob", "+14155550188")
    found = await safety(alice, bob.core.account_id)
    assert found.number == (await safety(bob, alice.core.account_id)).number
    mark_verified(alice.core, bob.core.account_id, found.key, found.generation, "safety_number")
    await alice.send_text(bob.core.account_id, "verified you")
    assert not alice.core.store.verification(bob.core.account_id).changed  # the same key: nothing to flag

    new_bob = await users.register("bob-new-phone", "+14155550188")
    await alice.send_text(bob.core.account_id, "is this still you?")
    events = await alice.inbox()
    assert [e for e in events if isinstance(e, VerifiedKeyChanged)] == [VerifiedKeyChanged(bob.core.account_id)]
    record = alice.core.store.verification(bob.core.account_id)
    assert record.changed and record.ed25519 == found.key
    assert alice.core.store.changed_contacts() == [bob.core.account_id]
    assert texts(await new_bob.inbox()) == ["is this still you?"]

    await alice.send_text(bob.core.account_id, "still flagged, no second event")
    assert not [e for e in await alice.inbox() if isinstance(e, VerifiedKeyChanged)]

    again = await safety(alice, bob.core.account_id)
    assert again.number != found.number and again.key == new_bob.core.own_keys()[1]
    mark_verified(alice.core, bob.core.account_id, again.key, again.generation, "safety_number")
    assert alice.core.store.changed_contacts() == []


@pytest.mark.parametrize("lower_first", [True, False])
async def test_a_comparison_meets_even_when_the_first_start_was_taken_by_another_command(users, lower_first):
    """The first side's start reached the other's `cove inbox`, not its comparison: one comparison still goes on,
    whichever side has the lower id (the winner sends its start again when it sees the other's)."""
    alice = await users.register("alice")
    bob = await users.register("bob")
    first, second = sorted([alice, bob], key=lambda c: c.core.account_id, reverse=not lower_first)

    async def yes(_: SasVerification) -> bool:
        return True

    async def start_taken_by_inbox() -> None:
        while not any(isinstance(e, PayloadReceived) and e.payload["type"] == SAS_START for e in await second.inbox()):
            pass

    early = asyncio.create_task(verify_by_sas(first, second.core.account_id, yes))
    await asyncio.wait_for(start_taken_by_inbox(), 30)
    done = await asyncio.wait_for(asyncio.gather(early, verify_by_sas(second, first.core.account_id, yes)), 60)
    assert {d.account_id for d in done} == {alice.core.account_id, bob.core.account_id}


async def test_a_linked_laptop_shows_its_phones_safety_number_and_compares_emoji_for_the_account(users):
    alice = await users.register("alice")
    bob = await users.register("bob")
    laptop = await link(users, alice, "alice-laptop")
    a, b = alice.core.account_id, bob.core.account_id
    seen = {(await safety(c, peer)).number for c, peer in ((alice, b), (laptop, b), (bob, a))}
    assert len(seen) == 1  # the laptop uses the phone's key, as the phone gave it when linking

    async def yes(_: SasVerification) -> bool:
        return True

    on_laptop, on_bob = await asyncio.wait_for(
        asyncio.gather(verify_by_sas(laptop, b, yes), verify_by_sas(bob, a, yes)), 60
    )
    assert on_laptop.ed25519 == bob.core.own_keys()[1]
    assert on_bob.ed25519 == alice.core.own_keys()[1]  # Bob verified Alice's account, not only her laptop
