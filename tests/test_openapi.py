"""The OpenAPI document describes every HTTP endpoint, with the shared error shape."""

from __future__ import annotations

import httpx
from fastapi.routing import APIRoute

from cove.app import create_app
from cove.config import Settings


def http_routes(routes) -> list[APIRoute]:
    """APIRoutes, looking inside included routers (FastAPI keeps those as wrappers)."""
    found = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append(route)
        elif hasattr(route, "original_router"):
            found += http_routes(route.original_router.routes)
    return found


def test_every_http_route_is_documented_with_a_summary_and_its_errors(tmp_path):
    app = create_app(Settings(data_dir=tmp_path))
    spec = app.openapi()
    routes = http_routes(app.routes)
    assert len(routes) >= 10
    for route in routes:
        for method in route.methods:
            operation = spec["paths"][route.path][method.lower()]
            assert operation.get("summary"), f"{method} {route.path} has no summary"
            if route.path != "/health":
                errors = [s for s in operation["responses"] if s.startswith(("4", "5"))]
                assert errors, f"{method} {route.path} documents no error"
                for status in errors:
                    schema = operation["responses"][status]["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/ErrorBody"}


def test_a_running_relay_serves_its_openapi_document(relay):
    spec = httpx.get(f"{relay.url}/openapi.json").json()
    assert "/v1/messages/{account_id}" in spec["paths"]
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["type"] == "http"
