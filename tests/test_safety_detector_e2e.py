"""The detector through a real relay: an account that bursts gets an automatic action, on its own, within the
scoring interval, when automatic actions are on (the harness turns them off for every other test)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from cove.client.errors import RelayError
from cove.safety.verdicts import ReasonCode

BURST = 70  # over the rule's 60 in 15 s (throttle), under its 100 in 15 s from a new account (ban)


@pytest.fixture
def relay_env() -> dict[str, str]:
    return {"COVE_SAFETY_AUTOMATIC_ACTIONS": "true", "COVE_SAFETY_SCORE_INTERVAL_MS": "100"}


async def test_a_bursting_account_gets_an_automatic_step_and_its_recipient_none(users, relay):
    alice = await users.register("alice")
    bob = await users.register("bob")
    for n in range(BURST):  # in well under 15 s
        try:
            await alice.send_text(bob.core.account_id, f"hello {n}")
        except RelayError as error:  # the model, scoring every 100 ms, may step in before the rule's 60
            assert error.code in {"throttled", "challenge_required", "account_restricted"}, error
            break

    async def steps(user) -> list[dict]:  # noqa: ANN001
        async with httpx.AsyncClient(base_url=relay.url) as http:
            headers = {"Authorization": f"Bearer {user.core.token}"}
            return (await http.get("/v1/safety/status", headers=headers)).json()["steps"]

    for _ in range(100):  # scores come every 100 ms; a loaded machine may take a few seconds
        if taken := await steps(alice):
            break
        await asyncio.sleep(0.1)
    # The rule throttles; the model, scoring the same counters, may judge it worse (and a second batch escalate
    # the first's step): any steps short of a ban, each with its reason.
    assert taken, "no automatic step within 10 s"
    for step in taken:
        assert step["step"] in {"throttle", "challenge", "restrict"} and step["source"] in {"rule", "model"}
        assert ReasonCode(step["reason"])
    assert await steps(bob) == []
    await bob.send_text(alice.core.account_id, "hi")  # Bob, who only received, sends as before
