"""The console's business section: each business's standing, what history the business tables keep, and the
templates awaiting review, approved or rejected here exactly as `cove business approve|reject` does."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from cove.business import service
from cove.business.keys import BusinessKeys
from cove.clock import now_ms
from cove.console import forms
from cove.console.auth import Operator
from cove.console.charts import spec, stacked_counts
from cove.console.figures.business import (
    BUSINESSES_SHOWN,
    BusinessFigures,
    business_figures,
    pending_templates,
)
from cove.console.figures.timeline import Series
from cove.console.pages import engine_of

router = APIRouter()
SECTION = "/business"
# A rating's own colour (the stylesheet's ok, warn and bad), whatever its series' place in the chart.
RATING_COLOURS = {"Green": "#1b7a3a", "Yellow": "#9a5b00", "Red": "#b3261e"}


def charts(figures: BusinessFigures) -> dict[str, dict]:
    window = figures.window
    tiers = list(figures.tiers_now)
    per_tier = [Series("Businesses", [figures.tiers_now[t] for t in tiers])]
    named = {"up": "Up", "down": "Down", "paused": "Paused", "disabled": "Disabled", "block": "Blocks"}
    named |= {"report": "Reports", "green": "Green", "yellow": "Yellow", "red": "Red"}

    def daily(series: dict[str, dict[int, int]], y_label: str) -> dict:
        return stacked_counts(window, {named.get(k, k): v for k, v in series.items()}, y_label, RATING_COLOURS)

    return {
        "quality": daily({q: figures.quality_per_day.get(q, {}) for q in ("yellow", "red", "green")}, "Businesses"),
        "tiers": spec("bar", tiers, per_tier, "Tier (users a day)", "Businesses"),
        "moves": daily(figures.tier_moves, "Moves"),
        "pauses": daily(figures.pauses, "Templates"),
        "feedback": daily(figures.feedback, "Feedback"),
    }


async def _page(request: Request, refusal: forms.Refusal | None = None) -> HTMLResponse:
    now = now_ms()
    engine = engine_of(request)
    figures = await business_figures(engine, now)
    pending, waiting = await pending_templates(engine)
    return forms.section(
        request,
        "business.html",
        refusal,
        title="Business",
        figures=figures,
        charts=charts(figures),
        pending=pending,
        waiting=waiting,
        shown=BUSINESSES_SHOWN,
    )


@router.get(SECTION, response_class=HTMLResponse)
async def business_page(request: Request, operator: Operator) -> HTMLResponse:
    return await _page(request)


def _template_id(raw: str) -> str:
    """Template ids are UUIDs: anything else names no template and goes no further."""
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        raise forms.Refusal(404, "unknown_template", f"There is no template {raw[:40]!r}.") from None


@router.post(SECTION + "/templates/{template_id}/approve")
async def approve(request: Request, template_id: str, operator: Operator) -> Response:
    async def action() -> str:
        keys = BusinessKeys.load_or_create(request.app.state.settings.data_dir)
        row = await service.approve(engine_of(request), keys, _template_id(template_id))
        return f"Approved {row.name} ({row.language}): version {row.version}, signed for clients to verify."

    return await forms.answer(request, SECTION, action, _page)


@router.post(SECTION + "/templates/{template_id}/reject")
async def reject(request: Request, template_id: str, operator: Operator) -> Response:
    async def action() -> str:
        chosen = _template_id(template_id)
        reason = await forms.text(request, "reason", "a reason (the business is shown it)", required=True)
        row = await service.reject(engine_of(request), chosen, str(reason))
        return f"Rejected {row.name} ({row.language}): {row.rejected_reason}"

    return await forms.answer(request, SECTION, action, _page)
