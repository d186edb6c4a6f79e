"""Serving a page on this machine: bind first (port 0 picks a free one), say where, then serve on that socket."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Sequence

import uvicorn
from fastapi import FastAPI

from cove.cli_guard import CommandError

GRACE_SECONDS = 2  # what requests under way get to finish once the server is asked to stop


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise CommandError(f"cannot listen on {host}:{port}: {exc.strerror} (choose another --port)") from None
    # Listening now, before the URL is printed: a browser that opens it while the server still starts waits in
    # the backlog instead of being refused.
    sock.listen(128)
    return sock


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, stopping: Sequence[Callable[[], None]]) -> None:
        super().__init__(config)
        self._stopping = stopping

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for hook in self._stopping:
            hook()
        await super().shutdown(sockets)


def serve(app: FastAPI, sock: socket.socket, ready: Callable[[str], None]) -> None:
    """Serve ``app`` on ``sock`` until interrupted; ``ready`` gets the base URL once the socket is bound."""
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    ready(f"http://{shown}:{port}")
    # A stream of server-sent events never ends by itself: ``app.state.stopping_hooks`` end them when the server
    # begins to stop (uvicorn waits for open requests before the lifespan's shutdown), and the grace period
    # bounds anything else, so Ctrl-C never waits for every tab to close.
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, ws="none", lifespan="on", timeout_graceful_shutdown=GRACE_SECONDS
    )
    server = _Server(config, getattr(app.state, "stopping_hooks", ()))
    asyncio.run(server.serve(sockets=[sock]))
