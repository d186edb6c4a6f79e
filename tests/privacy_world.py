"""What the export and erasure tests share: the default policy published on a test's relay, opening now, and
users who accepted it with their choices, through the SDK as an app would."""

from __future__ import annotations

import asyncio
from pathlib import Path

from cove.client.transport import CoveClient
from cove.consent import service
from cove.db import create_engine
from cove.testing import policy_opening_now

DEFAULT = Path(__file__).resolve().parents[1] / "policies" / "cove-default.toml"
# Sees a publish at once (the relay polls for it every 0.3 s) and serves the notice as soon as it is due.
RELAY_ENV = {"COVE_NOTICE_INTERVAL_SECONDS": "0.3", "COVE_FLEET_POLL_SECONDS": "0.3"}


async def publish(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        await service.publish(engine, policy_opening_now(DEFAULT))
    finally:
        await engine.dispose()


async def onboard(client: CoveClient, choices: dict[str, str]) -> None:
    """Accept the notice once the relay serves it (it has to read the publish first), then make each choice."""
    for _ in range(200):
        notice = await client.pending_notice()
        if notice:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("no privacy notice became due")
    await client.accept_terms(notice, "adult")
    for purpose, choice in choices.items():
        await client.choose(purpose, choice)
