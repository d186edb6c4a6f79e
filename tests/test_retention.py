"""Envelopes nobody collects expire after the configured retention (30 days by default)."""

from __future__ import annotations

import asyncio

import pytest

from helpers import server_rows, texts

RETENTION_SECONDS = 1.5


@pytest.fixture
def relay_env() -> dict[str, str]:
    return {
        "COVE_MESSAGE_RETENTION_DAYS": str(RETENTION_SECONDS / 86_400),
        "COVE_PURGE_INTERVAL_SECONDS": "0.2",
    }


async def test_uncollected_envelopes_are_deleted_after_the_retention(users, relay):
    alice = await users.register("alice")
    bob = await users.register("bob")
    await alice.send_text(bob.core.account_id, "too late")
    assert [t for t, _ in await server_rows(relay.database_url)].count("envelopes") == 1

    await asyncio.sleep(RETENTION_SECONDS + 1.0)
    assert [t for t, _ in await server_rows(relay.database_url)].count("envelopes") == 0
    assert texts(await bob.inbox()) == []

    await alice.send_text(bob.core.account_id, "in time")
    assert texts(await bob.inbox()) == ["in time"]
