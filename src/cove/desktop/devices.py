"""Linked devices (`/devices`), as `cove devices` has them: the account's devices, unlinking one (on the phone, the
primary), and linking a new one by the code it shows (`cove-link:1:...`, as a QR code on its welcome page)."""

from __future__ import annotations

import contextlib
from datetime import datetime

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from cove.client import linking
from cove.client.devices import ProvisioningError
from cove.desktop.pages import client_of, desktop_of, render, see_other
from cove.protocol.provisioning import InvalidLinkCode

router = APIRouter()
PRIMARY = 1
MAX_CODE = 512


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M")


async def _page(
    request: Request, status_code: int = 200, error: str | None = None, flash: str | None = None
) -> Response:
    client = client_of(request)
    view = await linking.registered_devices(client)
    if client.core.device_id == PRIMARY:
        with contextlib.suppress(linking.LinkError):  # devices that unlinked themselves leave the signed list
            await linking.reconcile(client)
    devices = [
        {
            "id": d["device_id"],
            "model": d["model"],
            "linked": _when(d["linked_at"]),
            "seen": _when(d["last_seen_at"]),
            "this": d["device_id"] == view["device_id"],
            "listed": d["listed"],
        }
        for d in view["devices"]
    ]
    primary = client.core.device_id == PRIMARY
    return render(request, "devices.html", status_code, title="Devices", devices=devices, primary=primary,
                  error=error, flash=flash)  # fmt: skip


@router.get("/devices")
async def devices(request: Request) -> Response:
    return await _page(request)


@router.post("/devices/link")
async def link(request: Request, code: str = Form("", max_length=MAX_CODE)) -> Response:
    client = client_of(request)
    try:
        device_id = await linking.link_companion(client, code.strip())
    except (linking.LinkError, InvalidLinkCode, ProvisioningError) as exc:
        return await _page(request, 400, error=str(exc))
    return await _page(request, flash=f"Linked device {device_id}: your contacts' messages now reach it too.")


@router.post("/devices/{device_id}/unlink")
async def unlink(request: Request, device_id: int) -> Response:
    client = client_of(request)
    desktop = desktop_of(request)
    if device_id == client.core.device_id and device_id != PRIMARY:  # this computer leaves the account
        try:
            await linking.leave(client)
        except linking.LinkError as exc:
            return await _page(request, 400, error=str(exc))
        await desktop.forget()
        return see_other(request, "/welcome")
    if device_id <= PRIMARY:
        return await _page(request, 400, error="the phone (device 1) cannot be unlinked: delete the account instead")
    try:
        await linking.unlink_companion(client, device_id)
    except linking.LinkError as exc:
        return await _page(request, 400, error=str(exc))
    return await _page(request, flash=f"Unlinked device {device_id}: it receives nothing more.")
