"""Rendering the console's pages: the shared layout, the sections' navigation, errors as pages."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from sqlalchemy.ext.asyncio import AsyncEngine

from cove.web.assets import templates

TEMPLATES = templates("cove.console")
NAV = (
    ("/", "Overview"),
    ("/rollout", "Rollout"),
    ("/consent", "Consent"),
    ("/sharing", "Sharing"),
    ("/business", "Business"),
    ("/safety", "Safety"),
    ("/health", "Relay health"),
)


def engine_of(request: Request) -> AsyncEngine:
    return request.app.state.engine


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    operator = request.session.get("operator")
    values = {
        "product": "Cove console",
        "nav": NAV if operator else (),
        "current": request.url.path,
        "operator": operator,
        "htmx": request.headers.get("hx-request") == "true",
        **context,
    }
    return TEMPLATES.TemplateResponse(request, name, values, status_code=status_code)
