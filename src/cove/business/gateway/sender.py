"""The gateway's message sends over its WebSocket to the relay, with HTTP as the fallback.

One HTTP request per Cloud API send was most of the gateway's and a good part of the relay's CPU per message
(docs/benchmarks.md, "Business gateway"). The relay accepts the same send as a ``send`` frame on the device's
WebSocket (cove.messaging.routes), which the gateway keeps open anyway to receive; the answer comes back as a
``response`` frame with the frame's ``request_id``. So:

- only message sends travel this way: a ``PUT /v1/messages/{account_id}`` that the gateway's allowlist
  (:mod:`.relay`) admits, checked here as it is on the HTTP path; everything else stays HTTP;
- at most :data:`WINDOW` sends are in flight on the socket; more wait for a slot (bounded, like the relay's own
  ``ws_in_flight``);
- when the socket is down, drops with sends in flight, or an answer does not come within :data:`ANSWER_S`, the
  send goes again over HTTP with the same body. The relay stores a client message id once per sender, so a send
  that reached it before the drop is answered as a duplicate and stored once.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from typing import Any, Protocol
from urllib.parse import unquote

import httpx
from websockets.exceptions import WebSocketException

from cove.client import paths
from cove.client.allowlist import RouteAllowlist, RouteNotAllowed
from cove.client.core import ClientCore
from cove.client.errors import RelayError
from cove.client.request import Request
from cove.client.transport import CoveClient

WINDOW = 256  # sends in flight on the socket (the relay reads 256 per socket before it stops reading)
ANSWER_S = 30.0  # the HTTP client's timeout: past it the send goes over HTTP, where it is stored at most once
_MESSAGES = re.compile("^" + paths.MESSAGES.replace("{account_id}", "([^/]+)") + "$")


class SocketGone(Exception):
    """The socket closed before the relay answered this send."""


class Socket(Protocol):
    async def send(self, message: str) -> None: ...


class SocketSender:
    """Sends on the socket the gateway's receive loop holds (the relay allows one socket per device)."""

    def __init__(self, window: int = WINDOW, answer_s: float = ANSWER_S) -> None:
        self._socket: Socket | None = None
        self._pending: dict[int, asyncio.Future[tuple[int, dict[str, Any]]]] = {}
        self._window = asyncio.Semaphore(window)
        self._ids = itertools.count(1)
        self._answer_s = answer_s

    @property
    def connected(self) -> bool:
        return self._socket is not None

    def attach(self, socket: Socket) -> None:
        self._socket = socket

    def detach(self) -> None:
        """The socket is gone: whatever was in flight goes again over HTTP."""
        self._socket = None
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(SocketGone())

    def answer(self, frame: dict[str, Any]) -> bool:
        """Take a ``response`` frame for one of this sender's sends; False for any other frame."""
        if frame.get("type") != "response":
            return False
        request_id = frame.get("request_id")
        future = self._pending.pop(request_id, None) if isinstance(request_id, int) else None
        if future is not None and not future.done():
            body = frame.get("body")
            future.set_result((int(frame.get("status") or 500), body if isinstance(body, dict) else {}))
        return True

    async def send(self, account_id: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """The relay's answer to one send, or None if it must go over HTTP instead; raises :class:`RelayError`
        for a refusal, as the HTTP path does."""
        async with self._window:
            socket = self._socket
            if socket is None:
                return None
            request_id = next(self._ids)
            future: asyncio.Future[tuple[int, dict[str, Any]]] = asyncio.get_running_loop().create_future()
            self._pending[request_id] = future
            frame = {**body, "type": "send", "request_id": request_id, "to": account_id}
            try:
                await socket.send(json.dumps(frame, separators=(",", ":")))
                async with asyncio.timeout(self._answer_s):
                    status, answer = await future
            except (SocketGone, TimeoutError, OSError, WebSocketException):
                return None
            finally:
                self._pending.pop(request_id, None)
        if status >= 400:
            raise RelayError(status, answer)
        return answer


class GatewayClient(CoveClient):
    """The business's Cove client, whose message sends take the socket while it is up."""

    def __init__(self, base_url: str, core: ClientCore, allowed: RouteAllowlist) -> None:
        super().__init__(base_url, core, allowed=allowed)
        self._allowed = allowed
        self.sender = SocketSender()

    async def _call(self, request: Request) -> dict[str, Any]:
        target = _MESSAGES.match(request.path) if request.method == "PUT" and request.json is not None else None
        if target is not None and self.sender.connected:
            url = httpx.URL(self.base_url + request.path)
            if not self._allowed.allows("PUT", url):  # the same rule as every HTTP request (the event hook)
                raise RouteNotAllowed("PUT", url)
            self._session_started()
            assert request.json is not None
            answer = await self.sender.send(unquote(target.group(1)), request.json)
            if answer is not None:
                return answer
        return await super()._call(request)
