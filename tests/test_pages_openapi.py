"""The app's and the console's routes are each described in their OpenAPI document, as the relay's are."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from starlette.routing import BaseRoute

from cove.config import Settings
from cove.console.server import create_app as console_app
from cove.desktop.server import create_app as desktop_app
from cove.desktop.state import Desktop
from cove.web.guard import COOKIE


def _apps(tmp_path: Path) -> dict[str, FastAPI]:
    return {
        "app": desktop_app(Desktop("alice", "http://127.0.0.1:9", tmp_path / "home"), "key"),
        "console": console_app(Settings(data_dir=tmp_path / "relay")),
    }


def _api_routes(routes: list[BaseRoute]) -> list[APIRoute]:
    """The API routes, also inside included routers (FastAPI wraps each in an object of its own)."""
    found: list[APIRoute] = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append(route)
        elif (router := getattr(route, "original_router", None)) is not None:
            found += _api_routes(router.routes)
    return found


@pytest.mark.parametrize("name", ["app", "console"])
def test_every_route_is_described(name: str, tmp_path: Path) -> None:
    app = _apps(tmp_path)[name]
    client = TestClient(app, base_url="http://127.0.0.1:8123", client=("127.0.0.1", 50000))
    client.cookies.set(COOKIE, "key")  # the app's per-start key (the console has no key)
    served = client.get("/openapi.json")
    assert served.status_code == 200
    described = {(path, method.upper()) for path, item in served.json()["paths"].items() for method in item}
    routes = {(r.path, m) for r in _api_routes(app.routes) for m in r.methods}
    assert routes and routes <= described
