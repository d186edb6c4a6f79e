"""The guard of a page served on this machine: no other machine, no other site, and (for the app) no other
program than the browser that opened the link printed at start.

- The socket listens on the loopback address only, and a request from any other address is refused anyway.
- The ``Host`` header must name the loopback: a web page elsewhere that points a name of its own at 127.0.0.1
  (DNS rebinding) is refused.
- A request that changes something (not GET or HEAD) must come from this origin (``Origin`` and, where the
  browser sends it, ``Sec-Fetch-Site``): a page on another site cannot post to it.
- With a key (``cove app``): the start link ``/open?key=KEY`` sets an HttpOnly, SameSite=Strict cookie holding
  the key, and every other request needs it. The key is new at each start, so a link from an earlier run, or
  another local user who can reach the port, gets nothing.
"""

from __future__ import annotations

import hmac
import ipaddress
from urllib.parse import urlsplit

from starlette.datastructures import Headers, QueryParams
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

COOKIE = "cove_key"
OPEN_PATH = "/open"
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _is_loopback(host: str | None) -> bool:
    if host is None:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _host_name(host_header: str) -> str:
    # urlsplit parses "[::1]:8080" and "localhost:8080" alike; a bad port must not raise
    try:
        return (urlsplit(f"//{host_header}").hostname or "").lower()
    except ValueError:
        return ""


class LocalGuard:
    """ASGI middleware; ``key`` None checks only the machine and the origin (the console has its own login).
    ``loopback`` False drops the machine checks (the client's address, the Host header) and keeps the origin's:
    for the console served on another address by the operator's explicit choice, behind its login."""

    def __init__(
        self,
        app: ASGIApp,
        key: str | None = None,
        open_prefixes: tuple[str, ...] = ("/static/",),
        loopback: bool = True,
    ) -> None:
        self.app = app
        self.key = key
        self.open_prefixes = open_prefixes
        self.loopback = loopback

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(scope)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _refusal(self, scope: Scope) -> Response | None:
        headers = Headers(scope=scope)
        client = scope.get("client")
        host = headers.get("host", "")
        if self.loopback and not _is_loopback(client[0] if client else None):
            return PlainTextResponse("this page answers only its own machine", status_code=403)
        if self.loopback and _host_name(host) not in LOOPBACK_NAMES:
            return PlainTextResponse("open this page at 127.0.0.1 or localhost", status_code=421)
        if scope.get("method", "GET") not in SAFE_METHODS or scope["type"] == "websocket":
            origin = headers.get("origin")
            if origin is not None and urlsplit(origin).netloc != host:
                return PlainTextResponse("refused: the request came from another site", status_code=403)
            if headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
                return PlainTextResponse("refused: the request came from another site", status_code=403)
        if self.key is None or scope["path"].startswith(self.open_prefixes):
            return None
        if scope["path"] == OPEN_PATH:
            return self._open(QueryParams(scope.get("query_string", b"")).get("key", ""))
        cookie = _cookie(headers.get("cookie", ""), COOKIE)
        if cookie is None or not hmac.compare_digest(cookie.encode(), self.key.encode()):
            return PlainTextResponse(
                "open the link `cove app` printed when it started (it holds this run's key)", status_code=401
            )
        return None

    def _open(self, offered: str) -> Response:
        assert self.key is not None
        if not hmac.compare_digest(offered.encode(), self.key.encode()):
            return PlainTextResponse("this link is from another run of `cove app`: open the new one", status_code=401)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(COOKIE, self.key, httponly=True, samesite="strict", path="/")
        return response


def _cookie(header: str, name: str) -> str | None:
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None
