"""Bans: the verdict rules, and `cove safety ban|unban|list` against a running relay (another process)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time

import httpx
import pytest
from sqlalchemy import select
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from cove.client.transport import RelayError
from cove.db import create_engine
from cove.errors import ApiError
from cove.safety import verdicts
from cove.safety.storage import banned_numbers, safety_verdicts
from cove.safety.verdicts import ReasonCode, Verdict
from cove.testing import run_cove


# pure rules -------------------------------------------------------------------------------------------
def test_reason_codes_are_a_closed_list():
    assert [r.value for r in ReasonCode] == [
        "spam",
        "bulk_messaging",
        "abuse",
        "fraud",
        "impersonation",
        # the detector's (cove.safety.rules, cove.safety.detector)
        "burst_from_new_account",
        "many_groups",
        "reported_by_users",
        "unsolicited_fan_out",
    ]
    assert verdicts.parse_reason("fraud") is ReasonCode.FRAUD
    with pytest.raises(ApiError) as unknown:
        verdicts.parse_reason("rude")
    assert unknown.value.code == "unknown_reason" and "impersonation" in unknown.value.message


def test_banning_lifting_and_banning_again():
    first = verdicts.ban(None, "acc", ReasonCode.SPAM, 100)
    assert first == Verdict("acc", ReasonCode.SPAM, 100) and first.active
    assert verdicts.ban(first, "acc", ReasonCode.FRAUD, 200) == Verdict("acc", ReasonCode.FRAUD, 100)
    lifted = verdicts.lift(first, 300)
    assert lifted == Verdict("acc", ReasonCode.SPAM, 100, 300) and not lifted.active
    assert verdicts.lift(lifted, 400) is None and verdicts.lift(None, 400) is None
    assert verdicts.ban(lifted, "acc", ReasonCode.ABUSE, 500) == Verdict("acc", ReasonCode.ABUSE, 500)


def test_a_banned_number_hears_why():
    refused = verdicts.banned_error(ReasonCode.BULK_MESSAGING)
    assert (refused.status, refused.code) == (403, "account_banned")
    assert refused.body()["error"]["reason"] == "bulk_messaging" and "bulk" in refused.message


# through a real relay ---------------------------------------------------------------------------------
@pytest.fixture
def relay_env() -> dict[str, str]:
    return {"COVE_FLEET_POLL_SECONDS": "0.3"}


def cove(relay, *args: str) -> subprocess.CompletedProcess:  # noqa: ANN001
    return run_cove(list(args), relay.env)


async def safety_rows(relay) -> tuple[list, list]:  # noqa: ANN001
    engine = create_engine(relay.database_url)
    try:
        async with engine.connect() as conn:
            verdict_rows = (await conn.execute(select(safety_verdicts))).all()
            return verdict_rows, (await conn.execute(select(banned_numbers))).all()
    finally:
        await engine.dispose()


async def until_refused(token: str, url: str, within: float) -> float:
    """Seconds until the relay refuses the token (it caches tokens for at most 5 s)."""
    started = time.monotonic()
    async with httpx.AsyncClient() as http:
        while time.monotonic() - started < within:
            answer = await http.get(f"{url}/v1/keys/count", headers={"Authorization": f"Bearer {token}"})
            if answer.status_code == 401:
                return time.monotonic() - started
            await asyncio.sleep(0.1)
    raise AssertionError(f"the token still works after {within} s")


async def test_a_banned_number_is_logged_out_and_cannot_register_until_unbanned(users, relay):
    alice = await users.register("alice", "+14155550131")
    bob = await users.register("bob")
    url = alice.base_url.replace("http", "ws") + "/v1/websocket"
    socket = await connect(url, additional_headers={"Authorization": f"Bearer {alice.core.token}"})
    assert json.loads(await socket.recv())["type"] == "queue_empty"

    banned = cove(relay, "safety", "ban", "+1 415 555 0131", "--reason", "spam")
    assert banned.returncode == 0, banned.stderr
    said = " ".join(banned.stdout.split())
    assert alice.core.account_id in said and "1 device(s) logged out" in said

    # The open socket is closed by the relay's sweep; the token is refused within the cache's 5 s.
    with pytest.raises(ConnectionClosed) as closed:
        await asyncio.wait_for(socket.recv(), 5)
    assert closed.value.rcvd.code == 4401 and "banned" in closed.value.rcvd.reason
    assert await until_refused(alice.core.token, relay.url, within=6) < 6

    verdict_rows, number_rows = await safety_rows(relay)
    assert [(v.account_id, v.reason_code, v.lifted_at_ms) for v in verdict_rows] == [
        (alice.core.account_id, "spam", None)
    ]
    assert [(n.phone_number, n.reason_code, n.account_id) for n in number_rows] == [
        ("+14155550131", "spam", alice.core.account_id)
    ]

    again = users.client("alice-new-phone")
    with pytest.raises(RelayError) as no_code:
        await again.request_code("+14155550131")
    assert (no_code.value.status, no_code.value.code) == (403, "account_banned")
    assert no_code.value.details["reason"] == "spam"
    with pytest.raises(RelayError) as no_registration:
        await again.register("+14155550131", "123456")
    assert (no_registration.value.status, no_registration.value.code) == (403, "account_banned")

    listed = cove(relay, "safety", "list")
    assert listed.returncode == 0 and "+14155550131" in listed.stdout and "spam" in listed.stdout

    # Bob is untouched.
    assert (await bob.call(bob.core.key_count()))["one_time_keys"] > 0

    lifted = cove(relay, "safety", "unban", "+14155550131")
    assert lifted.returncode == 0, lifted.stderr
    verdict_rows, number_rows = await safety_rows(relay)
    assert number_rows == [] and verdict_rows[0].lifted_at_ms is not None
    assert verdict_rows[0].updated_at_ms >= verdict_rows[0].lifted_at_ms
    back = await users.register("alice-new-phone", "+14155550131")
    assert back.core.account_id == alice.core.account_id  # the same account, on a new identity
    assert cove(relay, "safety", "unban", "+14155550131").returncode == 1  # not banned any more
    assert "no number is banned" in cove(relay, "safety", "list").stdout


async def test_a_number_without_an_account_can_be_banned_before_it_registers(users, relay):
    banned = cove(relay, "safety", "ban", "+14155550132", "--reason", "fraud")
    assert banned.returncode == 0 and "has no account" in " ".join(banned.stdout.split())
    client = users.client("mallory")
    with pytest.raises(RelayError) as refused:
        await client.request_code("+14155550132")
    assert refused.value.code == "account_banned" and "fraud" in str(refused.value)
    verdict_rows, number_rows = await safety_rows(relay)
    assert verdict_rows == [] and [(n.phone_number, n.account_id) for n in number_rows] == [("+14155550132", None)]

    wrong = cove(relay, "safety", "ban", "+14155550133", "--reason", "rudeness")
    assert wrong.returncode == 2  # not a reason code
    invalid = cove(relay, "safety", "ban", "12", "--reason", "spam")
    assert invalid.returncode == 1 and "not a phone number" in " ".join(invalid.stderr.split())

    assert cove(relay, "safety", "unban", "+14155550132").returncode == 0
    await users.register("mallory", "+14155550132")
