"""Who may see the console: an operator signed in (a signed session cookie, Starlette's SessionMiddleware).
(skeleton: the console helper adds the login page, the operators' passwords and their commands.)"""

from __future__ import annotations

from fastapi import APIRouter, Request


class LoginRequired(Exception):
    """A console page asked for without a session: the browser is sent to the login page."""


def current_operator(request: Request) -> str:
    """The signed-in operator's name; a FastAPI dependency of every console route but the login's."""
    operator = request.session.get("operator")
    if not isinstance(operator, str):
        raise LoginRequired
    return operator


router = APIRouter()
