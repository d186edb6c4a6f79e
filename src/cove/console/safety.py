"""The console's safety section: the review queue and open appeals, decided here exactly as `cove safety review`
and `cove safety appeal` decide them, and the actions taken per day by step and reason code."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from cove.clock import now_ms
from cove.console import forms
from cove.console.auth import current_operator
from cove.console.figures import days
from cove.console.figures.safety import SafetyFigures, safety_figures
from cove.console.pages import engine_of, render
from cove.safety import appeals

router = APIRouter()
SECTION = "/safety"
NOTE = "a note (for the record)"


def charts(figures: SafetyFigures) -> dict[str, dict]:
    return {
        "steps": days.daily_spec(figures.window, figures.per_step, "Actions"),
        "reasons": days.daily_spec(figures.window, figures.per_reason, "Actions"),
    }


def _rate(rate: float | None) -> str:
    return "no decision yet" if rate is None else f"{rate:.1%}"


async def _page(request: Request, refusal: forms.Refusal | None = None) -> HTMLResponse:
    figures = await safety_figures(engine_of(request), now_ms())
    return render(
        request,
        "safety.html",
        status_code=refusal.status if refusal else 200,
        title="Safety",
        figures=figures,
        charts=charts(figures),
        review_rate=_rate(figures.stats.review_overturn_rate),
        appeal_rate=_rate(figures.stats.appeal_overturn_rate),
        when=days.when_label,
        **forms.flash_context(request, refusal),
    )


@router.get(SECTION, response_class=HTMLResponse)
async def safety_page(request: Request, operator: str = Depends(current_operator)) -> HTMLResponse:
    return await _page(request)


def _not_open(kind: str, case: int) -> forms.Refusal:
    return forms.Refusal(
        409,
        "case_not_open",
        f"{kind.capitalize()} {case} is not in the queue: there is no such case, or it was decided already.",
    )


@router.post(SECTION + "/reviews/{case}")
async def review(request: Request, case: str, operator: str = Depends(current_operator)) -> Response:
    async def action() -> str:
        number = forms.case_number(case, "review")
        keep = await forms.choice(request, "decision", ("confirm", "lift")) == "confirm"
        note = await forms.text(request, "note", NOTE, required=False)
        try:
            taken = await appeals.review(engine_of(request), number, keep, note)
        except appeals.CaseNotOpen:
            raise _not_open("review", number) from None
        done = "Confirmed" if keep else "Lifted"
        return f"{done} the {taken.step.label} of account {taken.account_id} (review {number})."

    return await forms.answer(request, SECTION, action, _page)


@router.post(SECTION + "/appeals/{case}")
async def appeal(request: Request, case: str, operator: str = Depends(current_operator)) -> Response:
    async def action() -> str:
        number = forms.case_number(case, "appeal")
        grant = await forms.choice(request, "decision", ("grant", "deny")) == "grant"
        note = await forms.text(request, "note", NOTE, required=False)
        try:
            decided = await appeals.decide_appeal(engine_of(request), number, grant, note)
        except appeals.CaseNotOpen:
            raise _not_open("appeal", number) from None
        if grant:
            return f"Granted appeal {number}: account {decided.account_id} is restored and may register again."
        return f"Denied appeal {number} of account {decided.account_id}."

    return await forms.answer(request, SECTION, action, _page)
