"""How ``cove serve`` runs uvicorn: the connection limits uvicorn does not have, as two protocol subclasses.

What uvicorn 0.55 (httptools) lacks, read in its source:

- No timer runs while a request's headers arrive: the keep-alive timer is armed only after a response and
  cancelled by any byte, so a client that sends half a request holds its connection forever (slowloris).
  :class:`HttpProtocol` closes a connection whose headers are not complete within ``header_timeout_seconds``.
- Nothing bounds the size of the headers (llhttp leaves that to its user; uvicorn appends every header it
  gets): :class:`HttpProtocol` answers ``431`` once more than ``max_header_bytes`` came without completing them.
- ``limit_concurrency`` counts all connections but answers in plain text, only once a request's headers are
  in, and never refuses a WebSocket upgrade; nothing limits one source address. :class:`ConnectionGate`
  counts open connections in total and per address when they are accepted; a connection over either limit
  is answered ``503``/``429`` with the relay's error body (after its headers, so the client reads it) and
  closed.
- Closing a WebSocket waits until the transport is writable, which never happens for a peer that stops
  reading. :class:`WebSocketProtocol` writes the close frame anyway and aborts the connection if the peer has
  not completed the close within ``ws_close_timeout_seconds``.

The source address is the TCP peer: behind a reverse proxy every client has the proxy's address, so raise
``max_connections_per_address`` there and let the proxy limit its clients.
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import os
import signal
import sys
from dataclasses import dataclass
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.utils import get_remote_addr
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request

from cove.config import Settings
from cove.messaging.routes import websocket_asgi
from cove.safety.connections import Occupancy

_TOTAL = "*"


@dataclass(frozen=True)
class Refusal:
    status: int
    message: str

    async def __call__(self, scope: dict[str, Any], _receive: Any, send: Any) -> None:  # noqa: ANN401 - ASGI
        """An ASGI app that answers every request of a refused connection, then lets it close."""
        body = orjson.dumps({"error": {"code": "too_many_connections", "message": self.message}})
        headers = [(b"content-type", b"application/json"), (b"connection", b"close"), (b"retry-after", b"10")]
        prefix = "websocket.http" if scope["type"] == "websocket" else "http"
        await send({"type": f"{prefix}.response.start", "status": self.status, "headers": headers})
        await send({"type": f"{prefix}.response.body", "body": body})


_HEADERS_TOO_LARGE_BODY = b'{"error": {"code": "headers_too_large", "message": "the request headers are too large"}}'
_HEADERS_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\nconnection: close\r\n"
    + b"content-length: %d\r\n\r\n" % len(_HEADERS_TOO_LARGE_BODY)
    + _HEADERS_TOO_LARGE_BODY
)

TOTAL_REFUSAL = Refusal(503, "the relay has as many open connections as it accepts; retry later")
ADDRESS_REFUSAL = Refusal(429, "too many open connections from this address; close some or retry later")


class ConnectionGate:
    """Open connections, counted per transport: an upgraded WebSocket keeps the slot its HTTP request took."""

    def __init__(self, total: int, per_address: int) -> None:
        self._total = Occupancy(total)
        self._per_address = Occupancy(per_address)
        self._admitted: dict[asyncio.BaseTransport, str] = {}
        self._refused: dict[asyncio.BaseTransport, Refusal] = {}

    def open(self, transport: asyncio.BaseTransport) -> Refusal | None:
        remote = get_remote_addr(transport)  # type: ignore[arg-type]
        address = remote[0] if remote else ""
        if not self._total.acquire(_TOTAL):
            refusal = TOTAL_REFUSAL
        elif not self._per_address.acquire(address):
            self._total.release(_TOTAL)
            refusal = ADDRESS_REFUSAL
        else:
            self._admitted[transport] = address
            return None
        self._refused[transport] = refusal
        return refusal

    def refusal(self, transport: asyncio.BaseTransport) -> Refusal | None:
        return self._refused.get(transport)

    def close(self, transport: asyncio.BaseTransport) -> None:
        self._refused.pop(transport, None)
        address = self._admitted.pop(transport, None)
        if address is not None:
            self._per_address.release(address)
            self._total.release(_TOTAL)


class HttpProtocol(HttpToolsProtocol):
    def __init__(
        self,
        *args: Any,  # noqa: ANN401
        gate: ConnectionGate,
        header_timeout: float,
        max_header_bytes: int,
        **kwargs: Any,  # noqa: ANN401
    ) -> None:
        super().__init__(*args, **kwargs)
        self._gate = gate
        self._header_timeout = header_timeout
        self._header_timer: asyncio.TimerHandle | None = None
        self._max_header_bytes = max_header_bytes
        self._header_bytes = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        refusal = self._gate.open(transport)
        if refusal is not None:
            self.app = refusal
        self._start_header_timer()

    def data_received(self, data: bytes) -> None:
        # A new request starts (on a fresh or a kept-alive connection): its headers are due in time.
        if self.cycle is None or self.cycle.response_complete:
            self._start_header_timer()
        super().data_received(data)
        if self._header_timer is not None and not self.transport.is_closing():
            self._header_bytes += len(data)
            if self._header_bytes > self._max_header_bytes:
                self._stop_header_timer()
                self.transport.write(_HEADERS_TOO_LARGE)
                self.transport.close()

    def on_headers_complete(self) -> None:
        self._stop_header_timer()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_header_timer()
        self._gate.close(self.transport)
        super().connection_lost(exc)

    def _start_header_timer(self) -> None:
        if self._header_timer is None:
            self._header_bytes = 0
            self._header_timer = self.loop.call_later(self._header_timeout, self._headers_too_slow)

    def _stop_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        self.transport.close()


class _Inbox:
    """What uvicorn's protocol uses of its ``asyncio.Queue`` of ASGI events, for one reader: a list and a future
    while the reader waits. An ``asyncio.Queue`` holds three deques (760 bytes each, empty) per connection."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: Any) -> None:  # noqa: ANN401 - an ASGI event
        self._items.append(item)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def empty(self) -> bool:
        return not self._items

    async def get(self) -> Any:  # noqa: ANN401 - an ASGI event
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.pop(0)


class _Flag:
    """What uvicorn's protocol uses of ``asyncio.Event`` for ``writable``, without its deque of waiters."""

    __slots__ = ("_set", "_waiters")

    def __init__(self) -> None:
        self._set = True
        self._waiters: list[asyncio.Future[None]] = []

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> None:
        if self._set:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            if waiter in self._waiters:  # cancelled while waiting: not kept until the next set()
                self._waiters.remove(waiter)


class WebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O WebSocket protocol, lighter per connection (most sockets sit idle for hours):

    - its event queue and ``writable`` event are replaced by :class:`_Inbox` and :class:`_Flag`;
    - the handshake request and response (their headers) are dropped once the handshake is answered;
    - a path in ``direct`` is served by that ASGI app straight from here, not through the FastAPI application
      (its middleware, routing and dependency frames, and the scope copies they make, last as long as the socket).
    """

    def __init__(
        self,
        *args: Any,  # noqa: ANN401
        gate: ConnectionGate,
        close_timeout: float,
        direct: dict[str, Any],
        **kwargs: Any,  # noqa: ANN401
    ) -> None:
        super().__init__(*args, **kwargs)
        self._gate = gate
        self.close_timeout = close_timeout
        self._direct = direct
        self.queue = _Inbox()  # type: ignore[assignment]
        self.writable = _Flag()  # type: ignore[assignment]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        refusal = self._gate.refusal(transport)
        if refusal is not None:
            self.app = refusal

    def connection_lost(self, exc: Exception | None) -> None:
        self._gate.close(self.transport)
        super().connection_lost(exc)

    def handle_connect(self, event: Request) -> None:
        endpoint = self._direct.get(event.path.partition("?")[0])
        direct = endpoint is not None and not isinstance(self.app, Refusal)
        if direct:
            self.app = endpoint
        super().handle_connect(event)
        if direct and self.response.status_code == 101:
            self.scope["app"] = _application(self.config.loaded_app)  # as Starlette sets it: the relay is in its state
        # Read into the scope above. websockets' ServerProtocol.parse goes on parsing frames for the connection's
        # whole life with the request in its frame: emptied, its headers are not kept that long.
        event.headers.clear()
        del self.request

    async def send(self, message: Any) -> None:  # noqa: ANN401 - an ASGI message
        closing = message["type"] == "websocket.close" and self.handshake_complete and self.initial_response is None
        if closing and not self.writable.is_set() and not (self.close_sent or self.disconnected):
            # The peer stopped reading: the close frame goes behind what it has not read, without waiting.
            code, reason = message.get("code", 1000), message.get("reason") or ""
            self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
            self.conn.send_close(code, reason)
            self.transport.write(b"".join(self.conn.data_to_send()))
            self.close_sent = True
        else:
            await super().send(message)
        if message["type"] == "websocket.accept":
            self.response = None  # type: ignore[assignment] # sent: uvicorn reads it only to accept
        if closing and self.close_sent and not self.transport.is_closing():
            # uvicorn's own timer only closes, which waits for a flush that a non-reading peer never allows.
            if self.close_timer is not None:
                self.close_timer.cancel()
            self.close_timer = self.loop.call_later(self.close_timeout, self.transport.abort)


def _application(app: Any) -> Any:  # noqa: ANN401 - an ASGI app
    """The application under uvicorn's wrappers (proxy headers, ...): with ``--workers`` uvicorn builds it from
    an import string, so ``config.app`` is that string and only the loaded app is the application."""
    while not hasattr(app, "state") and hasattr(app, "app"):
        app = app.app
    return app


# WebSocket paths served without the application's middleware and routing; see WebSocketProtocol.
DIRECT_WEBSOCKETS = {"/v1/websocket": websocket_asgi}


# Set by `cove serve --workers N` to its own pid, for the workers it starts.
SUPERVISOR_ENV = "COVE_SERVE_SUPERVISOR"
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def follow_supervisor() -> None:
    """In a worker of ``cove serve --workers``: end (SIGTERM, a graceful stop) when the supervisor ends, even by
    SIGKILL, which lets it tell nobody. Otherwise its workers outlive it, holding the port, and a restarted
    supervisor cannot bind it. Linux only; elsewhere a no-op."""
    supervisor = os.environ.get(SUPERVISOR_ENV)
    if not supervisor or not sys.platform.startswith("linux"):
        return
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != int(supervisor):  # it ended before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """The ``uvicorn.run`` options that apply the relay's connection limits and timeouts."""
    gate = ConnectionGate(settings.max_connections, settings.max_connections_per_address)
    return {
        "http": functools.partial(
            HttpProtocol,
            gate=gate,
            header_timeout=settings.header_timeout_seconds,
            max_header_bytes=settings.max_header_bytes,
        ),
        "ws": functools.partial(
            WebSocketProtocol, gate=gate, close_timeout=settings.ws_close_timeout_seconds, direct=DIRECT_WEBSOCKETS
        ),
        "ws_max_size": settings.ws_max_frame_bytes,
    }
