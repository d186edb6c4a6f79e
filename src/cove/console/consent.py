"""The consent page: choices per purpose over time from the ledger (turned on, turned off, withdrawn, objected),
and the ledger's verification, run from a button with `cove ledger verify`'s own function.

The last verification (when, by whom, what it found) is kept in the console's memory: a restarted console shows
"not verified since the console started" until someone presses the button again.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from cove.clock import now_ms
from cove.consent.ledger_cli import Verification, check_ledger
from cove.console.auth import Operator
from cove.console.charts import over_time, spec
from cove.console.figures.consent import KINDS, LedgerUnreadable, consent_history
from cove.console.figures.timeline import Series
from cove.console.pages import engine_of, render

router = APIRouter()
SHOWN_PROBLEMS = 20  # the rest are counted; `cove ledger verify` lists them all


@dataclass
class LedgerCheck:
    at_ms: int
    operator: str
    result: Verification


@dataclass
class LedgerChecks:
    """The newest verification, and a lock so that two presses do not read the whole ledger twice at once."""

    last: LedgerCheck | None = None
    running: asyncio.Lock = field(default_factory=asyncio.Lock)


def _checks(request: Request) -> LedgerChecks:
    return request.app.state.ledger_checks


async def _context(request: Request) -> dict[str, Any]:
    async with engine_of(request).connect() as conn:
        try:
            history = await consent_history(conn, now_ms())
        except LedgerUnreadable as exc:
            return {"unreadable": str(exc), "charts": []}
    if history.timeline is None:
        return {"charts": []}
    purposes = [p.purpose for p in history.purposes]
    made = [
        (
            "consent-totals",
            "Acts per purpose so far",
            spec(
                "bar", purposes, [Series(k, [p.totals[k] for p in history.purposes]) for k in KINDS], "purpose", "acts"
            ),
        )
    ]
    for purpose in history.purposes:
        made.append(
            (
                f"consent-{purpose.purpose}",
                f"{purpose.purpose}: acts per {history.timeline.unit}",
                over_time(history.timeline, purpose.series, "acts", kind="bar", stacked=True),
            )
        )
    return {"charts": made}


def _ledger(request: Request) -> dict[str, Any]:
    return {"check": _checks(request).last, "shown_problems": SHOWN_PROBLEMS}


@router.get("/consent")
async def consent_page(request: Request, operator: Operator) -> HTMLResponse:
    return render(request, "consent.html", title="Consent", **await _context(request), **_ledger(request))


@router.get("/consent/figures")
async def consent_figures(request: Request, operator: Operator) -> HTMLResponse:
    return render(request, "consent_figures.html", **await _context(request))


@router.post("/consent/verify")
async def verify_ledger(request: Request, operator: Operator) -> Response:
    """Run the verification (every entry and checkpoint); the result replaces the ledger's card, or, without
    JavaScript, the page is shown again with it."""
    checks = _checks(request)
    if checks.running.locked():
        flash = "A verification is already running: its result will show here."
    else:
        async with checks.running, engine_of(request).connect() as conn:
            checks.last = LedgerCheck(now_ms(), operator, await check_ledger(conn))
        flash = None
    if request.headers.get("hx-request") != "true":
        return RedirectResponse("/consent", status_code=303)
    return render(request, "consent_ledger.html", flash=flash, **_ledger(request))
