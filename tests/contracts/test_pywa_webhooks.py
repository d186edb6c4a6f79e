"""pywa 4.5.0, the most used Python Cloud API client, as a business's bot behind a real gateway and relay: its own
webhook parsers accept every webhook the gateway posts, its handlers fire, and its replies go back through the
gateway to the user.

Why this file exists (issue 15): pywa 4.5.0 answered 200 to every such webhook and dropped it, because it builds
the user from ``contacts[0]["user_id"]`` (Meta's business-scoped user id, in webhooks since April 2026) and a
status's user from ``value["contacts"][0]``; the gateway sent neither. pywa answers 200 before it parses, so the
gateway's delivery accounting saw success.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx

from contracts.harness import Bot, pywa_client, webhook_problems
from contracts.reference.webhooks import is_bsuid
from cove.client.events import MessageReceived
from gateway_world import GatewayProcess, operator

ORDER_READY = {
    "name": "order_ready",
    "language": "en",
    "category": "UTILITY",
    "components": [
        {"type": "BODY", "text": "Your order {{1}} is ready for pickup.", "example": {"body_text": [["A-17"]]}}
    ],
}


async def user_call(relay, user, method: str, path: str) -> httpx.Response:  # noqa: ANN001
    async with httpx.AsyncClient(base_url=relay.url, headers={"Authorization": f"Bearer {user.core.token}"}) as api:
        return await api.request(method, path)


async def inbox_until(user, wanted, timeout: float = 20.0) -> list[Any]:  # noqa: ANN001, ASYNC109
    """The user's inbox events, fetched until ``wanted(events)`` holds (the bot answers asynchronously)."""
    seen: list[Any] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen += await user.inbox()
        if wanted(seen):
            return seen
        await asyncio.sleep(0.1)
    raise AssertionError(f"the user never got it; inbox so far: {seen}")


def texts(events: list[Any]) -> list[str]:
    return [e.text for e in events if isinstance(e, MessageReceived)]


def fired(bot: Bot, handler: str, **facts: Any) -> list[dict[str, Any]]:
    return [line for line in bot.journal(handler) if all(line.get(k) == v for k, v in facts.items())]


async def test_a_pywa_bot_gets_every_message_tap_status_and_preference_and_answers_through_the_gateway(
    pywa_shop: tuple[GatewayProcess, Bot], users, relay
) -> None:
    gateway, bot = pywa_shop
    shop = gateway.phone_number_id

    # A template approved by the operator: pywa's template status handler fires.
    async with gateway.api() as api:
        made = await api.post(f"/{shop}/message_templates", json=ORDER_READY)
    assert made.status_code == 200, made.text
    assert operator(relay, "business", "approve", made.json()["id"]).returncode == 0
    await bot.wait_for(lambda b: fired(b, "template", status="APPROVED"), "handled the template's approval")

    # A user's text: pywa's message handler fires with the user's business-scoped id; the bot's reply, addressed
    # the way pywa addresses it (by that id), reaches the user.
    ivy = await users.register("ivy")
    await ivy.send_text(shop, "hello")
    message = (await bot.wait_for(lambda b: fired(b, "message", text="hello"), "handled the user's text"))[0]
    assert is_bsuid(message["user"]["bsuid"]), message
    assert message["user"]["name"] != message["user"]["bsuid"]  # the name the user shows, not the id
    echo = (await bot.wait_for(lambda b: b.journal("sent"), "sent its reply"))[0]
    assert echo["input"] == message["user"]["bsuid"]
    assert "echo: hello" in texts(await inbox_until(ivy, lambda seen: "echo: hello" in texts(seen)))

    # The reply's statuses: pywa's status handler fires, naming the same user.
    statuses = await bot.wait_for(
        lambda b: {s["status"] for s in fired(b, "status", id=echo["id"])} >= {"sent", "delivered"},
        "handled the reply's sent and delivered statuses",
    )
    assert statuses
    assert {s["user"]["bsuid"] for s in fired(bot, "status", id=echo["id"])} == {message["user"]["bsuid"]}

    # Reply buttons from pywa; the user taps one; pywa's callback handler fires with its data.
    await ivy.send_text(shop, "menu")
    await bot.wait_for(lambda b: len(b.journal("sent")) >= 2, "sent the buttons")
    offered = await inbox_until(ivy, lambda seen: any(getattr(e, "payload", None) for e in seen))
    menu = next(e for e in offered if getattr(e, "payload", None))
    await ivy.answer(menu, "slot-6")
    tap = (await bot.wait_for(lambda b: fired(b, "button", data="slot-6"), "handled the button tap"))[0]
    assert tap["title"] == "6 pm" and tap["user"]["bsuid"] == message["user"]["bsuid"]
    assert "booked slot-6" in texts(await inbox_until(ivy, lambda seen: "booked slot-6" in texts(seen)))

    # The user stops the shop's promotions: pywa's marketing preference handler fires.
    stopped = await user_call(relay, ivy, "POST", f"/v1/business/{shop}/stop-promotions")
    assert stopped.status_code == 200, stopped.text
    preference = (await bot.wait_for(lambda b: fired(b, "preference", value="stop"), "handled the stop"))[0]
    assert preference["user"]["bsuid"] == message["user"]["bsuid"]

    # And every webhook pywa received is Meta's shape.
    problems = webhook_problems(bot.bodies())
    assert not problems, json.dumps(problems, indent=1)


async def test_pywa_reads_list_choices_reactions_locations_and_contacts(pywa_shop: tuple[GatewayProcess, Bot], users):
    gateway, bot = pywa_shop
    shop = gateway.phone_number_id
    zoe = await users.register("zoe")

    # A list from pywa; the user picks a row; pywa's selection handler fires and its answer reaches her.
    await zoe.send_text(shop, "list")
    offered = await inbox_until(zoe, lambda seen: any(getattr(e, "payload", None) for e in seen))
    await zoe.answer(next(e for e in offered if getattr(e, "payload", None)), "express")
    choice = (await bot.wait_for(lambda b: fired(b, "selection", data="express"), "handled the list choice"))[0]
    assert choice["title"] == "Express"
    assert "shipping express" in texts(await inbox_until(zoe, lambda seen: "shipping express" in texts(seen)))

    # A reaction to pywa's answer, a location and a contact card: pywa's message handler reads each.
    shipped = fired(bot, "sent")[-1]["id"]
    await zoe.react(shop, shipped, "\U0001f44d")
    await zoe.send_location(shop, 52.52, 13.405, name="Brandenburger Tor", address="Pariser Platz")
    await zoe.send_contacts(shop, [{"name": {"formatted_name": "Barbara J. Johnson"}, "phones": [{"phone": "+1 650"}]}])
    reaction = (await bot.wait_for(lambda b: fired(b, "message", type="reaction"), "read the reaction"))[0]
    assert reaction["reaction"] == {"message_id": shipped, "emoji": "\U0001f44d"}
    location = (await bot.wait_for(lambda b: fired(b, "message", type="location"), "read the location"))[0]
    assert location["location"] == {"latitude": 52.52, "name": "Brandenburger Tor"}
    contacts = (await bot.wait_for(lambda b: fired(b, "message", type="contacts"), "read the contact card"))[0]
    assert contacts["contacts"] == ["Barbara J. Johnson"]
    problems = webhook_problems(bot.bodies())
    assert not problems, json.dumps(problems, indent=1)


async def test_pywa_gets_a_failed_status(pywa_shop: tuple[GatewayProcess, Bot], users):
    """A send that fails (to a user the business blocked) reaches pywa's status handler as failed. pywa 4.5.0
    builds a status's user from ``contacts[0]``, which Meta leaves out of failed statuses (pywa drops Meta's own
    failed statuses too): the gateway sends ``contacts`` with a failed status whenever the user has an id for the
    business, so pywa sees it. (A user who never wrote has none: see docs/business.md.)"""
    gateway, bot = pywa_shop
    yan = await users.register("yan")
    await yan.send_text(gateway.phone_number_id, "hi")
    message = (await bot.wait_for(lambda b: fired(b, "message", text="hi"), "handled the user's text"))[0]
    wa = pywa_client(gateway)
    await asyncio.to_thread(wa.block_users, [yan.core.phone_number])
    sent = await asyncio.to_thread(wa.send_message, yan.core.phone_number, "Anything else?")
    failed = await bot.wait_for(lambda b: fired(b, "status", id=sent.id, status="failed"), "handled the failure")
    assert [f["user"]["bsuid"] for f in failed] == [message["user"]["bsuid"]]
