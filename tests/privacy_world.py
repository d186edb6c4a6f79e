"""What the export and erasure tests share: the default policy published on a test's relay, opening now, and
users who accepted it with their choices, through the SDK as an app would."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

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


async def notice_for(client: CoveClient) -> dict[str, Any]:
    """The notice due to ``client``, once the relay has picked up the published policy (a poll, not a guess)."""
    async with asyncio.timeout(15):
        while (notice := await client.pending_notice()) is None:  # noqa: ASYNC110 - the relay has no event for it
            await asyncio.sleep(0.05)
    return notice


async def onboard(client: CoveClient, choices: dict[str, str]) -> None:
    """Accept the notice once the relay serves it (it has to read the publish first), then make each choice."""
    await client.accept_terms(await notice_for(client), "adult")
    for purpose, choice in choices.items():
        await client.choose(purpose, choice)
