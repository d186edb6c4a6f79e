"""Cached reads of who-has-which-devices and whose token this is, on the hot paths of send and auth.

An entry is dropped in every relay process when its account changes (re-registration, logout, ban, deletion,
business flag: events of cove.events, which reach other processes through cove.fleet within milliseconds, or
within ``COVE_FLEET_POLL_SECONDS`` when the bus lost them). The TTL only bounds how long an entry could outlive
a change whose event was never written (a crash between the commit and the event's own write).
"""

from __future__ import annotations

import time

from sqlalchemy.ext.asyncio import AsyncEngine

from cove.accounts import storage
from cove.accounts.storage import DeviceRecord
from cove.accounts.tokens import token_digest

TTL_SECONDS = 60.0
MAX_ENTRIES = 200_000


class DeviceDirectory:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._devices: dict[str, tuple[float, list[DeviceRecord]]] = {}
        self._tokens: dict[str, tuple[float, DeviceRecord | None]] = {}

    async def devices_of(self, account_id: str) -> list[DeviceRecord]:
        """The account's devices; an empty list when there is no such account."""
        hit = self._devices.get(account_id)
        now = time.monotonic()
        if hit and hit[0] > now:
            return hit[1]
        async with self._engine.connect() as conn:
            found = await storage.devices_of(conn, account_id)
        self._remember(self._devices, account_id, (now + TTL_SECONDS, found))
        return found

    async def authenticate(self, token: str) -> DeviceRecord | None:
        digest = token_digest(token)
        hit = self._tokens.get(digest)
        now = time.monotonic()
        if hit and hit[0] > now:
            return hit[1]
        async with self._engine.connect() as conn:
            found = await storage.device_by_token_hash(conn, digest)
        self._remember(self._tokens, digest, (now + TTL_SECONDS, found))
        return found

    def forget(self, account_id: str) -> None:
        self._devices.pop(account_id, None)
        self._tokens = {k: v for k, v in self._tokens.items() if v[1] is None or v[1].account_id != account_id}

    @staticmethod
    def _remember(cache: dict, key: str, value: tuple) -> None:  # noqa: ANN001
        if len(cache) >= MAX_ENTRIES:
            cache.clear()
        cache[key] = value
