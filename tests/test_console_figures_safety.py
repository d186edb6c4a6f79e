"""The console's safety section on SQLite and PostgreSQL: the queue and the actions per day from what the
actions service wrote, and reviews and appeals decided through the page as `cove safety review|appeal` decide."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from console_sections_world import chart_figures, take
from console_world import signed_in
from cove.clock import now_ms
from cove.console.figures.safety import safety_figures
from cove.console.figures.timeline import DAY_MS, days_ending
from cove.db import create_engine
from cove.safety import actions_storage as storage
from cove.safety import storage as bans
from cove.safety.ladder import Review, Source, Step
from cove.safety.verdicts import ReasonCode
from helpers import insert_account

PHONES = {"alice": "+14155550181", "bob": "+14155550182", "carol": "+14155550183", "dave": "+14155550184"}


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    made = create_engine(database_url)
    for name, phone in PHONES.items():
        await insert_account(made, name, phone)
    yield made
    await made.dispose()


async def test_the_queue_and_actions_per_day_by_step_and_reason(engine: AsyncEngine) -> None:
    restricted = await take(engine, "alice", Step.RESTRICT, ReasonCode.UNSOLICITED_FAN_OUT)
    banned = await take(engine, "bob", Step.BAN, ReasonCode.SPAM, Source.RULE)
    await take(engine, "carol", Step.THROTTLE, ReasonCode.BURST_FROM_NEW_ACCOUNT, Source.RULE)
    await take(engine, "dave", Step.RESTRICT, ReasonCode.SPAM, Source.OPERATOR)  # a person's own: no review
    async with engine.begin() as conn:
        filed = await storage.file_appeal(conn, "bob", PHONES["bob"], "I sell bread, not spam", now_ms())
    assert filed is not None

    now = now_ms()
    figures = await safety_figures(engine, now)
    today = now // DAY_MS
    assert [(a.id, a.account_id, a.step) for a in figures.reviews] == [
        (restricted, "alice", Step.RESTRICT),
        (banned, "bob", Step.BAN),
    ]
    assert figures.reviews_waiting == 2
    assert [(p.id, p.account_id, p.message) for p in figures.appeals] == [(filed.id, "bob", "I sell bread, not spam")]
    assert figures.per_step == {"throttle": {today: 1}, "challenge": {}, "restrict": {today: 2}, "ban": {today: 1}}
    assert figures.per_reason == {
        "burst_from_new_account": {today: 1},
        "spam": {today: 2},
        "unsolicited_fan_out": {today: 1},
    }
    assert figures.stats.review_overturn_rate is None


async def test_reviews_and_appeals_decided_through_the_page(
    engine: AsyncEngine, database_url: str, tmp_path: Path
) -> None:
    restricted = await take(engine, "alice", Step.RESTRICT, ReasonCode.UNSOLICITED_FAN_OUT)
    confirmed = await take(engine, "dave", Step.RESTRICT, ReasonCode.FORWARD_FLOOD)
    await take(engine, "bob", Step.BAN, ReasonCode.SPAM, Source.RULE)
    async with engine.begin() as conn:
        filed = await storage.file_appeal(conn, "bob", PHONES["bob"], "I sell bread, not spam", now_ms())
        assert await bans.banned_reason(conn, PHONES["bob"]) is ReasonCode.SPAM
    assert filed is not None

    async with signed_in(database_url, tmp_path / "relay") as operator:
        page = await operator.get("/safety")
        assert page.status_code == 200
        assert (
            f'action="/safety/reviews/{restricted}"' in page.text
            and f'action="/safety/appeals/{filed.id}"' in page.text
        )
        assert chart_figures(page.text, "safety-steps")["restrict"][days_ending(now_ms()).labels()[-1]] == 2

        lifted = await operator.post(f"/safety/reviews/{restricted}", decision="lift", note="a teacher")
        assert (lifted.status_code, lifted.headers["location"]) == (303, "/safety")
        assert "Lifted the restrict of account alice" in (await operator.get("/safety")).text
        kept = await operator.post(f"/safety/reviews/{confirmed}", decision="confirm", note="")
        assert kept.status_code == 303

        twice = await operator.post(f"/safety/reviews/{restricted}", decision="confirm")
        assert twice.status_code == 409 and 'data-code="case_not_open"' in twice.text
        assert (await operator.post("/safety/reviews/1%3B--", decision="lift")).status_code == 404
        unclear = await operator.post(f"/safety/appeals/{filed.id}", decision="maybe")
        assert unclear.status_code == 400 and 'data-code="decision_invalid"' in unclear.text
        long_note = await operator.post(f"/safety/appeals/{filed.id}", decision="deny", note="x" * 1001)
        assert long_note.status_code == 400 and 'data-code="note_too_long"' in long_note.text

        granted = await operator.post(f"/safety/appeals/{filed.id}", decision="grant", note="a real bakery")
        assert granted.status_code == 303
        after = (await operator.get("/safety")).text
        assert "Granted appeal" in after and "No appeal is open." in after and "No action waits for review." in after
        assert "Overturned on review: 66.7%" in after  # alice's and bob's overturned, dave's confirmed

    t = storage.safety_actions
    async with engine.connect() as conn:
        rows = {r.account_id: r for r in await conn.execute(select(t))}
        appeal = await storage.appeal(conn, filed.id)
        still_banned = await bans.banned_reason(conn, PHONES["bob"])
    assert (rows["alice"].review, rows["alice"].note, rows["alice"].lifted_by) == (
        Review.OVERTURNED,
        "a teacher",
        "review",
    )
    assert (rows["dave"].review, rows["dave"].note, rows["dave"].lifted_at_ms) == (Review.CONFIRMED, None, None)
    assert rows["bob"].lifted_by == "appeal" and still_banned is None
    assert appeal is not None and (appeal.state, appeal.note, appeal.phone_number) == ("granted", "a real bakery", None)
