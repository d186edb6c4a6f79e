"""Last seen: refreshed by any authenticated request or WebSocket connect, at most once an hour per device.

The catalogue exports last seen as a day, so an hour's precision is plenty, and a device that reconnects
all day costs one write an hour, not one per connect. Each process remembers when it last refreshed a
device, so most connects cost no statement at all; the conditional UPDATE keeps several processes from
writing more often than that either.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.ext.asyncio import AsyncEngine

from cove.accounts import storage
from cove.clock import now_ms

log = logging.getLogger("cove.accounts")

REFRESH_MS = 3_600_000
MAX_REMEMBERED = 200_000


class Presence:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._next_refresh: dict[tuple[str, int], int] = {}
        self._writes: set[asyncio.Task[None]] = set()

    def connected(self, account_id: str, device_id: int) -> None:
        """Note a connect; the write, when one is due, runs beside the connection rather than before it."""
        now = now_ms()
        key = (account_id, device_id)
        if self._next_refresh.get(key, 0) > now:
            return
        if len(self._next_refresh) >= MAX_REMEMBERED:
            self._next_refresh.clear()
        self._next_refresh[key] = now + REFRESH_MS
        task = asyncio.create_task(self._touch(account_id, device_id, now))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _touch(self, account_id: str, device_id: int, now: int) -> None:
        try:
            async with self._engine.begin() as conn:
                await storage.touch_last_seen(conn, account_id, device_id, now, REFRESH_MS)
        except Exception:
            log.exception("could not refresh last seen of a device")

    async def drain(self) -> None:
        """Wait for refreshes under way (on shutdown)."""
        if self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)
