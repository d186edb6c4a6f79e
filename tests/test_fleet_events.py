"""Events between capabilities cross the fleet: an account deleted or a device logged out through one relay
process closes its sockets on the other (cove.events' handlers run in every process)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from cove.accounts.deletion import CLOSE_REASON
from cove.accounts.service import LOGGED_OUT
from test_fleet import database_url, fleet, fleet_extra_env, nats_server  # noqa: F401 - the fleet's fixtures


async def _closed_on(relay_url: str, token: str, act) -> tuple[int, str]:  # noqa: ANN001
    """Open the device's socket on one process, ``act`` through the other, and return how the socket closed."""
    headers = {"Authorization": f"Bearer {token}"}
    async with connect(relay_url.replace("http", "ws") + "/v1/websocket", additional_headers=headers) as ws:
        assert "queue_empty" in await ws.recv()
        await act()
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await asyncio.wait_for(ws.recv(), 10)
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code, closed.value.rcvd.reason


async def test_a_deletion_on_one_process_closes_the_accounts_socket_on_the_other(fleet):  # noqa: F811
    alice = await fleet.register(fleet.a, "alice", "+14155550111")
    assert await _closed_on(fleet.b.url, alice.core.token, alice.delete_account) == (4401, CLOSE_REASON)
    assert "Traceback" not in fleet.a.log() + fleet.b.log()


async def test_a_logout_on_one_process_closes_the_devices_socket_on_the_other(fleet):  # noqa: F811
    bob = await fleet.register(fleet.a, "bob", "+14155550112")

    async def log_out() -> None:
        async with httpx.AsyncClient(base_url=fleet.a.url) as http:
            answer = await http.delete("/v1/devices/current", headers={"Authorization": f"Bearer {bob.core.token}"})
            assert answer.status_code == 204

    assert await _closed_on(fleet.b.url, bob.core.token, log_out) == (4401, LOGGED_OUT)
