"""Meta's Block Users API through the business gateway, with real processes: the shapes a Cloud API client sends
and parses (Meta's block-users page), and that a block holds both ways end to end."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from cove.business.gateway.blocks import decode_cursor, encode_cursor
from cove.business.gateway.graph import GraphError
from cove.client.events import MessageReceived
from gateway_world import GatewayProcess, Receiver
from test_business_gateway import failed_with, send, text, world  # noqa: F401 - world is a fixture

UNKNOWN_PHONE = "+14155550999"


def named(*values: str, key: str = "user") -> dict[str, Any]:
    return {"messaging_product": "whatsapp", "block_users": [{key: v} for v in values]}


def inbound_texts(receiver: Receiver) -> list[str]:
    return [
        m["text"]["body"]
        for c in receiver.changes("messages")
        for m in c["value"].get("messages", [])
        if m.get("type") == "text"
    ]


async def call(gateway: GatewayProcess, method: str, **kw: Any) -> httpx.Response:
    async with gateway.api() as api:
        return await api.request(method, f"/{gateway.phone_number_id}/block_users", **kw)


async def test_a_business_blocks_lists_and_unblocks_users_through_the_gateway(world, users):  # noqa: F811
    gateway, receiver = world
    shop = gateway.phone_number_id
    ana = await users.register("ana", "+14155550192")
    bob = await users.register("bob", "+14155550193")  # on Cove, never wrote to the shop
    await ana.send_text(shop, "Hello?")
    first = await receiver.wait_for(lambda r: [c for c in r.changes("messages") if c["value"].get("messages")])
    wa_id = first[0]["value"]["messages"][0]["from_user_id"]  # the id the shop knows Ana by

    # By number, and a number that is not Cove's and one that never wrote: Meta's mixed answer, 400 and 139100
    # beside the per-user list; the two that failed are told apart from nothing (131047, no wa_id).
    mixed = await call(gateway, "POST", json=named(ana.core.phone_number, bob.core.phone_number, UNKNOWN_PHONE))
    assert mixed.status_code == 400, mixed.text
    body = mixed.json()
    assert body["error"]["code"] == 139100 and body["error"]["type"] == "OAuthException"
    assert body["messaging_product"] == "whatsapp"
    number = ana.core.phone_number.lstrip("+")  # Meta's wa_id: the number, as she was named by it
    assert body["block_users"]["added_users"] == [{"input": ana.core.phone_number, "wa_id": number, "user_id": wa_id}]
    failed = body["block_users"]["failed_users"]
    assert [f["input"] for f in failed] == [bob.core.phone_number, UNKNOWN_PHONE]
    assert all("wa_id" not in f and [e["code"] for e in f["errors"]] == [131047] for f in failed)
    assert failed[0]["errors"] == failed[1]["errors"]

    # By wa_id (pywa sends a business-scoped id as user_id): all blocked, so 200 and no failed_users.
    for key in ("user", "user_id"):
        again = await call(gateway, "POST", json=named(wa_id, key=key))
        assert again.status_code == 200, again.text
        assert again.json() == {
            "messaging_product": "whatsapp",
            "block_users": {"added_users": [{"input": wa_id, "user_id": wa_id}]},  # an id reveals no number
        }

    listed = await call(gateway, "GET")
    assert listed.status_code == 200, listed.text
    page = listed.json()
    assert [(d["messaging_product"], d["user_id"]) for d in page["data"]] == [("whatsapp", wa_id)]
    assert all("wa_id" not in d for d in page["data"])
    assert page["paging"]["cursors"] == {"before": encode_cursor(wa_id), "after": encode_cursor(wa_id)}
    assert decode_cursor(page["paging"]["cursors"]["after"]) == wa_id
    assert "next" not in page["paging"] and "previous" not in page["paging"]

    # Blocked both ways: the shop's message fails (131026, by webhook, as any undeliverable one), and Ana's
    # message never reaches it. Her next one, after the unblock, does: the queue is in order, so the one
    # before it would have come first.
    refused = await send(gateway, text(wa_id, "Are you there?"))
    assert await receiver.wait_for(lambda r: failed_with(r, refused["messages"][0]["id"])) == 131026
    await ana.send_text(shop, "Blocked, am I?")

    removed = await call(gateway, "DELETE", json=named(ana.core.phone_number, UNKNOWN_PHONE))
    assert removed.status_code == 400
    assert removed.json()["block_users"]["removed_users"] == [
        {"input": ana.core.phone_number, "wa_id": number, "user_id": wa_id}
    ]
    assert [f["input"] for f in removed.json()["block_users"]["failed_users"]] == [UNKNOWN_PHONE]
    assert (await call(gateway, "GET")).json() == {"data": [], "paging": {}}

    await ana.send_text(shop, "Back again")
    await receiver.wait_for(lambda r: "Back again" in inbound_texts(r))
    assert inbound_texts(receiver) == ["Hello?", "Back again"]
    await send(gateway, text(wa_id, "Welcome back"))
    # Of the shop's two messages, only the one sent after the unblock reached Ana.
    assert [e.text for e in await ana.inbox() if isinstance(e, MessageReceived)] == ["Welcome back"]


async def test_block_users_requests_are_checked_at_the_edge(world):  # noqa: F811
    gateway, _ = world
    for bad in (
        {"block_users": [{"user": "+14155550100"}]},  # no messaging_product
        named(),  # nobody
        named(*[f"+1415555{n:04d}" for n in range(1001)]),  # more than 1,000
        {"messaging_product": "whatsapp", "block_users": [{"user": "x" * 65}]},
        {"messaging_product": "whatsapp", "block_users": [{"user": 14155550100}]},
        {"messaging_product": "whatsapp", "block_users": [{"user": "+1", "user_id": "CC.X"}]},
        {"messaging_product": "whatsapp", "block_users": "+14155550100"},
    ):
        for method in ("POST", "DELETE"):
            answered = await call(gateway, method, json=bad)
            assert answered.status_code == 400, (method, bad, answered.text)
            assert answered.json()["error"]["code"] == 100
    for params in ({"after": "not-a-cursor"}, {"before": encode_cursor("../v1/devices")}, {"limit": 0}):
        answered = await call(gateway, "GET", params=params)
        assert answered.status_code == 400 and answered.json()["error"]["code"] == 100, params
    # Anything that is neither a number nor an id fails as a user, without reaching the relay.
    odd = await call(gateway, "POST", json=named("../../v1/devices/current"))
    assert odd.status_code == 400
    assert odd.json()["block_users"]["failed_users"][0]["errors"][0]["code"] == 131047
    async with httpx.AsyncClient(base_url=gateway.url) as anonymous:
        assert (await anonymous.get(f"/v21.0/{gateway.phone_number_id}/block_users")).status_code == 401


def test_a_cursor_is_only_one_this_gateway_gave() -> None:
    for cursor in ("", "%%%", encode_cursor("' OR 1=1 --"), encode_cursor("../../v1/devices/current"), "\u00e9"):
        with pytest.raises(GraphError) as raised:
            decode_cursor(cursor)
        assert raised.value.error.code == 100
