"""The console's business section on SQLite and PostgreSQL: each business's standing and history from what the
relay's own business functions wrote, and template review through the page doing what `cove business
approve|reject` does."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from console_sections_world import bakery, chart_figures, profile, template
from console_world import signed_in
from cove.business import service
from cove.business.keys import BusinessKeys
from cove.business.storage import business_events, business_template_versions, business_templates
from cove.clock import now_ms, to_datetime
from cove.console.figures.business import business_figures, pending_templates
from cove.console.figures.timeline import DAY_MS
from cove.db import create_engine
from cove.protocol.templates import verify_approved


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    made = create_engine(database_url)
    yield made
    await made.dispose()


async def test_standing_and_history_of_each_business(engine: AsyncEngine, tmp_path: Path) -> None:
    paused = await bakery(engine, tmp_path)
    await service.put_profile(engine, "owl", profile("Night Owl"))
    waiting = await service.submit_template(engine, "owl", template("reminder"))

    now = now_ms()
    figures = await business_figures(engine, now)
    today = now // DAY_MS  # the window's buckets are days since the epoch
    rows = {b.name: b for b in figures.businesses}
    assert figures.total == 2 and set(rows) == {"Corner Bakery", "Night Owl"}
    bakery_row, owl = rows["Corner Bakery"], rows["Night Owl"]
    assert (bakery_row.verified, bakery_row.tier, bakery_row.quality) == (True, "2,000", "red")
    assert (bakery_row.paused_templates, bakery_row.disabled_templates) == (1, 0)
    assert (owl.verified, owl.tier, owl.quality, owl.paused_templates) == (False, "250", "green", 0)
    assert figures.tiers_now == {"250": 1, "2,000": 1}
    assert figures.quality_per_day["red"] == {today: 1}
    assert figures.tier_moves == {"up": {today: 1}, "down": {}}
    assert figures.pauses == {"paused": {today: 1}, "disabled": {}}
    assert figures.feedback == {"block": {}, "report": {today: 3}}

    pending, count = await pending_templates(engine)
    assert count == 1 and [(p.template_id, p.business, p.name) for p in pending] == [
        (waiting["template_id"], "Night Owl", "reminder")
    ]
    assert pending[0].components == [("BODY", "Your order {{1}} is ready for pickup at the counter.")]
    assert paused not in {p.template_id for p in pending}


async def test_approve_and_reject_through_the_page_as_the_command_does(
    engine: AsyncEngine, database_url: str, tmp_path: Path
) -> None:
    await service.put_profile(engine, "owl", profile("Night Owl"))
    first = (await service.submit_template(engine, "owl", template("reminder")))["template_id"]
    second = (await service.submit_template(engine, "owl", template("last_call", "Last call for order {{1}}.")))[
        "template_id"
    ]
    data_dir = tmp_path / "relay"
    async with signed_in(database_url, data_dir) as operator:
        page = await operator.get("/business")
        assert page.status_code == 200
        assert f'action="/business/templates/{first}/approve"' in page.text
        assert chart_figures(page.text, "business-tiers") == {"Businesses": {"250": 1}}

        forged = await operator.client.post(f"/business/templates/{first}/approve")  # the form without its token
        assert forged.status_code == 403 and 'data-code="csrf_mismatch"' in forged.text
        approved = await operator.post(f"/business/templates/{first}/approve")
        assert (approved.status_code, approved.headers["location"]) == (303, "/business")
        shown = await operator.get("/business")
        assert "Approved reminder (en): version 1" in shown.text
        assert "Approved reminder" not in (await operator.get("/business")).text  # a result is shown once

        again = await operator.post(f"/business/templates/{first}/approve")
        assert again.status_code == 409 and 'data-code="illegal_transition"' in again.text

        no_reason = await operator.post(f"/business/templates/{second}/reject", reason="  ")
        assert no_reason.status_code == 400 and 'data-code="reason_required"' in no_reason.text
        bad_id = await operator.post("/business/templates/x'%20OR%20'1'='1/approve")
        assert bad_id.status_code == 404 and 'data-code="unknown_template"' in bad_id.text
        unknown = await operator.post("/business/templates/00000000-0000-4000-8000-000000000000/approve")
        assert unknown.status_code == 404 and 'data-code="unknown_template"' in unknown.text

        rejected = await operator.post(f"/business/templates/{second}/reject", reason="say which order it is")
        assert rejected.status_code == 303
        assert "Rejected last_call (en): say which order it is" in (await operator.get("/business")).text

    t, v = business_templates, business_template_versions
    async with engine.connect() as conn:
        rows = {r.template_id: r for r in await conn.execute(select(t))}
        signed = (await conn.execute(select(v).where(v.c.template_id == first))).one()
        events = [(e.kind, e.body) for e in await conn.execute(select(business_events).order_by(business_events.c.seq))]
    assert (rows[first].status, rows[first].version) == ("APPROVED", 1)
    assert (rows[second].status, rows[second].rejected_reason) == ("REJECTED", "say which order it is")
    # Signed with the relay's key from its data directory, as `cove business approve` signs: clients verify it.
    keys = BusinessKeys.load_or_create(data_dir)
    assert verify_approved(keys.public_key, signed.payload.encode(), signed.signature).template_id == first
    assert [k for k, _ in events] == ["template_status", "template_status"]  # the business hears of both


async def test_history_outside_the_window_is_left_out(engine: AsyncEngine, tmp_path: Path) -> None:
    await bakery(engine, tmp_path)
    later = now_ms() + 31 * 86_400_000
    figures = await business_figures(engine, later)
    assert figures.tier_moves == {"up": {}, "down": {}} and figures.feedback["report"] == {}
    assert all(not per_day for per_day in figures.quality_per_day.values())
    assert figures.window.labels()[-1] == to_datetime(later).strftime("%Y-%m-%d")  # the window ends that day
