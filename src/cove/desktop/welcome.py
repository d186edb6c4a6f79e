"""The welcome pages: a profile with no account registers its number (a code by SMS, proof of work when the relay
asks for it, the PIN of a locked number) or links itself to the person's phone with a QR code. Each step calls the
SDK as `cove register`, `cove verify` and `cove devices link` do; once it has an account, the event pump starts.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

import httpx
import segno
from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from markupsafe import Markup

from cove.client import linking
from cove.client.codes import registration_code
from cove.client.devices import ProvisioningError
from cove.client.errors import RelayError
from cove.client.profile import open_profile
from cove.client.safety_client import Safety
from cove.client.transport import CoveClient
from cove.desktop.pages import desktop_of, render, see_other
from cove.desktop.state import Desktop
from cove.protocol.phone import INTERNATIONAL_FORMAT, try_normalise
from cove.protocol.provisioning import InvalidLinkCode

router = APIRouter()
MAX_PIN = 64


@dataclass
class Linking:
    """A link to the phone in progress: the code shown, and the wait for the phone in the background."""

    code: str
    error: str | None = None
    task: asyncio.Task[None] | None = None  # held here: a task nobody holds may be collected before it ends


def _pending_phone(desktop: Desktop) -> str | None:
    return desktop.core.store.get("pending_phone") if desktop.core is not None else None


def _welcome(request: Request, status_code: int = 200, **context: object) -> Response:
    desktop = desktop_of(request)
    if desktop.registered:
        return see_other(request, "/")
    return render(request, "welcome.html", status_code, title="Welcome", pending=_pending_phone(desktop), **context)


def _open(desktop: Desktop) -> tuple[CoveClient, bool]:
    """The profile's client, creating the profile if it has none yet (``True``: it is new)."""
    new = desktop.core is None
    if desktop.core is None:
        desktop.core = open_profile(desktop.profile, desktop.home)
        desktop.client = CoveClient(desktop.server, desktop.core)
    assert desktop.client is not None
    return desktop.client, new


def _said(exc: RelayError) -> str:
    return str(exc.details.get("message") or exc)


@router.get("/welcome")
async def welcome(request: Request) -> Response:
    return _welcome(request)


@router.post("/welcome/code")
async def request_code(request: Request, phone_number: str = Form("", max_length=40)) -> Response:
    desktop = desktop_of(request)
    phone = try_normalise(phone_number.strip())
    if phone is None:
        return _welcome(request, 400, error=f"{phone_number!r} is not a phone number: {INTERNATIONAL_FORMAT}")
    client, new = _open(desktop)
    try:
        sent = await client.request_code(phone)
    except RelayError as exc:
        if new:
            await desktop.forget()  # a first step that failed leaves no profile, as `cove register` leaves none
        return _welcome(request, exc.status if exc.status < 500 else 502, error=_said(exc), phone=phone)
    except httpx.TransportError:
        if new:
            await desktop.forget()  # a first step that failed leaves no profile, as `cove register` leaves none
        return _welcome(request, 502, error=f"the relay at {desktop.server} does not answer: is it running?")
    client.core.store.set("server", client.base_url)
    client.core.store.set("pending_phone", sent["phone_number"])
    return see_other(request, "/welcome")


@router.post("/welcome/verify")
async def verify(
    request: Request, code: str = Form("", max_length=20), pin: str = Form("", max_length=MAX_PIN)
) -> Response:
    desktop = desktop_of(request)
    phone = _pending_phone(desktop)
    if phone is None or desktop.client is None:
        return _welcome(request, 409, error="ask for a code first")
    code = registration_code(code) or ""
    if not code:
        return _welcome(request, 400, error="the code is the 6 digits the relay sent, like 123456", locked=bool(pin))
    try:
        await desktop.client.register(phone, code, pin or None)
    except RelayError as exc:
        locked = exc.code in ("registration_lock", "wrong_pin")
        message = f"{phone} has a registration lock: enter its PIN too" if exc.code == "registration_lock" else None
        return _welcome(request, exc.status if exc.status < 500 else 502, error=message or _said(exc), locked=locked)
    desktop.ready.set()
    return see_other(request, "/")


@router.post("/welcome/restart")
async def restart(request: Request) -> Response:
    """Another number: the code asked for is forgotten."""
    desktop = desktop_of(request)
    if desktop.core is not None and not desktop.registered:
        await desktop.forget()  # a first step that failed leaves no profile, as `cove register` leaves none
    return see_other(request, "/welcome")


# linking this app to the person's phone -----------------------------------------------------------------------
def qr_svg(code: str) -> Markup:
    """The link code as an inline SVG QR code (segno writes only its own markup: the code is not in it as text)."""
    return Markup(segno.make(code, error="m").svg_inline(scale=4, border=2, svgclass="qr", omitsize=False))


async def _wait_for_phone(desktop: Desktop, client: CoveClient, pending: linking.PendingLink, state: Linking) -> None:
    try:
        await linking.finish_link(client, pending)
        with contextlib.suppress(RelayError, httpx.TransportError):  # whom the account accepts, as `devices link`
            await Safety(client).accepted()
        client.core.store.set("server", client.base_url)
        desktop.ready.set()
    except (linking.LinkError, ProvisioningError, InvalidLinkCode, RelayError, httpx.TransportError) as exc:
        state.error = _said(exc) if isinstance(exc, RelayError) else str(exc)


@router.post("/welcome/link")
async def start_link(request: Request) -> Response:
    desktop = desktop_of(request)
    current: Linking | None = getattr(request.app.state, "linking", None)
    if desktop.registered:
        return see_other(request, "/devices")
    if current is None or current.error is not None:
        client, new = _open(desktop)
        try:
            pending = await linking.open_link(client)
        except (RelayError, httpx.TransportError, linking.LinkError) as exc:
            if new:
                await desktop.forget()  # a first step that failed leaves no profile, as `cove register` leaves none
            said = _said(exc) if isinstance(exc, RelayError) else str(exc) or "the relay does not answer"
            return _welcome(request, 502, error=said)
        state = Linking(pending.code)
        state.task = asyncio.create_task(_wait_for_phone(desktop, client, pending, state))
        request.app.state.linking = state
    return see_other(request, "/welcome/link")


def _link_state(request: Request) -> Linking | Response:
    """The link in progress, or where to go instead: the chats once linked, the welcome page if none started."""
    state: Linking | None = getattr(request.app.state, "linking", None)
    if desktop_of(request).registered:
        return see_other(request, "/")
    return state if state is not None else see_other(request, "/welcome")


@router.get("/welcome/link")
async def link_page(request: Request) -> Response:
    state = _link_state(request)
    if isinstance(state, Response):
        return state
    return render(request, "welcome_link.html", title="Link to your phone", code=state.code, qr=qr_svg(state.code),
                  error=state.error)  # fmt: skip


@router.get("/welcome/link/status")
async def link_status(request: Request) -> Response:
    """Polled by the link page: htmx follows ``HX-Redirect`` once the phone has linked this computer."""
    state = _link_state(request)
    if isinstance(state, Response):
        return state
    return render(request, "welcome_link_status.html", error=state.error)
