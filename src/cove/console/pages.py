"""Rendering the console's pages: the shared layout, the sections' navigation, errors as pages."""

from __future__ import annotations

import secrets
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from sqlalchemy.ext.asyncio import AsyncEngine

from cove.clock import to_datetime
from cove.web.assets import templates


def age_label(ms: int) -> str:
    """A duration as a person reads it at a glance: the two largest units."""
    minutes = max(0, ms) // 60_000
    days, hours, minutes = minutes // 1440, minutes // 60 % 24, minutes % 60
    if days:
        return f"{days} d {hours} h"
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"


TEMPLATES = templates("cove.console")
TEMPLATES.env.filters["when"] = lambda ms: to_datetime(ms).strftime("%Y-%m-%d %H:%M:%S UTC") if ms else "never"
TEMPLATES.env.filters["age"] = age_label
NAV = (
    ("/", "Overview"),
    ("/rollout", "Rollout"),
    ("/consent", "Consent"),
    ("/sharing", "Sharing"),
    ("/business", "Business"),
    ("/safety", "Safety"),
    ("/health", "Relay health"),
)
CSRF_FIELD = "csrf"
# How often the charts' fragments reload themselves (htmx `every`): the relay's figures move by the second,
# but a person reads a chart in tens of seconds.
REFRESH = "every 15s"


def engine_of(request: Request) -> AsyncEngine:
    return request.app.state.engine


def csrf_token(request: Request) -> str:
    """The session's token, which every POST carries back (cove.console.auth checks it); made on first use."""
    token = request.session.get(CSRF_FIELD)
    if not isinstance(token, str):
        token = request.session[CSRF_FIELD] = secrets.token_urlsafe(32)
    return token


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """A template over the layout. Forms post the token as ``<input type="hidden" name="csrf" value="{{ csrf }}">``
    (or an htmx ``hx-headers`` of ``X-CSRF-Token``)."""
    operator = request.session.get("operator")
    values = {
        "product": "Cove console",
        "nav": NAV if operator else (),
        "current": request.url.path,
        "operator": operator,
        "htmx": request.headers.get("hx-request") == "true",
        "csrf": csrf_token(request),
        "refresh": REFRESH,
        **context,
    }
    return TEMPLATES.TemplateResponse(request, template, values, status_code=status_code)
