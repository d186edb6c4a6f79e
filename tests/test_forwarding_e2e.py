"""Forwarding end to end: SDK clients against a real relay process (SQLite and PostgreSQL) that enforces the forward
limits from the visible header, and passes the count on to recipients, whose clients keep and show the label."""

from __future__ import annotations

import dataclasses
import re

import pytest
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import create_async_engine

from cli_helpers import cli_env, cove, register, said
from cove.attachments.storage import attachments
from cove.client import forwards
from cove.client.events import AttachmentReceived, GroupMessageReceived, MessageReceived
from cove.client.group_client import Groups
from cove.client.transport import CoveClient, RelayError
from cove.protocol import forwarding
from cove.protocol import groups as proto
from cove.protocol.attachments import parse_pointer
from helpers import server_rows, texts


async def forward_text(sender: CoveClient, chat: str, text: str, count: int, batch: str) -> str:
    outgoing = sender.core.compose_text(chat, text)
    await sender.send(dataclasses.replace(outgoing, forward=forwarding.header(count, batch)))
    return outgoing.client_message_id


async def test_a_forward_reaches_five_chats_and_the_sixth_is_refused(users, relay):
    alice = await users.register("alice")
    friends = [await users.register(f"friend{i}") for i in range(6)]
    batch = forwarding.new_batch()
    for friend in friends[:5]:
        await forward_text(alice, friend.core.account_id, "the ferry leaves at six", 1, batch)
    # A retried chat of the same forward is not a sixth chat.
    await forward_text(alice, friends[0].core.account_id, "the ferry leaves at six", 1, batch)

    with pytest.raises(RelayError) as refused:
        await forward_text(alice, friends[5].core.account_id, "the ferry leaves at six", 1, batch)
    assert (refused.value.status, refused.value.code, refused.value.details["limit"]) == (429, "forward_limit", 5)
    assert "at most 5 chats at once" in str(refused.value)
    # Another forward action starts its own count; an original message is never limited.
    await forward_text(alice, friends[5].core.account_id, "the ferry leaves at six", 1, forwarding.new_batch())
    await alice.send_text(friends[5].core.account_id, "not forwarded")

    events = await friends[5].inbox()
    assert texts(events) == ["the ferry leaves at six", "not forwarded"]
    by_text = {e.text: e.client_message_id for e in events if isinstance(e, MessageReceived)}
    store, sender = friends[5].core.store, alice.core.account_id
    assert forwards.count_of(store, sender, by_text["the ferry leaves at six"]) == 1
    assert forwards.count_of(store, sender, by_text["not forwarded"]) == 0
    # The count is stored with the envelopes the five others have not fetched yet; the batch never is.
    rows = [r for t, r in await server_rows(relay.database_url) if t == "envelopes" and r["kind"] in (0, 1)]
    assert len(rows) == 6 and {r["forward_count"] for r in rows} == {1}
    assert not any(batch in str(r) for _, r in await server_rows(relay.database_url))


async def test_a_frequently_forwarded_message_reaches_one_chat_at_a_time(users):
    alice, bob, carol = [await users.register(n) for n in ("alice", "bob", "carol")]
    batch = forwarding.new_batch()
    await forward_text(alice, bob.core.account_id, "chain letter", forwarding.FREQUENTLY + 1, batch)
    with pytest.raises(RelayError) as refused:
        await forward_text(alice, carol.core.account_id, "chain letter", forwarding.FREQUENTLY + 1, batch)
    assert (refused.value.code, refused.value.details["limit"]) == ("forward_limit", 1)
    assert "forwarded 5 times can be forwarded to at most 1 chat at once" in str(refused.value)

    events = await bob.inbox()
    [received] = [e for e in events if isinstance(e, MessageReceived)]
    count = forwards.count_of(bob.core.store, alice.core.account_id, received.client_message_id)
    assert forwarding.label(count) == "Forwarded many times"


async def test_a_group_is_one_chat_of_a_forward_and_its_members_see_the_label(users):
    alice, bob, carol = [await users.register(n) for n in ("alice", "bob", "carol")]
    others = [await users.register(f"friend{i}") for i in range(4)]
    group = await Groups(alice).create([bob.core.account_id, carol.core.account_id])
    batch = forwarding.new_batch()
    sent = await Groups(alice).send_text(group, "road closed", forwarding.header(2, batch))
    for friend in others:
        await forward_text(alice, friend.core.account_id, "road closed", 2, batch)
    another = await Groups(alice).create([bob.core.account_id])
    with pytest.raises(RelayError) as refused:
        await Groups(alice).send_text(another, "road closed", forwarding.header(2, batch))
    assert refused.value.code == "forward_limit"

    for member in (bob, carol):
        received = [e for e in await member.inbox() if isinstance(e, GroupMessageReceived)]
        assert [(e.text, e.client_message_id) for e in received] == [("road closed", sent)]
        assert forwards.count_of(member.core.store, group, sent) == 2


async def test_new_batches_for_each_chat_run_into_the_accounts_forward_bucket(users):
    alice, bob = await users.register("alice"), await users.register("bob")
    frequent = forwarding.FREQUENTLY + 1
    # 50 chats at once by default, a frequently forwarded send costing 5: ten sends, each its own "action".
    for _ in range(10):
        await forward_text(alice, bob.core.account_id, "spam", frequent, forwarding.new_batch())
    with pytest.raises(RelayError) as refused:
        await forward_text(alice, bob.core.account_id, "spam", frequent, forwarding.new_batch())
    assert (refused.value.status, refused.value.code) == (429, "rate_limited")
    # Someone else's forwards draw on their own bucket.
    await forward_text(bob, alice.core.account_id, "not spam", frequent, forwarding.new_batch())


async def test_a_forward_header_on_a_receipt_or_to_ones_own_devices_is_refused(users):
    alice, bob = await users.register("alice"), await users.register("bob")
    header = forwarding.header(1, forwarding.new_batch())
    receipt = alice.core.compose_read_receipt(bob.core.account_id, ["a" * 32])
    with pytest.raises(RelayError) as refused:
        await alice.send(dataclasses.replace(receipt, forward=header))
    assert (refused.value.status, refused.value.code) == (400, "invalid_forward_header")

    to_self = alice.core.compose_text(bob.core.account_id, "note to self")
    request = alice.core.encrypt(dataclasses.replace(to_self, forward=header))
    with pytest.raises(RelayError) as refused:
        await alice.call(dataclasses.replace(request, path=f"/v1/messages/{alice.core.account_id}"))
    assert (refused.value.status, refused.value.code) == (400, "invalid_forward_header")


async def test_malformed_forward_headers_are_refused_with_400(users):
    alice, bob = await users.register("alice"), await users.register("bob")
    await alice.send_text(bob.core.account_id, "hello")  # sessions exist: only the header is wrong below
    for bad in ({"count": 0, "batch": "a" * 32}, {"count": 1, "batch": "NOT-HEX"}, {"count": "1", "batch": "a" * 16}):
        request = alice.core.encrypt(dataclasses.replace(alice.core.compose_text(bob.core.account_id, "x")))
        assert request.json is not None
        request.json["forward"] = bad
        with pytest.raises(RelayError) as refused:
            await alice.call(request)
        assert refused.value.status == 400


ALICE = "+14155550188"


async def expire_attachments(database_url: str, except_id: str) -> None:
    """What the relay's purge does to a blob past its time (its row goes, and with it every fetch)."""
    engine = create_async_engine(database_url)
    async with engine.begin() as conn:
        await conn.execute(delete(attachments).where(attachments.c.id != except_id))
    await engine.dispose()


async def test_the_cli_forwards_texts_and_files_within_the_limits_and_shows_the_label(
    users, relay, code_inbox, tmp_path
):
    env = cli_env(relay, tmp_path / "home")
    await register(env, code_inbox, "alice", ALICE)
    bob, carol, dave = [await users.register(n) for n in ("bob", "carol", "dave")]
    alice_id = await bob.resolve(ALICE)
    # Bob's messages are not message requests: those are shown by `cove requests`, not by the inbox.
    added = cove(env, "contacts", "add", bob.core.account_id, "--profile", "alice")
    assert added.returncode == 0, said(added)
    group = await Groups(bob).create([alice_id, carol.core.account_id], proto.GroupInfo("Neighbours", "", None))
    chairs_id = await Groups(bob).send_text(group, "bring chairs")
    await bob.send_text(alice_id, "fire drill at three")
    await forward_text(bob, alice_id, "chain letter", forwarding.FREQUENTLY, forwarding.new_batch())
    shared = tmp_path / "minutes.txt"
    shared.write_text("the minutes of the meeting\n" * 100)
    # Counted as `send_file` counts (alice's one device): the forward itself makes room for dave's.
    assert await bob.fetching_devices(alice_id, bob.core.account_id) == 1
    pointer = parse_pointer(await bob.upload_attachment(shared, recipients=1))
    await bob.send(bob.core.compose_attachment(alice_id, pointer, "the minutes"))
    await bob.send_file(alice_id, shared, "old minutes")

    inbox = cove(env, "inbox", "--profile", "alice")
    assert inbox.returncode == 0, said(inbox)
    assert "[Forwarded many times]: chain letter" in said(inbox)
    assert "[Forwarded]" not in said(inbox)  # the other messages are originals
    # A group message's id is shown where it arrives: `cove history` shows one-to-one messages only.
    [chairs] = re.findall(r"([0-9a-f]{8}) \[Neighbours\] \S+: bring chairs", said(inbox))
    assert chairs == chairs_id[:8]
    history = cove(env, "history", "--profile", "alice").stdout
    drill, chain, minutes, old = (
        next(line.split()[0] for line in history.splitlines() if line.endswith(text))
        for text in ("fire drill at three", "chain letter", "] the minutes", "old minutes")
    )

    too_many = cove(env, "forward", drill, *(f"+1415555{n:04d}" for n in range(6)), "--profile", "alice")
    assert too_many.returncode == 2 and "at most 5 chat(s) at once, not 6" in said(too_many)
    frequent = cove(env, "forward", chain, carol.core.account_id, dave.core.account_id, "--profile", "alice")
    assert frequent.returncode == 2 and "Forwarded many times can be forwarded to at most 1 chat(s)" in said(frequent)
    unknown = cove(env, "forward", "ffff", dave.core.account_id, "--profile", "alice")
    assert unknown.returncode == 2 and "starts no message" in said(unknown)
    await expire_attachments(relay.database_url, except_id=pointer.id)
    expired = cove(env, "forward", old, dave.core.account_id, "--profile", "alice")
    assert expired.returncode == 2 and "has expired on the relay" in said(expired)

    forwarded = cove(env, "forward", drill, dave.core.account_id, "Neighbours", "--profile", "alice")
    assert forwarded.returncode == 0, said(forwarded)
    assert cove(env, "forward", chain, dave.core.account_id, "--profile", "alice").returncode == 0
    to_both = cove(env, "forward", minutes, dave.core.account_id, "Neighbours", "--profile", "alice")
    assert to_both.returncode == 0, said(to_both)
    # Room made for dave's device and the group's but alice's: bob's and carol's (alice has no other device).
    [blob] = [r for t, r in await server_rows(relay.database_url) if t == "attachments"]
    assert (blob["id"], blob["recipients"]) == (pointer.id, 1 + 3)
    assert cove(env, "forward", chairs, dave.core.account_id, "--profile", "alice").returncode == 0

    events = await dave.inbox()
    received = {e.text: e.client_message_id for e in events if isinstance(e, MessageReceived)}
    assert forwards.count_of(dave.core.store, alice_id, received["fire drill at three"]) == 1
    assert forwards.count_of(dave.core.store, alice_id, received["chain letter"]) == forwarding.FREQUENTLY + 1
    assert forwards.count_of(dave.core.store, alice_id, received["bring chairs"]) == 1
    [file] = [e for e in events if isinstance(e, AttachmentReceived)]
    assert forwards.count_of(dave.core.store, alice_id, file.client_message_id) == 1
    saved = await dave.save_attachment(file, tmp_path / "dave")
    assert saved.read_text() == shared.read_text()  # the same blob, fetched with the key the pointer carries

    carols = await carol.inbox()
    [in_group_file] = [e for e in carols if isinstance(e, AttachmentReceived)]
    assert in_group_file.group == group
    assert (await carol.save_attachment(in_group_file, tmp_path / "carol")).read_text() == shared.read_text()
    in_group = [e for e in carols if isinstance(e, GroupMessageReceived)]
    assert [e.text for e in in_group] == ["bring chairs", "fire drill at three"]
    assert forwards.count_of(carol.core.store, group, in_group[1].client_message_id) == 1
    shown = cove(env, "history", "--profile", "alice")
    assert "[Forwarded]: fire drill at three" in said(shown)
