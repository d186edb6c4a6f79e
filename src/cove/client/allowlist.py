"""A client that can reach only the relay routes it names: every request is checked before it leaves.

A :class:`RouteAllowlist` is an httpx request hook (it runs for every request a client sends, whatever its
transport or proxy). It allows a request only if it goes to the relay's origin and its method and path match one
of the routes, each ``{placeholder}`` being one segment whose decoded value has the placeholder's syntax. A
mistake in how a path is built (a value not encoded, a ``..`` that httpx resolved, an absolute URL) then fails
closed with :class:`RouteNotAllowed` instead of reaching another route.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import unquote

import httpx

_PLACEHOLDER = re.compile(r"^\{([a-z_]+)\}$")


class RouteNotAllowed(Exception):
    """A request to a route the client may not reach; it was not sent."""

    def __init__(self, method: str, url: httpx.URL) -> None:
        self.method = method
        super().__init__(f"{method} {url.raw_path.decode('ascii', 'replace')[:200]} is not a route this client uses")


@dataclass(frozen=True)
class Route:
    method: str
    template: str  # "/v1/keys/{account_id}/identity"


class RouteAllowlist:
    """The routes, with the syntax of each placeholder (a regular expression the whole value must match)."""

    def __init__(self, base_url: str, routes: Iterable[Route], syntax: Mapping[str, str]) -> None:
        base = httpx.URL(base_url)
        self._origin = (base.scheme, base.host, base.port)
        self._prefix = base.raw_path.split(b"?")[0].rstrip(b"/").decode("ascii")
        self._routes: dict[str, list[list[str | re.Pattern[str]]]] = {}
        for route in routes:
            parts: list[str | re.Pattern[str]] = []
            for part in route.template.split("/"):
                placeholder = _PLACEHOLDER.match(part)
                if placeholder is None:
                    parts.append(part)
                else:  # a KeyError here, at start-up, is a route whose placeholder has no syntax
                    parts.append(re.compile(syntax[placeholder.group(1)]))
            self._routes.setdefault(route.method, []).append(parts)

    def allows(self, method: str, url: httpx.URL) -> bool:
        if (url.scheme, url.host, url.port) != self._origin:
            return False
        try:
            path = url.raw_path.split(b"?")[0].decode("ascii")
        except UnicodeDecodeError:  # httpx percent-encodes: a raw byte means the URL was not built by it
            return False
        if not path.startswith(self._prefix + "/"):
            return False
        segments = path[len(self._prefix) :].split("/")
        return any(_matches(route, segments) for route in self._routes.get(method, ()))

    async def __call__(self, request: httpx.Request) -> None:
        if not self.allows(request.method, request.url):
            raise RouteNotAllowed(request.method, request.url)


def _matches(route: list[str | re.Pattern[str]], segments: list[str]) -> bool:
    if len(route) != len(segments):
        return False
    for part, raw in zip(route, segments, strict=True):
        if isinstance(part, str):
            if part != raw:
                return False
        else:
            try:
                value = unquote(raw, errors="strict")
            except UnicodeDecodeError:
                return False
            if part.fullmatch(value) is None:
                return False
    return True
