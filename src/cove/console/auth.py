"""Who may see the console: an operator signed in with a name and password (cove.console.operators).

The session is Starlette's signed cookie (SameSite=Strict, HttpOnly): the operator's name, when they signed in
(a session lasts SESSION_HOURS from there, however busy), and a random token that every POST must carry back,
in the form field ``csrf`` or the ``X-CSRF-Token`` header (pages.render gives it to every template as
``csrf``). A page on another site cannot read it, so it cannot make the operator's browser post to the console
even where the guard's origin check and the cookie's SameSite would not stop it. The login form carries one
too, from a session opened by the login page, so another site cannot sign the browser in as someone else.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from cove.clock import now_ms
from cove.console import operators
from cove.console.pages import CSRF_FIELD, engine_of, render
from cove.console.passwords import verify_password
from cove.console.throttle import LoginThrottle
from cove.errors import ApiError

SESSION_HOURS = 8
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class LoginRequired(Exception):
    """A console page asked for without a session: the browser is sent to the login page."""


async def check_csrf(request: Request) -> None:
    expected = request.session.get(CSRF_FIELD)
    offered = request.headers.get(CSRF_HEADER)
    if offered is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        offered = (await request.form()).get(CSRF_FIELD)
    if not (isinstance(expected, str) and isinstance(offered, str) and hmac.compare_digest(expected, offered)):
        raise ApiError(403, "csrf_mismatch", "this form is from another session or another site: reload the page")


def _seal(password_hash: str) -> str:
    """What the session keeps of the operator's password hash: a session ends when its operator is removed or
    given a new password, and the cookie shows nothing a guesser could use."""
    return hashlib.sha256(b"cove console session\0" + password_hash.encode()).hexdigest()[:32]


async def current_operator(request: Request) -> str:
    """The signed-in operator's name; a FastAPI dependency of every console route but the login's. A request
    that changes something must also carry the session's token (see the module's docstring)."""
    operator, since, seal = (request.session.get(k) for k in ("operator", "since", "seal"))
    fresh = isinstance(since, int) and now_ms() - since <= SESSION_HOURS * 3_600_000
    if not (isinstance(operator, str) and isinstance(seal, str) and fresh):
        raise LoginRequired
    async with engine_of(request).connect() as conn:
        stored = await operators.password_hash(conn, operator)
    if stored is None or not hmac.compare_digest(_seal(stored), seal):
        request.session.clear()
        raise LoginRequired
    if request.method not in SAFE_METHODS:
        await check_csrf(request)
    return operator


Operator = Annotated[str, Depends(current_operator)]
router = APIRouter()


def _throttle(request: Request) -> LoginThrottle:
    return request.app.state.login_throttle


@router.get("/login")
async def login_page(request: Request) -> Response:
    if isinstance(request.session.get("operator"), str):
        return RedirectResponse("/", status_code=303)
    return render(request, "login.html", title="Sign in")


@router.post("/login")
async def login(
    request: Request, name: Annotated[str, Form(max_length=64)], password: Annotated[str, Form(max_length=1024)]
) -> Response:
    await check_csrf(request)
    address = request.client.host if request.client else "unknown"
    throttle = _throttle(request)
    wait = throttle.attempt(name, address)
    if wait is not None:
        minutes = int(wait // 60) + 1
        return render(
            request,
            "login.html",
            status_code=429,
            title="Sign in",
            name=name,
            error=f"Too many failed sign-ins for this name or from this address: try again in {minutes} minute(s).",
        )
    async with engine_of(request).connect() as conn:
        stored = await operators.password_hash(conn, name)
    # scrypt takes a good part of a second of one core: off the event loop, so other pages keep answering
    if not await asyncio.to_thread(verify_password, password, stored):
        return render(
            request, "login.html", status_code=401, title="Sign in", name=name, error="Wrong name or password."
        )
    throttle.succeeded(name)
    async with engine_of(request).begin() as conn:
        await operators.logged_in(conn, name, now_ms())
    request.session.clear()  # a new session, a new token: nothing from before the sign-in carries over
    request.session.update(
        {"operator": name, "since": now_ms(), "seal": _seal(stored or ""), CSRF_FIELD: secrets.token_urlsafe(32)}
    )
    return RedirectResponse("/", status_code=303)


@router.post("/logout")
async def logout(request: Request, operator: Operator) -> Response:
    request.session.clear()
    return RedirectResponse("/login", status_code=303)
