"""Groups on a real relay over HTTP and WebSocket, on SQLite and PostgreSQL: membership and rights, invites,
GROUP_CHANGE envelopes, and group messages stored once, fanned out, counted down by acks and receipted."""

from __future__ import annotations

import base64

from groups_world import api, changes, ciphertext, frames, wait_for
from helpers import server_rows
from test_business_platform import business


async def _rows(relay, table: str) -> list[dict]:  # noqa: ANN001
    return [r for t, r in await server_rows(relay.database_url) if t == table]


async def test_admins_add_remove_promote_and_demote_and_every_change_reaches_members_before_and_after(users, relay):
    alice, bob, carol, dave = [await users.register(n) for n in ("alice", "bob", "carol", "dave")]
    a, b, c, d = (u.core.account_id for u in (alice, bob, carol, dave))
    async with api(relay, alice) as as_alice, api(relay, bob) as as_bob, api(relay, carol) as as_carol:
        made = await as_alice.post("/v1/groups", json={"members": [b, c]})
        assert made.status_code == 201, made.text
        group = made.json()
        gid = group["group_id"]
        assert group["revision"] == 1
        assert {m["account_id"]: m["role"] for m in group["members"]} == {a: "admin", b: "member", c: "member"}
        assert all(m["devices"] == [1] for m in group["members"])
        assert (await as_bob.get(f"/v1/groups/{gid}")).json() == group
        listed = (await as_bob.get("/v1/groups")).json()["groups"]
        assert listed == [{"group_id": gid, "revision": 1, "role": "member", "size": 3}]

        # A member who is not an admin may not add, remove, promote or invite.
        for refused in (
            await as_bob.post(f"/v1/groups/{gid}/members", json={"accounts": [d]}),
            await as_bob.delete(f"/v1/groups/{gid}/members/{c}"),
            await as_bob.put(f"/v1/groups/{gid}/members/{b}/role", json={"role": "admin"}),
            await as_bob.post(f"/v1/groups/{gid}/invites"),
        ):
            assert refused.status_code == 403 and refused.json()["error"]["code"] == "not_admin", refused.text
        # A stranger learns nothing, not even that the group exists.
        async with api(relay, dave) as as_dave:
            for hidden in (
                await as_dave.get(f"/v1/groups/{gid}"),
                await as_dave.post(f"/v1/groups/{gid}/members", json={"accounts": [d]}),
                await as_dave.put(f"/v1/groups/{gid}/messages", json={"client_message_id": "x", "body": ciphertext()}),
            ):
                assert hidden.status_code == 404 and hidden.json()["error"]["code"] == "unknown_group", hidden.text

        added = await as_alice.post(f"/v1/groups/{gid}/members", json={"accounts": [d]})
        assert added.status_code == 200 and added.json()["revision"] == 2
        again = await as_alice.post(f"/v1/groups/{gid}/members", json={"accounts": [d]})
        assert again.status_code == 409 and again.json()["error"]["code"] == "already_member"
        unknown = await as_alice.post(f"/v1/groups/{gid}/members", json={"accounts": ["no-such-account"]})
        assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "unknown_account"
        twice = await as_alice.post(f"/v1/groups/{gid}/members", json={"accounts": ["x", "x"]})
        assert twice.status_code == 400 and twice.json()["error"]["code"] == "duplicate_account"

        promoted = await as_alice.put(f"/v1/groups/{gid}/members/{b}/role", json={"role": "admin"})
        assert promoted.status_code == 200 and promoted.json()["revision"] == 3
        removed = await as_bob.delete(f"/v1/groups/{gid}/members/{c}")
        assert removed.json() == {"group_id": gid, "revision": 4}
        demoted = await as_bob.put(f"/v1/groups/{gid}/members/{a}/role", json={"role": "member"})
        assert demoted.status_code == 200 and demoted.json()["revision"] == 5
        last = await as_bob.put(f"/v1/groups/{gid}/members/{b}/role", json={"role": "member"})
        assert last.status_code == 409 and last.json()["error"]["code"] == "last_admin"
        assert (await as_carol.get(f"/v1/groups/{gid}")).status_code == 404
        assert (await as_carol.get("/v1/groups")).json() == {"groups": []}
        bad_id = await as_alice.get("/v1/groups/NOT-A-GROUP")
        assert bad_id.status_code == 404

    # Carol heard every change up to her own removal, and nothing after it; Dave everything since he was added.
    assert changes(await frames(relay, carol)) == [
        ("create", [a, b, c]),
        ("add", [d]),
        ("promote", [b]),
        ("remove", [c]),
    ]
    received = await frames(relay, dave)
    assert changes(received) == [("add", [d]), ("promote", [b]), ("remove", [c]), ("demote", [a])]
    first = received[0]
    assert first["group"] == gid and first["sender"] == a and first["sender_device"] == 1
    assert first["change"]["revision"] == 2 and "body" not in first


async def test_when_the_last_admin_leaves_the_longest_standing_member_becomes_admin(users, relay):
    alice, bob, carol = [await users.register(n) for n in ("alice", "bob", "carol")]
    a, b, c = (u.core.account_id for u in (alice, bob, carol))
    async with api(relay, alice) as as_alice, api(relay, carol) as as_carol:
        gid = (await as_alice.post("/v1/groups", json={"members": [b]})).json()["group_id"]
        await as_alice.post(f"/v1/groups/{gid}/members", json={"accounts": [c]})
        left = await as_alice.delete(f"/v1/groups/{gid}/members/{a}")
        assert left.json()["revision"] == 4  # 3: Alice left, 4: Bob, a member since revision 1, promoted
        view = (await as_carol.get(f"/v1/groups/{gid}")).json()
        assert {m["account_id"]: m["role"] for m in view["members"]} == {b: "admin", c: "member"}
        assert (await as_carol.delete(f"/v1/groups/{gid}/members/{b}")).status_code == 403  # not an admin
    assert changes(await frames(relay, alice))[-1] == ("leave", [a])
    assert changes(await frames(relay, carol))[-2:] == [("leave", [a]), ("promote", [b])]


async def test_an_invite_lets_anyone_join_until_an_admin_revokes_it(users, relay):
    alice, bob, carol, dave = [await users.register(n) for n in ("alice", "bob", "carol", "dave")]
    async with api(relay, alice) as as_alice, api(relay, bob) as as_bob:
        gid = (await as_alice.post("/v1/groups", json={"members": []})).json()["group_id"]
        made = await as_alice.post(f"/v1/groups/{gid}/invites")
        assert made.status_code == 201
        code = made.json()["code"]
        joined = await as_bob.post("/v1/groups/join", json={"code": code})
        assert joined.status_code == 200 and joined.json()["revision"] == 2
        assert (await as_bob.post("/v1/groups/join", json={"code": code})).json()["revision"] == 2  # no change
        # The relay keeps the code's hash only.
        assert code not in str(await server_rows(relay.database_url))
        revoked = await as_alice.delete(f"/v1/groups/{gid}/invites/{code}")
        assert revoked.status_code == 204
        assert (await as_alice.delete(f"/v1/groups/{gid}/invites/{code}")).json()["error"]["code"] == "unknown_invite"
        async with api(relay, carol) as as_carol:
            late = await as_carol.post("/v1/groups/join", json={"code": code})
            assert late.status_code == 404 and late.json()["error"]["code"] == "unknown_invite"
            wrong = await as_carol.post("/v1/groups/join", json={"code": "0" * 32})
            assert wrong.status_code == 404 and wrong.json()["error"]["code"] == "unknown_invite"
            malformed = await as_carol.post("/v1/groups/join", json={"code": "../../etc"})
            assert malformed.status_code == 400
    assert changes(await frames(relay, alice)) == [
        ("create", [alice.core.account_id]),
        ("join", [bob.core.account_id]),
    ]
    assert dave.core.account_id not in str(await _rows(relay, "group_members"))


async def test_a_group_message_is_stored_once_fanned_out_counted_down_by_acks_and_receipted(users, relay):
    alice, bob, carol = [await users.register(n) for n in ("alice", "bob", "carol")]
    a, b, c = (u.core.account_id for u in (alice, bob, carol))
    async with api(relay, alice) as as_alice:
        gid = (await as_alice.post("/v1/groups", json={"members": [b, c]})).json()["group_id"]
        await frames(relay, alice)  # the GROUP_CHANGE of the creation
        body = ciphertext(3000)
        sent = await as_alice.put(f"/v1/groups/{gid}/messages", json={"client_message_id": "m1", "body": body})
        assert sent.status_code == 200 and sent.json()["queued"] == 2 and not sent.json()["duplicate"]
        repeat = await as_alice.put(f"/v1/groups/{gid}/messages", json={"client_message_id": "m1", "body": body})
        assert repeat.json()["duplicate"] and repeat.json()["queued"] == 0

    [stored] = await _rows(relay, "group_messages")
    assert stored["body"] == base64.b64decode(body) and stored["remaining"] == 2 and stored["group_id"] == gid
    rows = [r for r in await _rows(relay, "envelopes") if r["kind"] == 2]
    assert sorted(r["account_id"] for r in rows) == sorted([b, c])
    # Body, sender and client message id are the stored message's: the queue rows repeat none of them.
    assert all(r["group_message_id"] == stored["id"] for r in rows)
    assert {(r["body"], r["sender_account_id"], r["client_message_id"]) for r in rows} == {(b"", "", "")}

    [to_bob] = [f for f in await frames(relay, bob) if f["kind"] == 2]
    assert to_bob["group"] == gid and to_bob["body"] == body and to_bob["sender"] == a
    assert to_bob["client_message_id"] == "m1"
    await wait_for(lambda: _remaining(relay, 1), "Bob's ack counted")

    [to_carol] = [f for f in await frames(relay, carol, ack=False) if f["kind"] == 2]
    assert to_carol["body"] == body  # read from the stored message, not from the queue row
    await frames(relay, carol)
    await wait_for(lambda: _remaining(relay, None), "the message deleted once every device acked")
    assert [r for r in await _rows(relay, "envelopes") if r["kind"] == 2] == []

    receipts = [f for f in await frames(relay, alice) if f["kind"] == 6]
    assert all(f["group"] == gid and f["sender"] == gid for f in receipts)
    reached = sorted((r["account"], r["device"], r["client_message_id"]) for f in receipts for r in f["receipts"])
    assert reached == sorted([(b, 1, "m1"), (c, 1, "m1")])


async def _remaining(relay, expected: int | None) -> bool:  # noqa: ANN001
    stored = await _rows(relay, "group_messages")
    return stored == [] if expected is None else [r["remaining"] for r in stored] == [expected]


async def test_a_removed_member_gets_no_later_message_and_a_repeat_queues_nothing(users, relay):
    alice, bob, carol = [await users.register(n) for n in ("alice", "bob", "carol")]
    b, c = bob.core.account_id, carol.core.account_id
    async with api(relay, alice) as as_alice:
        gid = (await as_alice.post("/v1/groups", json={"members": [b, c]})).json()["group_id"]
        await as_alice.put(f"/v1/groups/{gid}/messages", json={"client_message_id": "before", "body": ciphertext()})
        await as_alice.delete(f"/v1/groups/{gid}/members/{c}")
        after = await as_alice.put(
            f"/v1/groups/{gid}/messages", json={"client_message_id": "after", "body": ciphertext()}
        )
        assert after.json()["queued"] == 1
    assert [f["client_message_id"] for f in await frames(relay, carol) if f["kind"] == 2] == ["before"]
    assert [f["client_message_id"] for f in await frames(relay, bob) if f["kind"] == 2] == ["before", "after"]


async def test_businesses_cannot_create_join_be_added_to_or_message_a_group(users, relay):
    shop = await business(users, relay, "shop", "+14155550199")
    alice = await users.register("alice")
    async with api(relay, alice) as as_alice, api(relay, shop) as as_shop:
        listed = await as_alice.post("/v1/groups", json={"members": [shop.core.account_id]})
        assert listed.status_code == 403 and listed.json()["error"]["code"] == "business_not_allowed"
        gid = (await as_alice.post("/v1/groups", json={"members": []})).json()["group_id"]
        added = await as_alice.post(f"/v1/groups/{gid}/members", json={"accounts": [shop.core.account_id]})
        assert added.status_code == 403 and added.json()["error"]["code"] == "business_not_allowed"
        code = (await as_alice.post(f"/v1/groups/{gid}/invites")).json()["code"]
        for refused in (
            await as_shop.post("/v1/groups", json={"members": [alice.core.account_id]}),
            await as_shop.post("/v1/groups/join", json={"code": code}),
            await as_shop.put(f"/v1/groups/{gid}/messages", json={"client_message_id": "x", "body": ciphertext()}),
        ):
            assert refused.status_code == 403 and refused.json()["error"]["code"] == "business_not_allowed"
    assert await _rows(relay, "group_messages") == []


async def test_a_deleted_account_leaves_its_groups_and_its_admin_role_passes_on(users, relay):
    alice, bob, carol = [await users.register(n) for n in ("alice", "bob", "carol")]
    alice_id, b, c = alice.core.account_id, bob.core.account_id, carol.core.account_id
    async with api(relay, alice) as as_alice, api(relay, bob) as as_bob:
        gid = (await as_alice.post("/v1/groups", json={"members": [b, c]})).json()["group_id"]
        sent = await as_bob.put(f"/v1/groups/{gid}/messages", json={"client_message_id": "m", "body": ciphertext()})
        assert sent.json()["queued"] == 2
        await alice.delete_account()
        view = (await as_bob.get(f"/v1/groups/{gid}")).json()
    # Both joined at the creation: the tie goes to the lower account id.
    heir, other = sorted([b, c])
    assert {m["account_id"]: m["role"] for m in view["members"]} == {heir: "admin", other: "member"}
    assert view["revision"] == 3
    rows = await server_rows(relay.database_url)
    assert alice_id not in str([r for t, r in rows if t == "group_members"])
    assert [r for t, r in rows if t == "envelopes" and r["account_id"] == alice_id] == []
    # Bob's message no longer waits for her device: Carol's ack is the last it needs.
    assert [r["remaining"] for t, r in rows if t == "group_messages"] == [1]
    received = await frames(relay, carol)
    assert changes(received)[-2:] == [("leave", [alice_id]), ("promote", [heir])]
    assert [f["client_message_id"] for f in received if f["kind"] == 2] == ["m"]
    await wait_for(lambda: _remaining(relay, None), "the message deleted once Carol acked")
