"""A group's size limit and the message size limit on group sends, with a relay configured small."""

from __future__ import annotations

import pytest

from groups_world import api, ciphertext
from helpers import server_rows


@pytest.fixture
def relay_env() -> dict[str, str]:
    return {"COVE_GROUP_MAX_MEMBERS": "3", "COVE_MAX_MESSAGE_BYTES": "1000"}


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
