"""Template pacing on a real relay: a paced template's sample goes at once, the rest is held relay-side, then
queued once its episode is over or dropped with 132015 when the template is paused (cove.business.pacing)."""

from __future__ import annotations

import time

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import insert, update

from cove.business import pacing, upkeep
from cove.business.pacing import HOLD_MS, SAMPLE, Episode
from cove.business.storage import business_held, business_pacing, business_templates
from cove.db import create_engine
from cove.messaging.storage import envelopes
from test_business_platform import UTILITY, business, http, pair_rows
from test_business_sending import approved_template, send_body, set_template_status, template_header

T0 = 1_800_000_000_000


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def test_an_episode_lets_its_sample_through_then_holds_until_it_ends():
    assert pacing.release_at(None, T0) is None  # the first paced send starts an episode
    assert pacing.release_at(Episode(T0, SAMPLE - 1), T0 + 1) is None
    assert pacing.release_at(Episode(T0, SAMPLE), T0 + 1) == T0 + HOLD_MS
    assert pacing.release_at(Episode(T0, SAMPLE), T0 + HOLD_MS) is None  # over: the next episode starts


@given(gaps=st.lists(st.integers(min_value=0, max_value=HOLD_MS // 150), min_size=1, max_size=400))
def test_no_episode_lets_more_than_its_sample_through_and_nothing_is_held_past_its_end(gaps):
    """Whatever the timing of paced sends: at most SAMPLE go at once per episode, and each held one is released
    at its episode's end, after it was sent and at most HOLD_MS later (what may leave, and when)."""
    episode: Episode | None = None
    at_once: dict[int, int] = {}
    now = T0
    for gap in gaps:
        now += gap
        release = pacing.release_at(episode, now)
        if release is None:
            if episode is None or now >= episode.started_at_ms + HOLD_MS:
                episode = Episode(now, 0)  # admit's upsert: the next episode starts with this send
            episode = Episode(episode.started_at_ms, episode.sent + 1)
            at_once[episode.started_at_ms] = episode.sent
        else:
            assert episode is not None and release == episode.started_at_ms + HOLD_MS
            assert now < release <= now + HOLD_MS
    assert all(n <= SAMPLE for n in at_once.values())


async def _in_db(relay, *statements, rows: list[dict] | None = None) -> None:  # noqa: ANN001
    """Run ``statements`` in one transaction; ``rows`` go into ``business_held`` in one executemany."""
    engine = create_engine(relay.database_url)
    try:
        async with engine.begin() as conn:
            for statement in statements:
                await conn.execute(statement)
            if rows:
                await conn.execute(insert(business_held), rows)
    finally:
        await engine.dispose()


async def _sweep(relay, at: int) -> upkeep.Swept:  # noqa: ANN001
    engine = create_engine(relay.database_url)
    try:
        return await upkeep.sweep(engine, at)
    finally:
        await engine.dispose()


async def _queued_for(relay, account_id: str) -> list[str]:  # noqa: ANN001
    return [r["client_message_id"] for r in await pair_rows(relay, envelopes) if r["account_id"] == account_id]


async def test_a_paced_template_is_held_past_its_sample_then_released_or_dropped(users, relay):
    shop = await business(users, relay, "shop", "+14155550186")
    ana = await users.register("ana", "+14155550187")
    s, a = shop.core.account_id, ana.core.account_id
    async with http(relay, shop) as owner, http(relay, ana) as user:
        utility = await approved_template(relay, owner, UTILITY)
        await user.put(f"/v1/business/{s}/opt-in", json={"categories": ["utility"], "source": "web"})
        t = business_templates
        # YELLOW: not GREEN, so paced (quality.paced). Its first send starts an episode and goes at once.
        await _in_db(relay, update(t).where(t.c.template_id == utility["template_id"]).values(quality="yellow"))

        async def paced_send() -> tuple[str, dict]:
            body = await send_body(owner, a, template_header(utility))
            answer = await owner.put(f"/v1/messages/{a}", json=body)
            assert answer.status_code == 200, answer.text
            return body["client_message_id"], answer.json()

        first, answer = await paced_send()
        assert (answer["queued"], answer["held"]) == (1, 0)
        assert await _queued_for(relay, a) == [first]
        [episode] = await pair_rows(relay, business_pacing)
        assert episode["sent"] == 1

        # The sample is used up: the next send is accepted but held, not queued for Ana.
        p = business_pacing
        await _in_db(relay, update(p).where(p.c.template_id == utility["template_id"]).values(sent=SAMPLE))
        held, answer = await paced_send()
        assert (answer["queued"], answer["held"]) == (0, 1)
        [row] = await pair_rows(relay, business_held)
        assert row["client_message_id"] == held and row["user_account_id"] == a
        assert row["release_at_ms"] == episode["started_at_ms"] + HOLD_MS
        assert b"opaque ciphertext" not in row["envelopes"].encode()  # kept as base64 ciphertext, like the queue's
        before = max(e["seq"] for e in (await owner.get("/v1/business/events")).json())

        assert (await _sweep(relay, now_ms())).released == 0  # the episode is not over yet
        swept = await _sweep(relay, row["release_at_ms"])
        assert (swept.released, swept.dropped) == (1, 0)
        assert await _queued_for(relay, a) == [first, held]
        assert await pair_rows(relay, business_held) == []
        feed = (await owner.get("/v1/business/events", params={"after": before})).json()
        assert [(e["kind"], e["body"]) for e in feed] == [("held", {"message_id": held, "status": "sent"})]

        # Held again; then the sample's feedback pauses the template: what it held is dropped at once, with 132015.
        await _in_db(
            relay,
            update(p).where(p.c.template_id == utility["template_id"]).values(started_at_ms=now_ms(), sent=SAMPLE),
        )
        dropped, answer = await paced_send()
        assert answer["held"] == 1
        await set_template_status(relay, utility["template_id"], "PAUSED", now_ms() + 3 * 3_600_000)
        swept = await _sweep(relay, now_ms())
        assert (swept.released, swept.dropped) == (0, 1)
        assert dropped not in await _queued_for(relay, a)
        feed = (await owner.get("/v1/business/events", params={"after": before + 1})).json()
        assert [(e["kind"], e["body"]) for e in feed] == [
            ("held", {"message_id": dropped, "status": "failed", "code": 132015})
        ]


async def test_a_business_holds_at_most_its_bound(users, relay):
    """Past ``MAX_HELD_PER_BUSINESS`` held sends, a paced send is refused with 130429 (retry once released)."""
    shop = await business(users, relay, "shop", "+14155550188")
    ana = await users.register("ana", "+14155550189")
    s, a = shop.core.account_id, ana.core.account_id
    async with http(relay, shop) as owner, http(relay, ana) as user:
        utility = await approved_template(relay, owner, UTILITY)
        await user.put(f"/v1/business/{s}/opt-in", json={"categories": ["utility"], "source": "web"})
        t, p = business_templates, business_pacing
        start = now_ms()
        row = {"business_id": s, "template_id": utility["template_id"], "user_account_id": "someone"}
        held = [
            {**row, "client_message_id": f"m{i}", "envelopes": "[]", "held_at_ms": start, "release_at_ms": start}
            for i in range(pacing.MAX_HELD_PER_BUSINESS)
        ]
        await _in_db(
            relay,
            update(t).where(t.c.template_id == utility["template_id"]).values(quality="yellow"),
            insert(p).values(template_id=utility["template_id"], business_id=s, started_at_ms=start, sent=SAMPLE),
            rows=held,
        )
        answer = await owner.put(f"/v1/messages/{a}", json=await send_body(owner, a, template_header(utility)))
        assert answer.status_code == 429, answer.text
        error = answer.json()["error"]
        assert error["cloud_api"]["code"] == 130429 and 0 < error["retry_after"] <= HOLD_MS // 1000
