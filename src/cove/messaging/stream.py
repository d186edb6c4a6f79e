"""One socket's outbox: what waits for the connection's single writer, bounded in frames and bytes.

A client that does not read makes its outbox grow with every envelope, answer and error frame meant for it.
Rather than hold them, the stream gives up: a full outbox aborts the connection (close code 4408) and
drops what waited. Nothing is lost by that: envelopes are stored before they are offered and are sent again
from the queue when the device reconnects; an unanswered send is retried with the same client message id.
"""

from __future__ import annotations

import asyncio
from collections import deque
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
    """What the hub hands frames to. ``close`` lets queued frames leave first; a full outbox aborts."""

    def __init__(self, max_frames: int, max_bytes: int) -> None:
        self._max_frames = max_frames
        self._max_bytes = max_bytes
        self._items: deque[Item] = deque()
        self._bytes = 0
        self._changed = asyncio.Event()
        self._closing = asyncio.Event()
        self.close_code = 1000
        self.close_reason = ""
        self.aborted = False

    def offer(self, item: Item) -> None:
        if self._closing.is_set():
            return
        size = _size(item)
        # One frame larger than the byte bound still goes out alone: only a backlog means the client is not reading.
        if len(self._items) >= self._max_frames or (self._items and self._bytes + size > self._max_bytes):
            self.abort(CLOSE_NOT_READING, "not_reading: frames waited longer than the relay keeps them")
            return
        self._items.append(item)
        self._bytes += size
        self._changed.set()

    def close(self, code: int, reason: str) -> None:
        if not self._closing.is_set():
            self.close_code, self.close_reason = code, reason
            self._closing.set()
            self._changed.set()

    def abort(self, code: int, reason: str) -> None:
        """Close without sending what waits (the peer is not reading it)."""
        if not self._closing.is_set():
            self.aborted = True
            self._items.clear()
            self._bytes = 0
            self.close(code, reason)

    async def closing(self) -> None:
        await self._closing.wait()

    async def next_batch(self, limit: int) -> list[Item]:
        """Up to ``limit`` waiting items, in order, waiting for one; empty once the stream closes and is drained."""
        while not self._items:
            if self._closing.is_set():
                return []
            self._changed.clear()
            await self._changed.wait()
        batch = [self._items.popleft() for _ in range(min(limit, len(self._items)))]
        self._bytes -= sum(_size(item) for item in batch)
        return batch
