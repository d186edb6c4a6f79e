"""A business's blocklist (Meta's Block Users API, on the relay): who may be blocked, and that a block holds both
ways; and that a user's block of a business, from its preferences or the safety block, fails the business's
sends with the same 131026."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select

from cove.business import blocks
from cove.business.blocks import Candidate, plan
from cove.db import create_engine
from cove.messaging.storage import envelopes
from test_business_platform import business, http
from test_business_sending import DAY_AND_AN_HOUR_MS, TEXT, ok, refused, send

NOW = 1_800_000_000_000
HOUR_MS = 3_600_000


# the rule ----------------------------------------------------------------------------------------------------
def test_only_users_who_wrote_in_the_last_24_hours_can_be_blocked() -> None:
    candidates = [
        Candidate("id-A", "a", NOW - 23 * HOUR_MS, False),
        Candidate("id-B", "b", NOW - 24 * HOUR_MS, False),  # exactly 24 h ago: too late
        Candidate("id-C", "c", None, False),  # never wrote (opted in elsewhere, say)
        Candidate("id-D", None, None, False),  # not one of the business's users
        Candidate("id-E", "e", NOW - 30 * 24 * HOUR_MS, True),  # blocked before: blocked again, however long ago
        Candidate("id-A", "a", NOW - 23 * HOUR_MS, False),  # asked twice: answered once
    ]
    outcomes = plan(candidates, blocklist_size=0, now_ms=NOW)
    assert [(o.user_id, o.added, o.new) for o in outcomes] == [
        ("id-A", True, True),
        ("id-B", False, False),
        ("id-C", False, False),
        ("id-D", False, False),
        ("id-E", True, False),
    ]
    assert {o.error.code for o in outcomes if o.error is not None} == {131047}
    # An unknown id is answered exactly as a user who did not write lately: the answer confirms nothing.
    assert outcomes[1].error.details == outcomes[3].error.details == blocks.NOT_RECENT


def test_a_full_blocklist_fails_new_users_and_still_answers_blocked_ones() -> None:
    candidates = [Candidate(f"id-{i}", str(i), NOW - 1, False) for i in range(3)]
    candidates.append(Candidate("id-old", "old", NOW - 1, True))
    outcomes = plan(candidates, blocklist_size=blocks.MAX_BLOCKLIST - 2, now_ms=NOW)
    assert [(o.new, o.error.code if o.error else None) for o in outcomes] == [
        (True, None),
        (True, None),
        (False, 139101),
        (False, None),
    ]
    with pytest.raises(ValueError, match="1000"):
        plan(candidates * 251, 0, NOW)


candidate = st.builds(
    Candidate,
    st.sampled_from([f"id-{i}" for i in range(12)]),
    st.one_of(st.none(), st.sampled_from(["a", "b", "c"])),
    st.one_of(st.none(), st.integers(NOW - 3 * 24 * HOUR_MS, NOW)),
    st.booleans(),
)


@given(st.lists(candidate, max_size=40), st.integers(0, blocks.MAX_BLOCKLIST))
def test_what_is_added_is_recent_known_and_fits(candidates: list[Candidate], size: int) -> None:
    outcomes = plan(candidates, size, NOW)
    assert [o.user_id for o in outcomes] == list(dict.fromkeys(c.user_id for c in candidates))
    first = {c.user_id: c for c in reversed(candidates)}
    new = [o for o in outcomes if o.new]
    assert size + len(new) <= blocks.MAX_BLOCKLIST  # never past 64,000
    for o in outcomes:
        c = first[o.user_id]
        if o.new:  # a new row: a user of the business who wrote within 24 h, not blocked yet
            assert c.account_id is not None and not c.blocked and blocks.recent(c.last_user_message_ms, NOW)
        if o.added:
            assert c.account_id is not None and (c.blocked or o.new)


# on the relay ------------------------------------------------------------------------------------------------
async def user_id(owner: httpx.AsyncClient, account_id: str) -> str:
    pairs = (await owner.post("/v1/business/users/resolve", json={"account_ids": [account_id]})).json()
    assert len(pairs) == 1, pairs
    return pairs[0]["user_id"]


async def queued_for(relay, recipient: str, sender: str) -> int:  # noqa: ANN001
    engine = create_engine(relay.database_url)
    try:
        async with engine.connect() as conn:
            e = envelopes
            where = (e.c.account_id == recipient, e.c.sender_account_id == sender)
            return (await conn.execute(select(func.count()).select_from(e).where(*where))).scalar_one()
    finally:
        await engine.dispose()


async def block(owner: httpx.AsyncClient, *ids: str) -> dict[str, Any]:
    answered = await owner.post("/v1/business/blocks", json={"user_ids": list(ids)})
    assert answered.status_code == 200, answered.text
    return answered.json()


async def test_a_business_blocks_a_user_who_wrote_and_the_block_holds_both_ways(users, relay):
    shop = await business(users, relay, "shop", "+14155550181")
    bank = await business(users, relay, "bank", "+14155550184", {"display_name": "Savings Bank"})
    ana = await users.register("ana", "+14155550182")
    bob = await users.register("bob", "+14155550183")
    s, a = shop.core.account_id, ana.core.account_id
    async with http(relay, shop) as owner, http(relay, ana) as user, http(relay, bob) as other:
        ok(await send(user, s, header=None))  # Ana writes to the shop
        ok(await send(user, bank.core.account_id, header=None))  # and to the bank
        ok(await send(other, s, header=None))
        ana_id, bob_id = await user_id(owner, a), await user_id(owner, bob.core.account_id)
        assert await queued_for(relay, s, a) == 1
        async with http(relay, bank) as banker:
            unknown = await user_id(banker, a)  # a real user id, but the bank's: no user of the shop has it
        answered = await block(owner, ana_id, unknown, ana_id)
        assert answered["added"] == [ana_id]
        assert [(f["user_id"], f["cloud_api"]["code"]) for f in answered["failed"]] == [(unknown, 131047)]

        # The shop cannot message Ana, however it tries; Bob still gets its messages.
        for header in (TEXT, None):
            error = refused(await send(owner, a, header), 400, 131026)
            assert "unblock" in error["cloud_api"]["error_data"]["details"]
        ok(await send(owner, bob.core.account_id))
        # Ana's messages to the shop are answered as queued and never reach it; she is not told.
        ok(await send(user, s, header=None))
        assert await queued_for(relay, s, a) == 1
        preferences = (await user.get(f"/v1/business/{s}/preferences")).json()
        assert preferences["blocked"] is False  # her own switch, untouched by the business's block

        listed = (await owner.get("/v1/business/blocks")).json()
        assert listed == {"user_ids": [ana_id], "before": None, "after": None}
        assert (await block(owner, ana_id))["added"] == [ana_id]  # blocking again succeeds again

        # Unblocked, both directions work again; unblocking twice is no error, an unknown id is not removed.
        removed = await owner.request("DELETE", "/v1/business/blocks", json={"user_ids": [ana_id, bob_id, unknown]})
        assert removed.status_code == 200, removed.text
        assert removed.json() == {"removed": [ana_id, bob_id]}
        ok(await send(owner, a))
        ok(await send(user, s, header=None))
        assert await queued_for(relay, s, a) == 2

    # A day later Ana has not written again: she can no longer be blocked.
    relay.env["COVE_CLOCK_OFFSET_MS"] = str(DAY_AND_AN_HOUR_MS)
    relay.restart()
    async with http(relay, shop) as owner:
        assert [f["cloud_api"]["code"] for f in (await block(owner, ana_id))["failed"]] == [131047]


async def test_only_a_business_keeps_a_blocklist_and_each_request_is_checked(users, relay):
    shop = await business(users, relay, "shop", "+14155550185")
    ana = await users.register("ana", "+14155550186")
    async with http(relay, shop) as owner, http(relay, ana) as user:
        ok(await send(user, shop.core.account_id, header=None))
        some_id = await user_id(owner, ana.core.account_id)
        answered = await user.post("/v1/business/blocks", json={"user_ids": [some_id]})
        assert answered.status_code == 403 and answered.json()["error"]["code"] == "not_a_business"
        assert (await user.get("/v1/business/blocks")).status_code == 403
        for bad in ([], ["../../v1/devices/current"], ["CC.short"], [some_id] * 1001):
            answered = await owner.post("/v1/business/blocks", json={"user_ids": bad})
            assert answered.status_code == 400, bad
        for params in ({"after": "x' OR 1=1"}, {"before": "../x"}, {"limit": 0}, {"limit": 1001}):
            assert (await owner.get("/v1/business/blocks", params=params)).status_code == 400, params
        assert (await httpx.AsyncClient(base_url=relay.url).get("/v1/business/blocks")).status_code == 401


async def test_the_blocklist_is_listed_a_page_at_a_time(users, relay):
    shop = await business(users, relay, "shop", "+14155550170")
    s = shop.core.account_id
    ids = []
    async with http(relay, shop) as owner:
        for n in range(5):
            person = await users.register(f"user{n}", f"+1415555019{n}")
            async with http(relay, person) as api:
                ok(await send(api, s, header=None))
            ids.append(await user_id(owner, person.core.account_id))
        assert sorted((await block(owner, *ids))["added"]) == sorted(ids)
        ids.sort()
        first = (await owner.get("/v1/business/blocks", params={"limit": 2})).json()
        assert first == {"user_ids": ids[:2], "before": None, "after": ids[1]}
        second = (await owner.get("/v1/business/blocks", params={"limit": 2, "after": first["after"]})).json()
        assert second == {"user_ids": ids[2:4], "before": ids[2], "after": ids[3]}
        last = (await owner.get("/v1/business/blocks", params={"limit": 2, "after": second["after"]})).json()
        assert last == {"user_ids": ids[4:], "before": ids[4], "after": None}
        back = (await owner.get("/v1/business/blocks", params={"limit": 2, "before": last["before"]})).json()
        assert back == second
        between = {"limit": 5, "after": ids[0], "before": ids[3]}
        assert (await owner.get("/v1/business/blocks", params=between)).json() == {
            "user_ids": ids[1:3],
            "before": ids[1],
            "after": ids[2],
        }


async def test_a_users_block_of_a_business_fails_its_sends_the_same_way_whichever_block(users, relay):
    """A user blocks a business from its preferences (with a reason) or with the safety block (`cove block`):
    the business's sends fail with 131026 either way, the same words for both, and work again once unblocked."""
    shop = await business(users, relay, "shop", "+14155550187")
    ana = await users.register("ana", "+14155550188")
    s, a = shop.core.account_id, ana.core.account_id
    async with http(relay, shop) as owner, http(relay, ana) as user:
        ok(await send(user, s, header=None))
        ok(await send(owner, a))

        await user.post(f"/v1/business/{s}/block", json={"reason": "spam"})
        by_preferences = refused(await send(owner, a), 400, 131026)["cloud_api"]
        await user.delete(f"/v1/business/{s}/block")
        ok(await send(owner, a))

        assert (await user.put(f"/v1/safety/blocks/{s}")).status_code == 204
        by_safety = refused(await send(owner, a), 400, 131026)["cloud_api"]
        assert (by_safety["message"], by_safety["error_data"]) == (
            by_preferences["message"],
            by_preferences["error_data"],
        )
        assert await queued_for(relay, a, s) == 2  # nothing of the refused sends was queued
        assert (await user.delete(f"/v1/safety/blocks/{s}")).status_code == 204
        ok(await send(owner, a))


async def test_a_blocked_users_deletion_leaves_the_blocklist(users, relay):
    shop = await business(users, relay, "shop", "+14155550189")
    ana = await users.register("ana", "+14155550180")
    async with http(relay, shop) as owner, http(relay, ana) as user:
        ok(await send(user, shop.core.account_id, header=None))
        ana_id = await user_id(owner, ana.core.account_id)
        assert (await block(owner, ana_id))["added"] == [ana_id]
        await ana.delete_account()
        assert (await owner.get("/v1/business/blocks")).json()["user_ids"] == []
