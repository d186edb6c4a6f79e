"""Linking companion devices in tests, the way two devices of a person do it: the companion opens a channel and
waits, the primary reads its code and answers (concurrently, over the real relay)."""

from __future__ import annotations

import asyncio

from conftest import Users
from cove.client import linking
from cove.client.transport import CoveClient


async def link(users: Users, primary: CoveClient, name: str) -> CoveClient:
    companion = users.client(name)
    pending = await linking.open_link(companion)
    registered, device_id = await asyncio.gather(
        linking.finish_link(companion, pending), linking.link_companion(primary, pending.code)
    )
    assert registered["device_id"] == device_id
    return companion
