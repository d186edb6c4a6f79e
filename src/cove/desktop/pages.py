"""Rendering the app's pages: the shared layout, the navigation, and errors shown as pages, never tracebacks."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from cove.client.errors import RelayError
from cove.client.transport import CoveClient
from cove.desktop.conversations import NotAChat
from cove.desktop.state import Desktop
from cove.web.assets import templates

TEMPLATES = templates("cove.desktop")
NAV = (("/", "Chats"), ("/devices", "Devices"), ("/privacy", "Privacy"), ("/account", "Account"))


class NotRegisteredYet(Exception):
    """A page that needs an account, asked for before registering: the app sends the person to register."""


def desktop_of(request: Request) -> Desktop:
    return request.app.state.desktop


def client_of(request: Request) -> CoveClient:
    desktop = desktop_of(request)
    if not desktop.registered or desktop.client is None:
        raise NotRegisteredYet
    return desktop.client


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """``name`` in the desktop's templates, with the layout's values; a partial when htmx asks for one."""
    desktop = desktop_of(request)
    values = {
        "product": f"Cove · {desktop.profile}",
        "nav": NAV if desktop.registered else (),
        "current": request.url.path,
        "phone_number": desktop.core.phone_number if desktop.core is not None else None,
        "htmx": request.headers.get("hx-request") == "true",
        **context,
    }
    return TEMPLATES.TemplateResponse(request, name, values, status_code=status_code)


def see_other(request: Request, url: str) -> Response:
    """After a form: the next page. htmx follows ``HX-Redirect`` (it cannot see a 303's headers), a plain form the
    303."""
    if request.headers.get("hx-request") == "true":
        return Response(status_code=200, headers={"HX-Redirect": url})
    return Response(status_code=303, headers={"Location": url})


def install_error_pages(app: FastAPI) -> None:
    async def refused(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RelayError)
        message = str(exc.details.get("message") or exc)
        return render(
            request,
            "error.html",
            status_code=exc.status if exc.status < 500 else 502,
            title="The relay refused",
            message=message,
            code=exc.code,
        )

    async def unreachable(request: Request, exc: Exception) -> Response:
        url = desktop_of(request).server
        return render(
            request,
            "error.html",
            status_code=502,
            title="The relay is unreachable",
            message=f"no answer from {url}: is it running?",
            code="relay_unreachable",
        )

    async def register_first(request: Request, exc: Exception) -> Response:
        return Response(status_code=303, headers={"Location": "/welcome", "HX-Redirect": "/welcome"})

    async def no_such_chat(request: Request, exc: Exception) -> Response:
        return render(request, "error.html", status_code=404, title="No such conversation", message=str(exc),
                      code="not_a_chat")  # fmt: skip

    app.add_exception_handler(RelayError, refused)
    app.add_exception_handler(NotAChat, no_such_chat)
    app.add_exception_handler(httpx.TransportError, unreachable)
    app.add_exception_handler(NotRegisteredYet, register_first)
