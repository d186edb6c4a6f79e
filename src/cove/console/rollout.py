"""The rollout page: per published policy, per wave, eligible, served and accepted, and choices per purpose, now
and over time (cove.console.figures.rollout)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from cove.clock import now_ms
from cove.console.auth import Operator
from cove.console.charts import over_time, spec
from cove.console.figures.rollout import RolloutFigures, all_rollouts
from cove.console.figures.timeline import Series
from cove.console.pages import engine_of, render

router = APIRouter()


def charts(figures: RolloutFigures, index: int) -> list[tuple[str, str, dict[str, Any]]]:
    """(id, title, spec) of each chart of one policy's section."""
    status, prefix = figures.status, f"rollout-{index}"
    waves = [w.name for w in status.waves]
    made = [
        (
            f"{prefix}-waves",
            "Waves now: accounts eligible, served the notice, accepted the terms",
            spec(
                "bar",
                waves,
                [
                    Series("eligible", [w.eligible for w in status.waves]),
                    Series("served", [w.served for w in status.waves]),
                    Series("accepted", [w.accepted for w in status.waves]),
                ],
                "wave",
                "accounts",
            ),
        ),
        (
            f"{prefix}-purposes",
            "Choices per purpose now",
            spec(
                "bar",
                [p.id for p in status.purposes],
                [
                    Series("opted in", [p.opted_in for p in status.purposes]),
                    Series("opted out", [p.opted_out for p in status.purposes]),
                    Series("objected", [p.objected for p in status.purposes]),
                    Series("still open", [p.open_choices for p in status.purposes]),
                ],
                "purpose",
                "accounts",
            ),
        ),
    ]
    if figures.timeline is not None:
        made += [
            (
                f"{prefix}-over-time",
                f"Served and accepted per wave, running total per {figures.timeline.unit}",
                over_time(figures.timeline, figures.waves, "accounts"),
            ),
            (
                f"{prefix}-opt-ins",
                f"Opted in per purpose, running total per {figures.timeline.unit}",
                over_time(figures.timeline, figures.opt_ins, "accounts"),
            ),
        ]
    return made


async def _context(request: Request) -> dict[str, Any]:
    async with engine_of(request).connect() as conn:
        rollouts = await all_rollouts(conn, now_ms())
    return {"rollouts": [(r, charts(r, i)) for i, r in enumerate(rollouts, 1)]}


@router.get("/rollout")
async def rollout_page(request: Request, operator: Operator) -> HTMLResponse:
    return render(request, "rollout.html", title="Rollout", **await _context(request))


@router.get("/rollout/figures")
async def rollout_figures(request: Request, operator: Operator) -> HTMLResponse:
    """The charts alone, for the page's periodic refresh."""
    return render(request, "rollout_figures.html", **await _context(request))
