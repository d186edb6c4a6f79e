"""The detector through a real relay: an account that bursts gets an automatic action, on its own, within the
scoring interval, when automatic actions are on (the harness turns them off for every other test)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from cove.client.transport import RelayError  # noqa: E402


@pytest.fixture
def relay_env() -> dict[str, str]:
    return {"COVE_SAFETY_AUTOMATIC_ACTIONS": "true", "COVE_SAFETY_SCORE_INTERVAL_MS": "100"}


async def test_a_bursting_account_is_throttled_automatically(users, relay):
    alice = await users.register("alice")
    bob = await users.register("bob")
    refused, sent = None, 0
    for _ in range(200):  # the rule fires at 60 in 15 s; the model may well act sooner
        try:
            await alice.send_text(bob.core.account_id, f"hello {sent}")
            sent += 1
        except RelayError as e:
            refused = e
            break
        if sent >= 60:
            await asyncio.sleep(0.05)  # scores come every 100 ms; the throttle's own bucket may pass a few first
    assert refused is not None and refused.status == 429 and refused.code == "throttled", sent
    async with httpx.AsyncClient(base_url=relay.url) as http:
        status = (await http.get("/v1/safety/status", headers={"Authorization": f"Bearer {alice.core.token}"})).json()
    [step] = status["steps"]
    assert step["step"] == "throttle" and step["source"] in {"rule", "model"}
    assert step["reason"] == refused.details["reason"]
    # Bob, who only received, is untouched.
    await bob.send_text(alice.core.account_id, "hi")
