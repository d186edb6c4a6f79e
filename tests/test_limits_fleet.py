"""Limits through the HTTP API of real relays: two relay processes on one PostgreSQL database and one Redis
allow each limit once between them; and a relay whose Redis is unreachable refuses what fails closed with 503
``limiter_unavailable`` and serves what fails open (cove.limits.table)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cove.testing import CodeInbox, RelayProcess
from test_errors import assert_error, register

ALICE, BOB, VICTIM = "+14155550101", "+14155550102", "+14155550171"
UNREACHABLE = "redis://127.0.0.1:1/0"
SMALL_LIMITS = {
    "COVE_CODE_MAX_SENDS": "2",
    "COVE_DISCOVERY_BUCKET_SIZE": "3",
    "COVE_DISCOVERY_REFILL_PER_SECOND": "0.001",
    "COVE_SECRET_KEY": "one fleet, one code secret",
}


@pytest.fixture
def fleet(
    database_url: str, tmp_path: Path, code_inbox: CodeInbox, redis_env: dict[str, str]
) -> Iterator[list[httpx.Client]]:
    """Two relay processes sharing the database and Redis, as behind a load balancer; a client for each."""
    relays = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        relays.append(
            RelayProcess(database_url, tmp_path / name, code_inbox.url, {**SMALL_LIMITS, **redis_env}, preloaded=True)
        )
    try:
        for relay in relays:
            relay.start()
        clients = [httpx.Client(base_url=relay.url, timeout=30) for relay in relays]
        yield clients
        for client in clients:
            client.close()
    finally:
        for relay in relays:
            relay.stop()


def ask_code(http: httpx.Client, phone: str) -> httpx.Response:
    return http.post("/v1/verification/code", json={"phone_number": phone}, headers={"X-Forwarded-For": "203.0.113.7"})


def look_up(http: httpx.Client, auth: dict[str, str]) -> httpx.Response:
    return http.post("/v1/directory/lookup", json={"phone_numbers": [BOB]}, headers=auth)


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_two_relays_allow_each_limit_once_between_them(fleet, code_inbox):
    a, b = fleet
    assert [ask_code(a, VICTIM).status_code, ask_code(b, VICTIM).status_code] == [202, 202]
    error = assert_error(ask_code(a, VICTIM), 429, "too_many_codes")  # each relay alone would allow 2
    assert error["limit"] == "number"

    alice = register(a, code_inbox, ALICE)
    assert [look_up(r, alice.auth).status_code for r in (a, b, a)] == [200, 200, 200]
    limited = look_up(b, alice.auth)
    assert assert_error(limited, 429, "rate_limited")["retry_after"] > 0
    assert int(limited.headers["Retry-After"]) > 0


@pytest.fixture
def relay_env(redis_env: dict[str, str]) -> dict[str, str]:
    return redis_env


def test_with_redis_unreachable_closed_limits_answer_503_and_open_ones_serve(relay, code_inbox):
    with httpx.Client(base_url=relay.url, timeout=30) as http:
        alice, bob = register(http, code_inbox, ALICE), register(http, code_inbox, BOB)
    relay.env["COVE_REDIS_URL"] = UNREACHABLE
    relay.restart()
    with httpx.Client(base_url=relay.url, timeout=30) as http:
        # Open: fetching keys to start a chat goes on, counted by this relay alone.
        assert http.get(f"/v1/keys/{bob.account_id}", headers=alice.auth).status_code == 200
        # Closed: an SMS, a directory harvest, a 128 MiB hash are refused until the limits can be checked.
        refusals = [
            ask_code(http, VICTIM),
            look_up(http, alice.auth),
            http.put("/v1/accounts/me/registration-lock", json={"pin": "480731"}, headers=alice.auth),
        ]
        for refused in refusals:
            error = assert_error(refused, 503, "limiter_unavailable")
            assert refused.headers["Retry-After"] == "1" and "retry" in error["message"]
    log = relay.log()
    assert "Traceback" not in log
    assert log.count("limit store (Redis) is unreachable") == 1  # a warning, not a line per request
