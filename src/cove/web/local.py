"""Serving a page on this machine: bind first (port 0 picks a free one), say where, then serve on that socket."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

import uvicorn
from fastapi import FastAPI

from cove.cli_guard import CommandError


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


def serve(app: FastAPI, sock: socket.socket, ready: Callable[[str], None]) -> None:
    """Serve ``app`` on ``sock`` until interrupted; ``ready`` gets the base URL once the socket is bound."""
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    ready(f"http://{shown}:{port}")
    config = uvicorn.Config(app, log_level="warning", access_log=False, ws="none", lifespan="on")
    server = uvicorn.Server(config)
    asyncio.run(server.serve(sockets=[sock]))
