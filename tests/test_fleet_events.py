"""A device logged out through one relay process has its socket closed on the other (DevicesLoggedOut is
handled in every process). Deletions, re-registrations and bans: tests/test_fleet.py."""

from __future__ import annotations

import httpx

from cove.accounts.service import LOGGED_OUT
from test_fleet import closed_with, database_url, fleet, fleet_extra_env, nats_server, open_socket  # noqa: F401


async def test_a_logout_on_one_process_closes_the_devices_socket_on_the_other(fleet):  # noqa: F811
    bob = await fleet.register(fleet.a, "bob", "+14155550121")
    ws = await open_socket(fleet.b, bob)
    async with httpx.AsyncClient(base_url=fleet.a.url) as http:
        answer = await http.delete("/v1/devices/current", headers={"Authorization": f"Bearer {bob.core.token}"})
    assert answer.status_code == 204
    assert await closed_with(ws) == (4401, LOGGED_OUT)
    assert "Traceback" not in fleet.a.log() + fleet.b.log()
