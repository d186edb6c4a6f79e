"""The bounds on linking: companions per account, provisioning channels per source address."""

from __future__ import annotations

import pytest

from cove.client import linking
from cove.client.core import Request
from cove.client.transport import RelayError
from devices_world import link


@pytest.fixture
def relay_env() -> dict[str, str]:
    return {"COVE_MAX_COMPANION_DEVICES": "1", "COVE_PROVISIONING_PER_SOURCE": "3"}


async def test_an_account_links_at_most_the_maximum_of_companions(users):
    alice = await users.register("alice")
    await link(users, alice, "alice-laptop")
    with pytest.raises(RelayError) as refused:
        await alice.call(Request("POST", "/v1/devices/link-token"))
    assert (refused.value.status, refused.value.code) == (409, "too_many_devices")


async def test_one_address_opens_a_bounded_number_of_provisioning_channels(users):
    opened = [await linking.open_link(users.client(f"laptop-{i}")) for i in range(3)]
    assert len({p.address for p in opened}) == 3
    with pytest.raises(RelayError) as refused:
        await linking.open_link(users.client("laptop-4"))
    assert (refused.value.status, refused.value.code) == (429, "rate_limited")
