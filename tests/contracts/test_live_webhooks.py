"""Webhooks and answers, the other way: a business's session on a real relay and gateway (a template approved, a
template sent, delivered and read, a free-form send that fails, a user's text, button and list replies, a stop of
promotions), and every webhook body the receiver got, and every answer the business got, checked against Meta's
reference shapes (tests/contracts/reference): no missing required field, no unknown or misplaced field."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx

from contracts.harness import against, webhook_problems
from contracts.reference import responses
from cove.client.core import PayloadReceived
from cove.client.events import TemplateReceived
from gateway_world import GatewayProcess, Receiver, operator

ORDER_READY = {
    "name": "order_ready",
    "language": "en",
    "category": "UTILITY",
    "components": [
        {"type": "BODY", "text": "Your order {{1}} is ready for pickup.", "example": {"body_text": [["A-17"]]}}
    ],
}


async def as_user(relay, user, method: str, path: str, **kw: Any) -> httpx.Response:  # noqa: ANN001
    async with httpx.AsyncClient(base_url=relay.url, headers={"Authorization": f"Bearer {user.core.token}"}) as api:
        return await api.request(method, path, **kw)


async def events_until(user, wanted, timeout: float = 20.0) -> list[Any]:  # noqa: ANN001, ASYNC109
    seen: list[Any] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen += await user.inbox()
        found = [e for e in seen if wanted(e)]
        if found:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"never arrived; inbox so far: {seen}")


def messages_of(receiver: Receiver, kind: str) -> list[dict[str, Any]]:
    return [m for c in receiver.changes("messages") for m in c["value"].get("messages", []) if m["type"] == kind]


def statuses(receiver: Receiver, message_id: str) -> list[str]:
    return [status for mid, status, _ in receiver.statuses() if mid == message_id]


async def post(api: httpx.AsyncClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = await api.post(path, json=body)
    assert answer.status_code == 200, answer.text
    return answer.json()


async def test_every_webhook_and_answer_of_a_session_is_metas_shape(
    shop: tuple[GatewayProcess, Receiver], users, relay
):
    gateway, receiver = shop
    biz = gateway.phone_number_id
    ana = await users.register("ana")
    bob = await users.register("bob")
    answers: list[tuple[type, Any]] = []

    async with gateway.api() as api:
        made = await post(api, f"/{biz}/message_templates", ORDER_READY)
        assert operator(relay, "business", "approve", made["id"]).returncode == 0
        await receiver.wait_for(lambda r: r.changes("message_template_status_update"))

        # A template to Ana's number (she opted in), rendered and read by her: sent, delivered, read.
        opted = await as_user(
            relay, ana, "PUT", f"/v1/business/{biz}/opt-in", json={"categories": ["utility"], "source": "web"}
        )
        assert opted.status_code == 200, opted.text
        body = {
            "messaging_product": "whatsapp",
            "to": ana.core.phone_number,
            "type": "template",
            "template": {
                "name": "order_ready",
                "language": {"code": "en"},
                "components": [{"type": "body", "parameters": [{"type": "text", "text": "Q-5521"}]}],
            },
        }
        sent = await post(api, f"/{biz}/messages", body)
        answers.append((responses.SendResponse, sent))
        template_id = sent["messages"][0]["id"]
        (received,) = await events_until(ana, lambda e: isinstance(e, TemplateReceived))
        await ana.mark_read(biz, [received.client_message_id])
        await receiver.wait_for(lambda r: statuses(r, template_id) == ["sent", "delivered", "read"])

        # Free-form to Bob, who never wrote: accepted, then a failed status.
        text = {"messaging_product": "whatsapp", "to": bob.core.phone_number, "type": "text", "text": {"body": "Hi"}}
        refused = await post(api, f"/{biz}/messages", text)
        answers.append((responses.SendResponse, refused))
        await receiver.wait_for(lambda r: "failed" in statuses(r, refused["messages"][0]["id"]))

        # Ana writes; the business marks it read and answers with reply buttons, then a list; she picks from both.
        await ana.send_text(biz, "Can I pick it up at 5?")
        (inbound,) = await receiver.wait_for(lambda r: messages_of(r, "text"))
        answers.append(
            (
                responses.Success,
                await post(
                    api,
                    f"/{biz}/messages",
                    {"messaging_product": "whatsapp", "status": "read", "message_id": inbound["id"]},
                ),
            )
        )
        user_id = receiver.changes("messages")[-1]["value"]["contacts"][0].get("user_id") or inbound["from"]
        buttons = {
            "type": "button",
            "body": {"text": "Pick a time"},
            "action": {"buttons": [{"type": "reply", "reply": {"id": "slot-4", "title": "4 pm"}}]},
        }
        rows = [{"id": "express", "title": "Express", "description": "Next day"}]
        listed = {
            "type": "list",
            "body": {"text": "Shipping?"},
            "action": {"button": "Options", "sections": [{"title": "Fast", "rows": rows}]},
        }
        for interactive in (buttons, listed):
            body = {"messaging_product": "whatsapp", "to": user_id, "type": "interactive", "interactive": interactive}
            answers.append((responses.SendResponse, await post(api, f"/{biz}/messages", body)))
        offers = await events_until(ana, lambda e: isinstance(e, PayloadReceived))
        while len(offers) < 2:
            offers += await events_until(ana, lambda e: isinstance(e, PayloadReceived))
        await ana.answer(offers[0], "slot-4")
        await ana.answer(offers[1], "express")
        await receiver.wait_for(lambda r: len(messages_of(r, "interactive")) == 2)

        # Ana stops promotions.
        stopped = await as_user(relay, ana, "POST", f"/v1/business/{biz}/stop-promotions")
        assert stopped.status_code == 200, stopped.text
        await receiver.wait_for(lambda r: r.changes("user_preferences"))

        # A refused request is a Graph error.
        bad = await api.post(f"/{biz}/messages", json={"messaging_product": "whatsapp", "to": "x", "type": "text"})
        assert bad.status_code == 400
        answers.append((responses.GraphError, bad.json()))

    bodies = [event["body"] for event in receiver.events()]
    fields = {c["field"] for b in bodies for e in b["entry"] for c in e["changes"]}
    assert fields == {"messages", "message_template_status_update", "user_preferences"}
    problems = webhook_problems(bodies)
    assert not problems, json.dumps(problems, indent=1)
    assert {i: against(model, answer) for i, (model, answer) in enumerate(answers)} == {
        i: [] for i in range(len(answers))
    }
