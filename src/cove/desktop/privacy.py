"""The privacy center (`/privacy`): the notice due and its terms, each purpose with one click to turn it on, off
or object, and what was shared about me. The rules of what is shown and which call each button makes are in
cove.desktop.privacy_view; this module fetches through the SDK and renders."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from cove.client.clock import now_ms
from cove.client.errors import RelayError
from cove.client.transport import CoveClient
from cove.desktop import privacy_view as pv
from cove.desktop.pages import client_of, render

router = APIRouter()
SURFACE = "app"  # where the person saw the notice and acted, as the relay's served log and ledger record it


async def _notice(client: CoveClient, view: dict[str, Any]) -> dict[str, Any] | None:
    """The notice due, marked shown: displaying it is what the served log records (R6)."""
    if view["pending_notice"] is None:
        return None
    notice = await client.pending_notice()
    if notice is not None:
        await client.notice_shown(notice, surface=SURFACE)
    return notice


def _flash_for(view: dict[str, Any], changed: str | None) -> str | None:
    """The confirmation after a change without JavaScript: rebuilt from the relay's view, never from the URL."""
    shown = next((p for p in pv.purposes(view) if p.id == changed), None)
    return pv.saved(shown) if shown is not None else None


@router.get("/privacy", response_class=HTMLResponse)
async def privacy_page(request: Request, changed: str | None = None, accepted: bool = False) -> Response:
    client = client_of(request)
    view = await client.privacy()
    notice = await _notice(client, view)
    flash = "Terms accepted. Every optional purpose stays off until you turn it on." if accepted else None
    return render(
        request,
        "privacy.html",
        title="Privacy",
        view=view,
        notice=notice,
        summary=pv.markdown(notice["summary"], top=3) if notice else None,
        full_text=pv.markdown(notice["text"], top=4) if notice else None,
        notice_purposes=pv.notice_purposes(notice) if notice else [],
        ages=pv.AGE_BRACKETS,
        purposes=pv.purposes(view),
        labels=pv.LABELS,
        disclosures=pv.disclosures(view),
        revocations=pv.revocations(view),
        accepted_at=pv.when(view["policy"]["accepted_at"]) if view["policy"] else None,
        flash=flash or _flash_for(view, changed),
    )


@router.post("/privacy/terms")
async def accept_terms(
    request: Request,
    version: str = Form(..., max_length=100),
    text_hash: str = Form(..., max_length=64),
    age_bracket: str = Form("", max_length=10),
) -> Response:
    """Accept the notice the person read: refused if another version became due since the page was shown."""
    client = client_of(request)
    if age_bracket not in pv.AGE_BRACKETS:
        return _refused(request, "Choose your age bracket first: it decides which purposes can be offered.", 400)
    notice = await client.pending_notice()
    if notice is None:
        return RedirectResponse("/privacy", status_code=303)
    if (notice["version"], notice["text_hash"]) != (version, text_hash):
        return _refused(request, "The notice changed while it was open: read the new one before accepting.", 409)
    await client.accept_terms(notice, age_bracket)
    return RedirectResponse("/privacy?accepted=true", status_code=303)


@router.post("/privacy/purposes/{purpose_id}/{action}")
async def change_purpose(request: Request, purpose_id: str, action: str) -> Response:
    """One click: ``on``, ``off`` or ``object``. With htmx the purpose's card comes back in place; without, the
    page again (POST, then a 303 redirect)."""
    client = client_of(request)
    htmx = request.headers.get("hx-request") == "true"
    view = await client.privacy()
    try:
        call = pv.call_for(view, purpose_id, pv.Action(action))
    except (ValueError, pv.NotOffered):
        return _refused(request, f"{purpose_id!r} offers no {action!r} now: reload the page.", 409, htmx)
    try:
        await getattr(client, call.method)(purpose_id, *call.args)
    except RelayError as exc:
        if not htmx:
            raise  # the app's error page
        return _refused(request, str(exc.details.get("message") or exc), exc.status, htmx)
    if not htmx:
        return RedirectResponse(f"/privacy?changed={purpose_id}#purpose-{purpose_id}", status_code=303)
    view = await client.privacy()
    shown = next(p for p in pv.purposes(view) if p.id == purpose_id)
    return render(request, "privacy_purpose.html", p=shown, labels=pv.LABELS, flash=pv.saved(shown))


def _refused(request: Request, message: str, status: int, htmx: bool = False) -> Response:
    if htmx:
        # htmx swaps only 2xx answers: the message goes to the page's status region, the card stays as it was.
        response = render(request, "privacy_flash.html", flash=message)
        response.headers["HX-Reswap"] = "none"
        return response
    return render(request, "error.html", status_code=status, title="Not done", message=message, code="refused")


@router.get("/privacy/export")
async def download_my_data(request: Request) -> Response:
    """Everything the relay holds about the account and the consent receipts, as the relay's JSON, to keep."""
    client = client_of(request)
    document = await client.export_my_data()
    name = pv.export_file_name(now_ms())
    return Response(
        json.dumps(document, indent=2, ensure_ascii=False).encode() + b"\n",
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"},
    )
