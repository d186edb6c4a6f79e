"""The account page (`/account`): who this profile is on the relay, and deleting the account, which asks the
person to type their number first, deletes it on the relay, removes the local profile as `cove delete-account`
does, and shows what the relay will erase where."""

from __future__ import annotations

import httpx
from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from cove.client import linking
from cove.client.errors import RelayError
from cove.client.transport import CoveClient
from cove.desktop import privacy_view as pv
from cove.desktop.pages import client_of, desktop_of, render

router = APIRouter()


def _same_number(typed: str, number: str) -> bool:
    """Spaces, dashes and dots are how people type a number; the digits and the + must match."""
    return "".join(c for c in typed if c not in " -.()") == number


@router.get("/account", response_class=HTMLResponse)
async def account_page(request: Request) -> Response:
    client = client_of(request)
    devices = (await linking.registered_devices(client))["devices"]
    return render(request, "account.html", title="Account", core=client.core, devices=len(devices))


@router.post("/account/delete", response_class=HTMLResponse)
async def delete_account(request: Request, confirm: str = Form("")) -> Response:
    client = client_of(request)
    desktop = desktop_of(request)
    core = client.core
    number = core.phone_number or ""
    if not number or not _same_number(confirm, number):
        devices = (await linking.registered_devices(client))["devices"]
        return render(
            request,
            "account.html",
            status_code=400,
            title="Account",
            core=core,
            devices=len(devices),
            error=f"Type your number, {number}, to confirm: nothing was deleted.",
        )
    receipts = await client.delete_account()
    try:
        states = {r["event_id"]: await _state(client, r["event_id"]) for r in receipts}
    finally:
        # The account is gone on the relay: this machine's copy goes whatever the receipts' states say.
        await desktop.forget()
    erasures = pv.erasures(desktop.server, receipts, states)
    return render(request, "account_deleted.html", title="Account deleted", number=number, erasures=erasures)


async def _state(client: CoveClient, event_id: str) -> str | None:
    try:
        return (await client.erasure_status(event_id))["state"]
    except (RelayError, ValueError, httpx.TransportError):
        return None  # the page says it is not known yet, and how to check later
