"""Blocking users with a real relay and gateway, against Meta's Block Users reference: block by the id the webhook
gave (Meta's ``user_id``) and by number (``user``), list, unblock, each answer in Meta's shape; and pywa 4.5.0's
client does the same through the gateway."""

from __future__ import annotations

import asyncio

from contracts.harness import against, pywa_client
from contracts.reference import responses
from gateway_world import GatewayProcess, Receiver


async def test_block_list_and_unblock_answer_as_metas(shop: tuple[GatewayProcess, Receiver], users) -> None:
    gateway, receiver = shop
    biz = gateway.phone_number_id
    ivy = await users.register("ivy")
    zoe = await users.register("zoe")
    # Meta: only users who wrote in the last 24 hours can be blocked. Ivy writes first, so her id is the first seen.
    await ivy.send_text(biz, "hello")
    changes = await receiver.wait_for(lambda r: r.changes("messages"))
    ivy_id = changes[0]["value"]["contacts"][0]["user_id"]
    await zoe.send_text(biz, "hello")
    await receiver.wait_for(lambda r: len(r.changes("messages")) >= 2)

    async with gateway.api() as api:
        path = f"/{biz}/block_users"
        by_id = {"messaging_product": "whatsapp", "block_users": [{"user_id": ivy_id}]}
        blocked = await api.post(path, json=by_id)
        assert blocked.status_code == 200, blocked.text
        assert against(responses.BlockResponse, blocked.json()) == []
        added = blocked.json()["block_users"]["added_users"]
        assert [(u["input"], u.get("user_id")) for u in added] == [(ivy_id, ivy_id)]

        by_number = {"messaging_product": "whatsapp", "block_users": [{"user": zoe.core.phone_number}]}
        blocked = await api.post(path, json=by_number)
        assert blocked.status_code == 200, blocked.text
        assert against(responses.BlockResponse, blocked.json()) == []

        listed = await api.get(path)
        assert listed.status_code == 200, listed.text
        assert against(responses.BlockedList, listed.json()) == []
        assert len(listed.json()["data"]) == 2

        unblocked = await api.request("DELETE", path, json=by_id)
        assert unblocked.status_code == 200, unblocked.text
        assert against(responses.BlockResponse, unblocked.json()) == []
        assert [u["input"] for u in unblocked.json()["block_users"]["removed_users"]] == [ivy_id]
        assert len((await api.get(path)).json()["data"]) == 1

    # pywa's client: block, list, unblock.
    wa = pywa_client(gateway)
    result = await asyncio.to_thread(wa.block_users, [ivy_id])
    assert [u.input for u in result.added_users] == [ivy_id]
    assert len(await asyncio.to_thread(lambda: list(wa.get_blocked_users()))) == 2
    await asyncio.to_thread(wa.unblock_users, [ivy_id])
