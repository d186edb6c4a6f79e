"""One socket's outbox: what waits for the connection's single writer, bounded in frames and bytes.

A client that does not read makes its outbox grow with every envelope, answer and error frame meant for it.
Rather than hold them, the stream gives up: a full outbox aborts the connection (close code 4408) and
drops what waited. Nothing is lost by that: envelopes are stored before they are offered and are sent again
from the queue when the device reconnects; an unanswered send is retried with the same client message id.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from cove.messaging.envelope import Envelope
from cove.messaging.hub import CLOSE_NOT_READING, Rescan

Item = Envelope | dict[str, Any] | Rescan

# What a frame costs beyond its ciphertext, roughly: its JSON fields, or a small frame (answer, error) whole.
_FRAME_BYTES = 256


def _size(item: Item) -> int:
    if isinstance(item, Envelope):
        return len(item.body) * 4 // 3 + _FRAME_BYTES  # sent as base64
    if isinstance(item, dict):
        return len(item.get("body") or "") + _FRAME_BYTES  # an envelope from another process is a frame already
    return _FRAME_BYTES


class SocketStream:
    """What the hub hands frames to. ``close`` lets queued frames leave first; a full outbox aborts.

    Kept small: one lives for every connected device, idle almost always. A list rather than a deque (an empty
    deque takes over 600 bytes), one future only while the writer waits rather than two events, each with a deque.
    """

    __slots__ = (
        "_max_frames",
        "_max_bytes",
        "_items",
        "_bytes",
        "_waiter",
        "_closing",
        "on_close",
        "close_code",
        "close_reason",
        "aborted",
    )

    def __init__(self, max_frames: int, max_bytes: int) -> None:
        self._max_frames = max_frames
        self._max_bytes = max_bytes
        self._items: list[Item] = []
        self._bytes = 0
        self._waiter: asyncio.Future[None] | None = None
        self._closing = False
        # Called once, when the stream starts closing: the connection's writer may be blocked on a client that
        # does not read, and must be stopped from outside.
        self.on_close: Callable[[], None] | None = None
        self.close_code = 1000
        self.close_reason = ""
        self.aborted = False

    def offer(self, item: Item) -> None:
        if self._closing:
            return
        size = _size(item)
        # One frame larger than the byte bound still goes out alone: only a backlog means the client is not reading.
        if len(self._items) >= self._max_frames or (self._items and self._bytes + size > self._max_bytes):
            self.abort(CLOSE_NOT_READING, "not_reading: frames waited longer than the relay keeps them")
            return
        self._items.append(item)
        self._bytes += size
        self._wake()

    def close(self, code: int, reason: str) -> None:
        if not self._closing:
            self.close_code, self.close_reason = code, reason
            self._closing = True
            self._wake()
            if self.on_close is not None:
                self.on_close()

    def abort(self, code: int, reason: str) -> None:
        """Close without sending what waits (the peer is not reading it)."""
        if not self._closing:
            self.aborted = True
            self._items.clear()
            self._bytes = 0
            self.close(code, reason)

    async def next_batch(self, limit: int) -> list[Item]:
        """Up to ``limit`` waiting items, in order, waiting for one; empty once the stream closes and is drained."""
        while not self._items:
            if self._closing:
                return []
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        batch = self._items[:limit]
        del self._items[:limit]
        self._bytes -= sum(_size(item) for item in batch)
        return batch

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
