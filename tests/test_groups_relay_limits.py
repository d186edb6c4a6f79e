"""A relay configured small: a group's size limit, the message size limit on group sends, and the retention of
group messages nobody collects."""

from __future__ import annotations

import pytest

from groups_world import api, ciphertext, frames, wait_for
from helpers import server_rows

RETENTION_SECONDS = 1.5


@pytest.fixture
def relay_env() -> dict[str, str]:
    return {
        "COVE_GROUP_MAX_MEMBERS": "3",
        "COVE_MAX_MESSAGE_BYTES": "1000",
        "COVE_MESSAGE_RETENTION_DAYS": str(RETENTION_SECONDS / 86_400),
        "COVE_PURGE_INTERVAL_SECONDS": "0.2",
    }


async def test_a_group_stays_within_its_size_limit_and_a_message_within_the_message_limit(users, relay):
    alice, bob, carol, dave = [await users.register(n) for n in ("alice", "bob", "carol", "dave")]
    b, c, d = (u.core.account_id for u in (bob, carol, dave))
    async with api(relay, alice) as as_alice, api(relay, dave) as as_dave:
        too_many = await as_alice.post("/v1/groups", json={"members": [b, c, d]})
        assert too_many.status_code == 409 and too_many.json()["error"]["code"] == "group_full"
        gid = (await as_alice.post("/v1/groups", json={"members": [b, c]})).json()["group_id"]
        full = await as_alice.post(f"/v1/groups/{gid}/members", json={"accounts": [d]})
        assert full.status_code == 409 and full.json()["error"]["code"] == "group_full"
        code = (await as_alice.post(f"/v1/groups/{gid}/invites")).json()["code"]
        assert (await as_dave.post("/v1/groups/join", json={"code": code})).json()["error"]["code"] == "group_full"
        large = await as_alice.put(
            f"/v1/groups/{gid}/messages", json={"client_message_id": "x", "body": ciphertext(1001)}
        )
        assert large.status_code == 413
        bad = await as_alice.put(f"/v1/groups/{gid}/messages", json={"client_message_id": "y", "body": "!!!!"})
        assert bad.status_code == 400
    assert [t for t, _ in await server_rows(relay.database_url) if t == "group_messages"] == []


async def test_a_group_message_nobody_collects_is_deleted_at_the_retention(users, relay):
    alice, bob = await users.register("alice"), await users.register("bob")
    async with api(relay, alice) as as_alice:
        gid = (await as_alice.post("/v1/groups", json={"members": [bob.core.account_id]})).json()["group_id"]
        sent = await as_alice.put(f"/v1/groups/{gid}/messages", json={"client_message_id": "m", "body": ciphertext()})
        assert sent.json()["queued"] == 1

    async def stored() -> list[str]:
        return [t for t, _ in await server_rows(relay.database_url) if t == "group_messages"]

    assert await stored() == ["group_messages"]

    async def purged() -> bool:
        rows = await server_rows(relay.database_url)
        return not [r for t, r in rows if t == "group_messages" or (t == "envelopes" and r["kind"] == 2)]

    await wait_for(purged, "the group message and its queue rows purged at the retention")
    assert [f for f in await frames(relay, bob) if f["kind"] == 2] == []
