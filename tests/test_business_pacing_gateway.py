"""Template pacing as a Cloud API integration sees it through the gateway: a held send is answered
``held_for_quality_assessment``, then reported ``sent`` when the relay releases it (and the user gets it), or
``failed`` with 132015 when the template is paused first."""

from __future__ import annotations

import time

from sqlalchemy import insert, select, update

from cove.business import upkeep
from cove.business.pacing import HOLD_MS, SAMPLE
from cove.business.storage import business_pacing, business_templates
from cove.client.events import TemplateReceived
from cove.db import create_engine
from test_business_gateway import (
    ORDER_READY,
    approved_templates,
    failed_with,
    opt_in,
    send,
    statuses_of,
    template,
    world,  # noqa: F401 - the fixture
)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


async def test_a_held_send_is_answered_held_then_sent_or_failed_by_webhook(world, users, relay):  # noqa: F811
    gateway, receiver = world
    shop = gateway.phone_number_id
    await approved_templates(gateway, relay, receiver, ORDER_READY)
    bo, cy = await users.register("bo"), await users.register("cy")
    for person in (bo, cy):
        await opt_in(relay, person, shop, "utility")
    engine = create_engine(relay.database_url)
    try:
        t, p = business_templates, business_pacing
        async with engine.begin() as conn:
            template_id = (await conn.execute(select(t.c.template_id).where(t.c.business_id == shop))).scalar_one()
            # YELLOW, so paced, and its episode's sample already sent: the next sends are held.
            await conn.execute(update(t).where(t.c.template_id == template_id).values(quality="yellow"))
            started = now_ms()
            await conn.execute(
                insert(p).values(template_id=template_id, business_id=shop, started_at_ms=started, sent=SAMPLE)
            )

        answer = await send(gateway, template("order_ready", bo.core.phone_number, "A-1"))
        [message] = answer["messages"]
        assert message["message_status"] == "held_for_quality_assessment"
        assert statuses_of(receiver, message["id"]) == []  # not sent yet

        assert (await upkeep.sweep(engine, started + HOLD_MS)).released == 1
        await receiver.wait_for(lambda r: "sent" in statuses_of(r, message["id"]))
        received = [e for e in await bo.inbox() if isinstance(e, TemplateReceived)]
        assert [e.client_message_id for e in received] == [message["id"]]

        async with engine.begin() as conn:
            await conn.execute(update(p).where(p.c.template_id == template_id).values(started_at_ms=now_ms()))
        answer = await send(gateway, template("order_ready", cy.core.phone_number, "B-2"))
        [dropped] = answer["messages"]
        assert dropped["message_status"] == "held_for_quality_assessment"
        async with engine.begin() as conn:
            paused = {"status": "PAUSED", "pauses": 1, "paused_until_ms": now_ms() + 3 * 3_600_000}
            await conn.execute(update(t).where(t.c.template_id == template_id).values(**paused))
        assert (await upkeep.sweep(engine, now_ms())).dropped == 1
        assert await receiver.wait_for(lambda r: failed_with(r, dropped["id"])) == 132015
        assert "sent" not in statuses_of(receiver, dropped["id"])
    finally:
        await engine.dispose()
