"""The console's ASGI application: the relay's database, the guard, the session and one router per section."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException
from starlette.middleware.sessions import SessionMiddleware

from cove.config import Settings
from cove.console import auth, business, consent, health, overview, rollout, safety, sharing
from cove.console.pages import render
from cove.console.throttle import LoginThrottle
from cove.errors import ApiError
from cove.keyfile import read_or_create
from cove.operator import relay_database
from cove.web.assets import mount_static
from cove.web.guard import LocalGuard


def create_app(settings: Settings, local_only: bool = True) -> FastAPI:
    """The console; ``local_only`` False (an address other than the loopback, chosen with ``--host``) keeps the
    guard's same-origin check and the login, drops the checks that the caller is this machine, and sends the
    session cookie over HTTPS only (the console is then meant to sit behind a TLS-terminating proxy)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with relay_database(settings) as engine:
            app.state.engine = engine
            yield

    # Described at /openapi.json (behind the guard); no docs page: FastAPI's loads its script from a CDN.
    app = FastAPI(title="Cove console", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.settings = settings
    app.state.login_throttle = LoginThrottle()
    app.state.ledger_checks = consent.LedgerChecks()
    mount_static(app)
    for section in (auth, overview, rollout, consent, sharing, business, safety, health):
        app.include_router(section.router)

    async def to_login(request: Request, exc: Exception) -> Response:
        if request.headers.get("hx-request") == "true":
            # a fragment's refresh: the browser would follow a 303 itself and swap the login page into the chart
            return Response(status_code=200, headers={"HX-Redirect": "/login"})
        return Response(status_code=303, headers={"Location": "/login"})

    async def refused(request: Request, exc: Exception) -> Response:
        if isinstance(exc, ApiError):
            status, code, message = exc.status, exc.code, exc.message
        elif isinstance(exc, RequestValidationError):
            fields = ", ".join(str(e["loc"][-1]) for e in exc.errors())
            status, code, message = 400, "bad_request", f"these fields are missing or not valid: {fields}"
        else:
            assert isinstance(exc, HTTPException)
            status, code, message = exc.status_code, f"http_{exc.status_code}", str(exc.detail)
        response = render(request, "error.html", status_code=status, title="Refused", code=code, message=message)
        if isinstance(exc, ApiError):
            response.headers.update(exc.headers)
        return response

    app.add_exception_handler(auth.LoginRequired, to_login)
    for refusal in (ApiError, RequestValidationError, HTTPException):
        app.add_exception_handler(refusal, refused)
    secret = read_or_create(settings.data_dir / "console.key").hex()
    app.add_middleware(
        SessionMiddleware,
        secret_key=secret,
        session_cookie="cove_console",
        max_age=auth.SESSION_HOURS * 3600,
        same_site="strict",
        https_only=not local_only,  # on another address a password and a session cross a network: TLS only
    )
    app.add_middleware(LocalGuard, key=None, loopback=local_only)
    return app
