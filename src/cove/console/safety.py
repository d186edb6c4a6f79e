"""The console's safety section: the review queue and open appeals, decided here exactly as `cove safety review`
and `cove safety appeal` decide them, and the actions taken per day by step and reason code."""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from cove.clock import now_ms
from cove.console import forms
from cove.console.auth import Operator
from cove.console.charts import stacked_counts
from cove.console.figures.safety import SafetyFigures, safety_figures
from cove.console.pages import engine_of
from cove.safety import appeals

router = APIRouter()
SECTION = "/safety"
NOTE = "a note (for the record)"
T = TypeVar("T")


def charts(figures: SafetyFigures) -> dict[str, dict]:
    window = figures.window
    return {
        "steps": stacked_counts(window, figures.per_step, "Actions"),
        "reasons": stacked_counts(window, figures.per_reason, "Actions"),
    }


def _rate(rate: float | None) -> str:
    return "no decision yet" if rate is None else f"{rate:.1%}"


async def _page(request: Request, refusal: forms.Refusal | None = None) -> HTMLResponse:
    figures = await safety_figures(engine_of(request), now_ms())
    return forms.section(
        request,
        "safety.html",
        refusal,
        title="Safety",
        figures=figures,
        charts=charts(figures),
        review_rate=_rate(figures.stats.review_overturn_rate),
        appeal_rate=_rate(figures.stats.appeal_overturn_rate),
    )


@router.get(SECTION, response_class=HTMLResponse)
async def safety_page(request: Request, operator: Operator) -> HTMLResponse:
    return await _page(request)


@dataclass(frozen=True)
class Decision:
    """A decision posted on a case: its number, whether the first of its two choices was made, and the note."""

    case: int
    first: bool
    note: str | None


async def _decision(request: Request, raw_case: str, kind: str, choices: tuple[str, str]) -> Decision:
    case = forms.case_number(raw_case, kind)
    first = await forms.choice(request, "decision", choices) == choices[0]
    return Decision(case, first, await forms.text(request, "note", NOTE, required=False))


async def _decided(kind: str, decision: Decision, deciding: Awaitable[T]) -> T:
    try:
        return await deciding
    except appeals.CaseNotOpen:
        message = f"{kind.capitalize()} {decision.case} is not in the queue: there is no such case, or it was decided."
        raise forms.Refusal(409, "case_not_open", message) from None


@router.post(SECTION + "/reviews/{case}")
async def review(request: Request, case: str, operator: Operator) -> Response:
    async def action() -> str:
        d = await _decision(request, case, "review", ("confirm", "lift"))
        taken = await _decided("review", d, appeals.review(engine_of(request), d.case, d.first, d.note))
        done = "Confirmed" if d.first else "Lifted"
        return f"{done} the {taken.step.label} of account {taken.account_id} (review {d.case})."

    return await forms.answer(request, SECTION, action, _page)


@router.post(SECTION + "/appeals/{case}")
async def appeal(request: Request, case: str, operator: Operator) -> Response:
    async def action() -> str:
        d = await _decision(request, case, "appeal", ("grant", "deny"))
        decided = await _decided("appeal", d, appeals.decide_appeal(engine_of(request), d.case, d.first, d.note))
        if d.first:
            return f"Granted appeal {d.case}: account {decided.account_id} is restored and may register again."
        return f"Denied appeal {d.case} of account {decided.account_id}."

    return await forms.answer(request, SECTION, action, _page)
