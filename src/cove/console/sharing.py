"""The console's sharing section: what the gateway sent to each recipient, and the erasures still owed."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from cove.clock import now_ms
from cove.console.auth import Operator
from cove.console.charts import counted, over_time, spec, stacked_counts
from cove.console.figures.sharing import LATEST_BATCHES, MANIFESTS_READ, SharingFigures, sharing_figures
from cove.console.figures.timeline import Series
from cove.console.pages import engine_of, render

router = APIRouter()


def charts(figures: SharingFigures) -> dict[str, dict]:
    window = figures.window
    purposes = sorted(figures.rows_per_purpose)
    recipients = sorted({r for per in figures.rows_per_purpose.values() for r in per})
    return {
        "batches": stacked_counts(window, figures.batches_per_day, "Batches"),
        "rows": stacked_counts(window, figures.rows_per_day, "Rows"),
        "purposes": spec(
            "bar",
            purposes,
            [Series(r, [figures.rows_per_purpose[p].get(r, 0) for p in purposes]) for r in recipients],
            "Purpose",
            "Rows",
            stacked=True,
        ),
        "erasures": over_time(
            window,
            counted(window, {"Requested": figures.erasures_requested, "Acknowledged": figures.erasures_acknowledged}),
            "Erasure events",
        ),
    }


@router.get("/sharing", response_class=HTMLResponse)
async def sharing_page(request: Request, operator: Operator) -> HTMLResponse:
    now = now_ms()
    figures = await sharing_figures(engine_of(request), now)
    return render(
        request,
        "sharing.html",
        title="Sharing",
        figures=figures,
        charts=charts(figures),
        now=now,
        latest_batches=LATEST_BATCHES,
        manifests_read=MANIFESTS_READ,
    )
