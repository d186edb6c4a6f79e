"""The OpenAPI document describes every HTTP endpoint, with the shared error shape."""

from __future__ import annotations

import httpx
from fastapi.routing import APIRoute

from cove.app import create_app
from cove.business.gateway.app import create_app as create_gateway_app
from cove.business.gateway.graph import Identity
from cove.business.gateway.outbox import Outbox
from cove.business.gateway.service import Gateway
from cove.business.gateway.store import GatewayStore
from cove.client.core import ClientCore
from cove.client.store import ClientStore
from cove.client.transport import CoveClient
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
            operation = spec["paths"][route.path_format][method.lower()]
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


def test_the_gateway_documents_every_cloud_api_endpoint_with_its_graph_errors(tmp_path):
    core = ClientCore(ClientStore(tmp_path / "gateway.db"), bytes(32), {})
    store = GatewayStore(core.store)
    gateway = Gateway(CoveClient("http://127.0.0.1:9", core), store, Outbox(store.db), None, Identity("a", "+1"))
    app = create_gateway_app(gateway, run_background=False)
    spec = app.openapi()
    routes = http_routes(app.routes)
    assert {(r.path, m) for r in routes for m in r.methods} >= {
        ("/{version}/{phone_number_id}/messages", "POST"),
        ("/{version}/{waba_id}/message_templates", "GET"),
        ("/{version}/{waba_id}/message_templates", "POST"),
        ("/{version}/{waba_id}/message_templates", "DELETE"),
        ("/{version}/{phone_number_id}/whatsapp_business_profile", "GET"),
        ("/{version}/{phone_number_id}/whatsapp_business_profile", "POST"),
        ("/{version}/{phone_number_id}/media", "POST"),
        ("/{version}/{object_id}", "GET"),  # the phone number, or a media file
        ("/{version}/{object_id}", "DELETE"),
        ("/media/download/{media_id}", "GET"),
    }
    for route in routes:
        for method in route.methods:
            operation = spec["paths"][route.path_format][method.lower()]
            assert operation.get("summary"), f"{method} {route.path} has no summary"
            assert {"400", "401"} <= set(operation["responses"]), f"{method} {route.path} documents no Graph error"


def test_the_relay_has_no_advertising_surface(tmp_path):
    """The policy's promise, "without third-party banner ads": no path serves ads, sponsored content, campaigns, a
    promotions feed or a business directory. Businesses reach a user only in the chat the user opened or opted in
    to; the user's own switches to stop and resume promotions are the only paths that name promotions."""
    spec = create_app(Settings(data_dir=tmp_path)).openapi()
    switches = {"/v1/business/{business_id}/stop-promotions", "/v1/business/{business_id}/resume-promotions"}
    for path in set(spec["paths"]) - switches:
        segments = path.lower().split("/")
        assert not any(
            s.startswith(("ad", "advert", "sponsor", "campaign", "promotion", "banner", "discover", "directory-of"))
            for s in segments
        ), path
