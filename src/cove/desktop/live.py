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
        self._queues: list[asyncio.Queue[str | None]] = []
        self._closed = False

    def publish(self, what: str) -> None:
        """``what``: the name of the part to reload, e.g. ``chats``, ``chat-ID``, ``privacy``."""
        for queue in self._queues:
            _put(queue, what)

    def close(self) -> None:
        """The app stops: every listener ends (an open page's stream would otherwise hold the server up)."""
        self._closed = True
        for queue in self._queues:
            _put(queue, None)

    async def listen(self) -> AsyncIterator[str]:
        """The signals from now on. The first, ``connected``, comes once this listener is subscribed: what was
        published between the page's rendering and its subscription is missed, so a page reloads its live parts on
        it (and on every reconnection)."""
        if self._closed:
            return
        queue: asyncio.Queue[str | None] = asyncio.Queue(QUEUE)
        if len(self._queues) >= MAX_PAGES:
            _put(self._queues.pop(0), None)  # its stream ends, rather than wait for a signal that never comes
        self._queues.append(queue)
        try:
            yield CONNECTED
            while (what := await queue.get()) is not None:
                yield what
        finally:
            if queue in self._queues:
                self._queues.remove(queue)


def _put(queue: asyncio.Queue[str | None], what: str | None) -> None:
    """Never blocks: a full queue loses its oldest signal (None, the end, is always last in)."""
    if queue.full():
        queue.get_nowait()
    queue.put_nowait(what)
