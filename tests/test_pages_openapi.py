"""The app's and the console's routes are each described in their OpenAPI document, as the relay's are."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute

from cove.config import Settings
from cove.console.server import create_app as console_app
from cove.desktop.server import create_app as desktop_app
from cove.desktop.state import Desktop


def _apps(tmp_path: Path) -> dict[str, FastAPI]:
    return {
        "app": desktop_app(Desktop("alice", "http://127.0.0.1:9", tmp_path / "home"), "key"),
        "console": console_app(Settings(data_dir=tmp_path / "relay")),
    }


@pytest.mark.parametrize("name", ["app", "console"])
def test_every_route_is_described(name: str, tmp_path: Path) -> None:
    app = _apps(tmp_path)[name]
    described = {(path, method.upper()) for path, item in app.openapi()["paths"].items() for method in item}
    routes = {(r.path, m) for r in app.routes if isinstance(r, APIRoute) for m in r.methods}
    assert routes and routes <= described
