"""The console's ASGI application: the relay's database, the guard, the session and one router per section."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.middleware.sessions import SessionMiddleware

from cove.config import Settings
from cove.console import auth, business, consent, health, overview, rollout, safety, sharing
from cove.keyfile import read_or_create
from cove.operator import relay_database
from cove.web.assets import mount_static
from cove.web.guard import LocalGuard

SESSION_HOURS = 8


def create_app(settings: Settings, local_only: bool = True) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with relay_database(settings) as engine:
            app.state.engine = engine
            yield

    app = FastAPI(title="Cove console", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.settings = settings
    mount_static(app)
    for section in (auth, overview, rollout, consent, sharing, business, safety, health):
        app.include_router(section.router)

    async def to_login(request: Request, exc: Exception) -> Response:
        return Response(status_code=303, headers={"Location": "/login", "HX-Redirect": "/login"})

    app.add_exception_handler(auth.LoginRequired, to_login)
    secret = read_or_create(settings.data_dir / "console.key").hex()
    app.add_middleware(
        SessionMiddleware,
        secret_key=secret,
        session_cookie="cove_console",
        max_age=SESSION_HOURS * 3600,
        same_site="strict",
        https_only=False,
    )
    if local_only:
        app.add_middleware(LocalGuard, key=None)
    return app
