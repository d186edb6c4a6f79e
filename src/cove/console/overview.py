"""The overview: a few headline numbers from each section, each linking to its page."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from cove.clock import now_ms
from cove.console.auth import Operator
from cove.console.figures.overview import headlines
from cove.console.pages import engine_of, render
from cove.fleet.health import latest

router = APIRouter()


@router.get("/")
async def overview(request: Request, operator: Operator) -> HTMLResponse:
    async with engine_of(request).connect() as conn:
        figures = await headlines(conn, now_ms())
        health = await latest(conn)
    return render(
        request,
        "overview.html",
        title="Overview",
        figures=figures,
        health=health.fleet if health else None,
        ledger=request.app.state.ledger_checks.last,
    )
