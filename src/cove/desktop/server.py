"""The app's ASGI application: the guard, the static files and one router per part of the page."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from cove.desktop import account, chats, devices, pages, privacy, pump, welcome
from cove.desktop.state import Desktop
from cove.web.assets import mount_static
from cove.web.guard import LocalGuard


def create_app(desktop: Desktop, key: str) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with pump.running(desktop):
            yield
        await desktop.aclose()

    # The pages' routes are described at /openapi.json (behind the guard, as every page); no docs page, since
    # FastAPI's loads its script from a CDN and these pages fetch nothing from another host.
    app = FastAPI(title=f"Cove: {desktop.profile}", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.desktop = desktop
    app.state.stopping_hooks = [desktop.live.close]  # cove.web.local.serve: open pages' streams end first
    mount_static(app)
    for part in (welcome, chats, devices, privacy, account):
        app.include_router(part.router)
    pages.install_error_pages(app)
    app.add_middleware(LocalGuard, key=key)
    return app
