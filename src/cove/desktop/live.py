"""Live updates for the open pages: the event pump publishes what changed, each open page (an EventSource) gets
it as a server-sent event naming what to reload. Every queue is bounded: a page that does not read loses its
oldest signals, which is harmless since each only says "reload this part"."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

MAX_PAGES = 16  # open tabs of one app; beyond it the oldest listener is dropped
QUEUE = 64
CONNECTED = "connected"


class LiveHub:
    def __init__(self) -> None:
        self._queues: list[asyncio.Queue[str]] = []

    def publish(self, what: str) -> None:
        """``what``: the name of the part to reload, e.g. ``chats``, ``chat:+14155550101``, ``privacy``."""
        for queue in self._queues:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(what)

    async def listen(self) -> AsyncIterator[str]:
        """The signals from now on. The first, ``connected``, comes once this listener is subscribed: what was
        published between the page's rendering and its subscription is missed, so a page reloads its live parts on
        it (and on every reconnection)."""
        queue: asyncio.Queue[str] = asyncio.Queue(QUEUE)
        if len(self._queues) >= MAX_PAGES:
            self._queues.pop(0)
        self._queues.append(queue)
        try:
            yield CONNECTED
            while True:
                yield await queue.get()
        finally:
            if queue in self._queues:
                self._queues.remove(queue)
