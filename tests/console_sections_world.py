"""The data the console's sharing, business and safety sections show, made by the functions the relay and the
operator commands use (the business and safety services; the sharing gateway's world), and the figures a page's
chart was drawn from. The console itself is started and signed in to as console_world does it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from cove.business import reach, service, standing
from cove.business.keys import BusinessKeys
from cove.business.quality import Quality
from cove.clock import now_ms
from cove.config import Settings
from cove.protocol.business import BlockReason
from cove.safety import actions
from cove.safety.ladder import Source, Step
from cove.safety.verdicts import ReasonCode
from helpers import insert_account


def chart_figures(html: str, chart_id: str) -> dict[str, dict[str, float]]:
    """The figures a chart was drawn from (the JSON its canvas and its table are both made of): series label ->
    x label -> value."""
    found = re.search(rf'<script type="application/json" id="{re.escape(chart_id)}-data">(.*?)</script>', html, re.S)
    assert found is not None, f"no chart {chart_id} on the page"
    spec = json.loads(found.group(1))
    return {s["label"]: dict(zip(spec["labels"], s["data"], strict=True)) for s in spec["series"]}


BAKERY_PHONE = "+14155550171"


def template(name: str, text: str = "Your order {{1}} is ready for pickup at the counter.") -> dict[str, Any]:
    return {
        "name": name,
        "language": "en",
        "category": "UTILITY",
        "components": [{"type": "BODY", "text": text, "example": {"body_text": [["A-17"]]}}],
    }


def profile(name: str) -> dict[str, Any]:
    return {"display_name": name, "websites": []}


async def bakery(engine: AsyncEngine, keys: Path) -> str:
    """A verified business (tier 2,000) with one template it sent, reported by three users until it was paused;
    the template's id."""
    await insert_account(engine, "bakery", BAKERY_PHONE)
    await service.put_profile(engine, "bakery", profile("Corner Bakery"))
    await service.verify(engine, BAKERY_PHONE)
    sent = await service.submit_template(engine, "bakery", template("pickup"))
    await service.approve(engine, BusinessKeys.load_or_create(keys), sent["template_id"])
    now = now_ms()
    for user in ("u1", "u2", "u3"):
        assert await reach.claim(engine, "bakery", user, 2_000, sent["template_id"], Quality.GREEN, now) is None
        async with engine.begin() as conn:
            await standing.record_feedback(conn, "bakery", user, [("report", BlockReason.SPAM)], now)
    return sent["template_id"]


async def take(engine: AsyncEngine, who: str, step: Step, reason: ReasonCode, source: Source = Source.MODEL) -> int:
    """An action as the detector (or an operator) takes it; its case number."""
    async with engine.begin() as conn:
        taken = await actions.take_in(conn, Settings(), who, step, reason, source, 0.97, now_ms())
    assert taken is not None
    return taken.id
