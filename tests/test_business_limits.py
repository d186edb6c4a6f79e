"""The relay's business limits done exactly: concurrent sends cannot overshoot a tier, a quality pause that ends
is announced, and what the business rules log is kept only as long as stated (cove.business.reach, upkeep)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

from sqlalchemy import func, insert, select

from cove.business import reach, upkeep
from cove.business.quality import Quality
from cove.business.storage import (
    business_accounts,
    business_daily,
    business_events,
    business_feedback,
    business_marketing,
    business_pacing,
    business_reach,
    business_templates,
)
from cove.business.window import DAY_MS, HOUR_MS
from cove.db import create_engine
from test_business_platform import UTILITY, business, http, pair_rows
from test_business_sending import approved_template, ok, refused, send, set_template_status, template_header

NOW = 1_800_000_000_000


def now_ms() -> int:
    return time.time_ns() // 1_000_000


async def fill_reach(relay, business_id: str, users: int) -> None:  # noqa: ANN001
    """``users`` users reached a minute ago, recorded as the send path records them."""
    engine = create_engine(relay.database_url)
    try:
        async with engine.begin() as conn:
            rows = [
                {"business_id": business_id, "user_account_id": f"earlier-{i}", "reached_at_ms": now_ms() - 60_000}
                for i in range(users)
            ]
            await conn.execute(insert(business_reach), rows)
    finally:
        await engine.dispose()


async def test_concurrent_sends_take_the_tiers_last_slot_once(users, relay):
    """249 of an unverified business's 250 users are counted; five templates to five new users decided at once
    each see the last free slot in their snapshot. Exactly one may take it (before, all five passed)."""
    shop = await business(users, relay, "shop", "+14155550181")
    s = shop.core.account_id
    people = [await users.register(f"user{i}", f"+1415555019{i}") for i in range(5)]
    async with http(relay, shop) as owner:
        utility = await approved_template(relay, owner, UTILITY)
        for person in people:
            async with http(relay, person) as user:
                opted = await user.put(f"/v1/business/{s}/opt-in", json={"categories": ["utility"], "source": "web"})
                assert opted.status_code == 200, opted.text
        await fill_reach(relay, s, 249)
        header = template_header(utility)
        answers = await asyncio.gather(*(send(owner, p.core.account_id, header) for p in people))
        passed = [a for a in answers if a.status_code == 200]
        assert len(passed) == 1, [a.text for a in answers]
        for answer in answers:
            if answer.status_code != 200:
                error = refused(answer, 429, 131048)
                assert 0 < error["retry_after"] <= 24 * 3600
        reached = {r["user_account_id"] for r in await pair_rows(relay, business_reach)}
        assert len(reached) == 250
        # The one counted may be written again: a user already counted costs nothing.
        winner = next(p for p in people if p.core.account_id in reached)
        ok(await send(owner, winner.core.account_id, header))
        assert len(await pair_rows(relay, business_reach)) == 250


async def test_two_sends_to_one_new_user_count_one_new_user(users, relay):
    shop = await business(users, relay, "shop", "+14155550183")
    ana = await users.register("ana", "+14155550184")
    s, a = shop.core.account_id, ana.core.account_id
    async with http(relay, shop) as owner, http(relay, ana) as user:
        utility = await approved_template(relay, owner, UTILITY)
        await user.put(f"/v1/business/{s}/opt-in", json={"categories": ["utility"], "source": "web"})
        answers = await asyncio.gather(*(send(owner, a, template_header(utility)) for _ in range(4)))
        assert [r.status_code for r in answers] == [200] * 4, [r.text for r in answers]
    days = await pair_rows(relay, business_daily)
    assert [d["unique_users"] for d in days if d["business_id"] == s] == [1]
    assert [r["user_account_id"] for r in await pair_rows(relay, business_reach)] == [a]


async def _business_row(conn, business_id: str) -> None:  # noqa: ANN001
    await conn.execute(
        insert(business_accounts).values(
            account_id=business_id,
            display_name="Shop",
            websites="[]",
            verification="unverified",
            created_at_ms=NOW,
            updated_at_ms=NOW,
        )
    )


async def test_claims_at_once_never_exceed_the_limit_and_a_user_counts_once(database_url):
    """The claim itself, on each database: 20 claims at once for 10 users (each twice) against a limit of 5."""
    engine = create_engine(database_url)
    try:
        async with engine.begin() as conn:
            await _business_row(conn, "b")
        users = [f"u{i % 10}" for i in range(20)]
        waits = await asyncio.gather(*(reach.claim(engine, "b", u, 5, None, Quality.GREEN, NOW) for u in users))
        admitted = {u for u, w in zip(users, waits, strict=True) if w is None}
        assert len(admitted) == 5
        assert all(w == DAY_MS for w in waits if w is not None)  # the oldest counted was reached just now
        async with engine.connect() as conn:
            counted = (await conn.execute(select(func.count()).select_from(business_reach))).scalar_one()
            daily = (await conn.execute(select(business_daily.c.unique_users))).scalars().all()
        assert counted == 5 and daily == [5]
        # A day later the slots are free again; one counted yesterday is new today (and counts once).
        later = NOW + DAY_MS + 1
        assert await reach.claim(engine, "b", sorted(admitted)[0], 5, None, Quality.GREEN, later) is None
        assert await reach.claim(engine, "b", sorted(admitted)[0], 5, None, Quality.GREEN, later) is None
        async with engine.connect() as conn:
            daily = (await conn.execute(select(business_daily.c.unique_users).order_by(business_daily.c.day))).all()
        assert [d.unique_users for d in daily] == [5, 1]
    finally:
        await engine.dispose()


async def test_a_pause_that_ended_is_announced_once_as_approved(users, relay):
    shop = await business(users, relay, "shop", "+14155550185")
    async with http(relay, shop) as owner:
        utility = await approved_template(relay, owner, UTILITY)
        ended_at = now_ms() - 1
        await set_template_status(relay, utility["template_id"], "PAUSED", ended_at)
        before = max(e["seq"] for e in (await owner.get("/v1/business/events")).json())  # its approval
        engine = create_engine(relay.database_url)
        try:
            first = await upkeep.sweep(engine, now_ms())
            again = await upkeep.sweep(engine, now_ms())
        finally:
            await engine.dispose()
        assert (first.pauses_ended, again.pauses_ended) == (1, 0)
        unpaused = (await owner.get("/v1/business/events", params={"after": before})).json()
        assert [(e["kind"], e["body"]["event"]) for e in unpaused] == [("template_status", "APPROVED")]
        assert unpaused[0]["body"]["template_id"] == utility["template_id"]
        assert unpaused[0]["body"]["name"] == UTILITY["name"]
        [row] = [r for r in await pair_rows(relay, business_templates) if r["template_id"] == utility["template_id"]]
        # Stored as approved; when it was last unpaused stays, which is what pacing reads.
        assert row["status"] == "APPROVED" and row["paused_until_ms"] == ended_at
        listed = (await owner.get("/v1/business/templates")).json()
        assert [t["status"] for t in listed if t["template_id"] == utility["template_id"]] == ["APPROVED"]


async def test_a_pause_still_running_is_left_alone(database_url):
    engine = create_engine(database_url)
    try:
        async with engine.begin() as conn:
            for template_id, until in (("running", NOW + HOUR_MS), ("over", NOW - 1)):
                await conn.execute(
                    insert(business_templates).values(
                        template_id=template_id,
                        business_id="b",
                        name=template_id,
                        language="en",
                        category="UTILITY",
                        body="{}",
                        parameter_format="positional",
                        status="PAUSED",
                        findings="[]",
                        version=1,
                        pauses=1,
                        paused_until_ms=until,
                        created_at_ms=NOW,
                        updated_at_ms=NOW,
                    )
                )
        assert (await upkeep.sweep(engine, NOW)).pauses_ended == 1
        async with engine.connect() as conn:
            t = business_templates
            statuses = dict((await conn.execute(select(t.c.template_id, t.c.status))).all())
            events = (await conn.execute(select(business_events.c.body))).scalars().all()
        assert statuses == {"running": "PAUSED", "over": "APPROVED"}
        assert [json.loads(e)["template_id"] for e in events] == ["over"]
    finally:
        await engine.dispose()


async def test_rows_past_their_retention_are_deleted_and_the_rest_kept(database_url):
    engine = create_engine(database_url)
    old, fresh = uuid.uuid4().hex, uuid.uuid4().hex
    ages = {
        business_events: upkeep.EVENTS_KEPT_MS,
        business_marketing: upkeep.MARKETING_KEPT_MS,
        business_feedback: upkeep.FEEDBACK_KEPT_MS,
        business_reach: upkeep.REACH_KEPT_MS,
    }
    try:
        async with engine.begin() as conn:
            for business_id, age in ((old, 1), (fresh, -1)):
                for table, kept in ages.items():
                    at = NOW - kept - age
                    values = {
                        business_events: {"kind": "quality", "body": "{}", "at_ms": at},
                        business_marketing: {"user_account_id": "u", "at_ms": at},
                        business_feedback: {"user_account_id": "u", "kind": "block", "reason": "spam", "at_ms": at},
                        business_reach: {"user_account_id": "u", "reached_at_ms": at},
                    }[table]
                    await conn.execute(insert(table).values(business_id=business_id, **values))
                started = NOW - upkeep.PACING_KEPT_MS - age
                await conn.execute(
                    insert(business_pacing).values(
                        template_id=business_id, business_id=business_id, started_at_ms=started, sent=1
                    )
                )
                day = NOW // DAY_MS - upkeep.DAILY_KEPT_DAYS - age
                await conn.execute(
                    insert(business_daily).values(business_id=business_id, day=day, unique_users=1, quality="green")
                )
        swept = await upkeep.sweep(engine, NOW)
        assert swept.pruned == 6
        async with engine.connect() as conn:
            for table in (*ages, business_daily, business_pacing):
                left = (await conn.execute(select(table.c.business_id))).scalars().all()
                assert left == [fresh], table.name
        assert (await upkeep.sweep(engine, NOW)).pruned == 0
    finally:
        await engine.dispose()
