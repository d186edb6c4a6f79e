"""Groups end to end: SDK clients with real vodozemac against a real relay process (SQLite and PostgreSQL)."""

from __future__ import annotations

import base64

import pytest
import vodozemac as vz

from cove.client.events import (
    GroupChanged,
    GroupDelivered,
    GroupInfoChanged,
    GroupMessageReceived,
    GroupRead,
    Undecryptable,
)
from cove.client.group_client import Groups
from cove.client.transport import CoveClient, RelayError
from cove.protocol import groups as proto
from cove.protocol.envelope import EnvelopeKind
from helpers import assert_no_plaintext, server_rows


def group_texts(events: list, group_id: str | None = None) -> list[str]:
    return [e.text for e in events if isinstance(e, GroupMessageReceived) and group_id in (None, e.group_id)]


async def stored_ciphertexts(database_url: str) -> list[bytes]:
    return [bytes(r["body"]) for t, r in await server_rows(database_url) if t == "group_messages"]


def decrypts_with_any_session(client: CoveClient, body: bytes) -> bool:
    """Whatever group, sender or device the relay would claim: does any session this client holds open it?"""
    key = client.core.groups._key
    message = vz.MegolmMessage.from_bytes(body)
    for (pickled,) in client.core.store.connection.execute("SELECT pickle FROM group_inbound"):
        try:
            vz.InboundGroupSession.from_pickle(pickled, key).decrypt(message)
            return True
        except vz.MegolmDecryptionException:
            continue
    return False


async def test_members_exchange_messages_and_receipts_reach_the_sender(users, relay):
    alice, bob, carol = [await users.register(n) for n in ("alice", "bob", "carol")]
    info = proto.GroupInfo("Climbing", "Saturdays at the wall", b"\x89PNG avatar")
    group = await Groups(alice).create([bob.core.account_id, carol.core.account_id], info)

    for member in (bob, carol):
        events = await member.inbox()
        assert [e.action for e in events if isinstance(e, GroupChanged)] == ["create"]
        assert GroupInfoChanged(group, alice.core.account_id, "Climbing") in events
        stored = member.core.groups.group(group)
        assert (stored.name, stored.description, stored.avatar) == (
            "Climbing",
            "Saturdays at the wall",
            b"\x89PNG avatar",
        )
        assert set(member.core.groups.members(group)) == {
            alice.core.account_id,
            bob.core.account_id,
            carol.core.account_id,
        }

    first = await Groups(alice).send_text(group, "top rope at ten")
    assert group_texts(await bob.inbox()) == ["top rope at ten"]
    assert group_texts(await carol.inbox()) == ["top rope at ten"]
    await Groups(bob).send_text(group, "bringing the rope")
    await Groups(bob).mark_read(group, alice.core.account_id, [first])

    events = await alice.inbox()
    assert group_texts(events) == ["bringing the rope"]
    delivered = {(e.peer, e.client_message_id) for e in events if isinstance(e, GroupDelivered)}
    assert {(bob.core.account_id, first), (carol.core.account_id, first)} <= delivered
    assert GroupRead(group, bob.core.account_id, [first]) in events
    assert alice.core.groups.db.receipts(group, first) == {
        bob.core.account_id: "read",
        carol.core.account_id: "delivered",
    }
    assert group_texts(await carol.inbox()) == ["bringing the rope"]
    assert_no_plaintext(
        await server_rows(relay.database_url), ["top rope", "bringing the rope", "Climbing", "Saturdays"]
    )


async def test_a_removed_member_cannot_read_what_is_sent_after_it_left(users, relay):
    alice, bob, carol = [await users.register(n) for n in ("alice", "bob", "carol")]
    group = await Groups(alice).create([bob.core.account_id, carol.core.account_id])
    await Groups(alice).send_text(group, "all three of us")
    await Groups(carol).send_text(group, "carol was here")
    for member in (bob, carol):
        await member.inbox()
    assert group_texts(await alice.inbox()) == ["carol was here"]
    session_before = alice.core.groups.sender_key(group).session_id

    await Groups(alice).remove(group, carol.core.account_id)
    [removed] = [e for e in await carol.inbox() if isinstance(e, GroupChanged)]
    assert removed.action == "remove" and removed.accounts == [carol.core.account_id]
    assert carol.core.groups.group(group).member is False

    await Groups(alice).send_text(group, "after carol left")
    assert alice.core.groups.sender_key(group).session_id != session_before
    [after] = await stored_ciphertexts(relay.database_url)
    with pytest.raises(RelayError) as refused:
        await Groups(carol).send_text(group, "let me back in")
    assert refused.value.status == 404
    assert group_texts(await carol.inbox()) == []
    assert not decrypts_with_any_session(carol, after)
    forged = {
        "type": "envelope",
        "id": 10**12,
        "kind": EnvelopeKind.MEGOLM,
        "sender": alice.core.account_id,
        "sender_device": 1,
        "client_message_id": "x",
        "server_ts": 1,
        "group": group,
        "body": base64.b64encode(after).decode(),
    }
    assert [type(e) for e in carol.core.receive(forged).events] == [Undecryptable]
    assert group_texts(await bob.inbox()) == ["after carol left"]

    # Leaving works the same way: bob's own leave rotates alice's session when she learns of it.
    await Groups(bob).leave(group)
    assert [e.action for e in await alice.inbox() if isinstance(e, GroupChanged)] == ["remove", "leave"]
    await Groups(alice).send_text(group, "alone now")
    assert group_texts(await bob.inbox()) == []
    assert not any(decrypts_with_any_session(bob, c) for c in await stored_ciphertexts(relay.database_url))


async def test_admins_and_invites(users):
    alice, bob, dave, erin, frank = [await users.register(n) for n in ("alice", "bob", "dave", "erin", "frank")]
    group = await Groups(alice).create([bob.core.account_id], proto.GroupInfo("Book club"))
    with pytest.raises(RelayError) as refused:
        await Groups(bob).add(group, [dave.core.account_id])
    assert (refused.value.status, refused.value.code) == (403, "not_admin")

    await Groups(alice).set_role(group, bob.core.account_id, "admin")
    await bob.inbox()  # bob learns the name and his role
    assert bob.core.groups.members(group)[bob.core.account_id].role == "admin"
    await Groups(bob).add(group, [dave.core.account_id])
    events = await dave.inbox()
    assert GroupInfoChanged(group, bob.core.account_id, "Book club") in events  # from whoever added him
    await Groups(alice).send_text(group, "chapter three")
    assert group_texts(await dave.inbox()) == ["chapter three"]

    code = await Groups(alice).invite(group)
    revoked = await Groups(alice).invite(group)
    await Groups(alice).revoke(group, revoked)
    assert await Groups(erin).join(code) == group
    await Groups(alice).welcome(await alice.inbox())  # an admin tells erin the name
    assert GroupInfoChanged(group, alice.core.account_id, "Book club") in await erin.inbox()
    with pytest.raises(RelayError) as unknown:
        await Groups(frank).join(revoked)
    assert (unknown.value.status, unknown.value.code) == (404, "unknown_invite")
    await Groups(erin).send_text(group, "hello from erin")
    assert group_texts(await bob.inbox()) == ["chapter three", "hello from erin"]
    for member in (alice, dave):
        assert group_texts(await member.inbox()) == ["hello from erin"]
    assert group_texts(await frank.inbox()) == []

    await Groups(alice).set_role(group, bob.core.account_id, "member")
    with pytest.raises(RelayError):
        await Groups(bob).remove(group, dave.core.account_id)
    listed = {g["group_id"]: g for g in await Groups(erin).list()}
    assert listed[group]["size"] == 4 and listed[group]["role"] == "member"


async def test_a_group_of_fifty(users):
    alice = await users.register("alice")
    others = [await users.register(f"member{i}") for i in range(49)]
    group = await Groups(alice).create([m.core.account_id for m in others], proto.GroupInfo("Fifty"))
    await Groups(alice).send_text(group, "hello fifty")
    assert alice.core.groups.lacking_key(group, alice.core.account_id, 1) == {}
    await Groups(alice).send_text(group, "no new keys needed")  # the session and every Olm session are reused
    for member in others:
        events = await member.inbox()
        assert group_texts(events) == ["hello fifty", "no new keys needed"]
    replier = others[7]
    await Groups(replier).send_text(group, "a reply to all")
    assert group_texts(await alice.inbox()) == ["a reply to all"]
    for member in others:
        if member is not replier:
            assert group_texts(await member.inbox()) == ["a reply to all"]
