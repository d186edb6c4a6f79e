"""Reactions, locations, contacts, CTA URL buttons and location requests through a real relay and gateway, both
ways, and a forged choice that never becomes a webhook. The business talks Cloud API; users use the SDK and the
command line."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from typing import Any

from cove.client.core import Outgoing, PayloadReceived
from cove.protocol.business_content import ContactsMessage, LocationMessage, ReactionMessage, parse_business_message
from cove.protocol.business_messages import BusinessInteractive, InteractiveReply, ReplyChoice
from cove.protocol.templates.signing import canonical_json
from cove.testing import run_cove
from gateway_world import Receiver, register_profile
from test_business_gateway import send, statuses_of, world  # noqa: F401 - fixture
from test_business_types import CONTACT, CTA_URL, LOCATION, LOCATION_REQUEST


def messages(receiver: Receiver, kind: str) -> list[dict[str, Any]]:
    return [m for c in receiver.changes("messages") for m in c["value"].get("messages", []) if m["type"] == kind]


def to(body: dict[str, Any], wa_id: str) -> dict[str, Any]:
    return {**body, "to": wa_id}


async def test_each_type_reaches_the_user_and_the_users_answers_come_back_as_metas_webhooks(world, users):  # noqa: F811
    gateway, receiver = world
    shop = gateway.phone_number_id
    ivy = await users.register("ivy")
    hello = await ivy.send_text(shop, "Can you deliver to my place?")
    first = (await receiver.wait_for(lambda r: messages(r, "text")))[0]
    wa_id = first["from_user_id"]

    # business -> user: each Cloud API body as a client library sends it
    reaction = {"messaging_product": "whatsapp", "to": wa_id, "type": "reaction"}
    bodies = {
        "reaction": {**reaction, "reaction": {"message_id": first["id"], "emoji": "👍"}},
        "location": to(LOCATION, wa_id),
        "contacts": to({"messaging_product": "whatsapp", "type": "contacts", "contacts": [CONTACT]}, wa_id),
        "cta": to(CTA_URL, wa_id),
        "request": to(LOCATION_REQUEST, wa_id),
    }
    sent = {name: (await send(gateway, body))["messages"][0]["id"] for name, body in bodies.items()}
    got = {e.client_message_id: e for e in await ivy.inbox() if isinstance(e, PayloadReceived)}
    assert set(got) == set(sent.values())
    assert all(e.business == {"kind": "text"} for e in got.values())  # the relay sees no more than for a text
    shown = {name: parse_business_message(json.dumps(got[i].payload).encode()) for name, i in sent.items()}
    assert isinstance(shown["reaction"], ReactionMessage)
    assert shown["reaction"].reaction.message_id == hello  # Ivy's own id for her message, not the Cloud API's
    assert isinstance(shown["location"], LocationMessage) and shown["location"].location.name == "Philz Coffee"
    assert isinstance(shown["contacts"], ContactsMessage)
    assert shown["contacts"].contacts[0].model_dump(mode="json", exclude_none=True) == CONTACT
    assert isinstance(shown["cta"], BusinessInteractive) and shown["cta"].interactive.type == "cta_url"
    assert isinstance(shown["request"], BusinessInteractive)

    # As with Meta, the business's reaction reports sent and never delivered or read; the others are delivered.
    await receiver.wait_for(lambda r: "delivered" in statuses_of(r, sent["request"]))
    assert statuses_of(receiver, sent["reaction"]) == ["sent"]
    assert statuses_of(receiver, sent["location"]) == ["sent", "delivered"]

    # A business reacts to messages it received: its own message, or an unknown id, is a bad parameter.
    async with gateway.api() as api:
        for target in (sent["location"], "wamid.bm90LWEtbWVzc2FnZQ"):
            body = {**reaction, "reaction": {"message_id": target, "emoji": "👍"}}
            refused = await api.post(f"/{shop}/messages", json=body)
            assert refused.status_code == 400 and refused.json()["error"]["code"] == 100, refused.text

    # user -> business
    await ivy.react(shop, sent["location"], "❤️")
    await ivy.react(shop, "a-message-the-shop-never-sent", "😀")  # dropped: nothing the business could name
    await ivy.react(shop, sent["location"], "")
    await ivy.send_location(shop, -33.9249, 18.4241, "Home", "1 Long St", reply_to=sent["request"])
    card = {"name": {"formatted_name": "Ana"}, "phones": [{"phone": "+14155550101", "wa_id": "US.1234567"}]}
    await ivy.send_contacts(shop, [card])
    shared = await receiver.wait_for(lambda r: messages(r, "contacts"))
    reactions = await receiver.wait_for(lambda r: len(messages(r, "reaction")) >= 2 and messages(r, "reaction"))
    assert [m["reaction"] for m in reactions] == [
        {"message_id": sent["location"], "emoji": "❤️"},
        {"message_id": sent["location"]},  # taken back: Meta leaves the emoji out
    ]
    assert all(m["from_user_id"] == wa_id for m in reactions)
    located = (await receiver.wait_for(lambda r: messages(r, "location")))[0]
    assert located["location"] == {"latitude": -33.9249, "longitude": 18.4241, "name": "Home", "address": "1 Long St"}
    assert located["context"]["id"] == sent["request"]
    assert shared[0]["contacts"] == [{"name": {"formatted_name": "Ana"}, "phones": [{"phone": "+14155550101"}]}]
    assert len(messages(receiver, "reaction")) == 2  # the one to an unknown message never became a webhook


async def test_a_choice_the_message_did_not_offer_is_not_posted(world, users):  # noqa: F811
    gateway, receiver = world
    shop = gateway.phone_number_id
    ivy = await users.register("ivy")
    await ivy.send_text(shop, "Which slots are free?")
    wa_id = (await receiver.wait_for(lambda r: messages(r, "text")))[0]["from_user_id"]
    buttons = {
        "messaging_product": "whatsapp",
        "to": wa_id,
        "type": "interactive",
        "interactive": {
            "type": "button",
            "body": {"text": "Pick a time"},
            "action": {
                "buttons": [
                    {"type": "reply", "reply": {"id": "slot-4", "title": "4 pm"}},
                    {"type": "reply", "reply": {"id": "slot-6", "title": "6 pm"}},
                ]
            },
        },
    }
    message_id = (await send(gateway, buttons))["messages"][0]["id"]
    offered = [e for e in await ivy.inbox() if isinstance(e, PayloadReceived)]

    # A modified client answers with a choice the business never offered, then with a real one.
    for choice in (
        ReplyChoice(type="button_reply", id="refund-approved", title="Refund"),
        ReplyChoice(type="button_reply", id="slot-4", title="Refund"),  # an offered id under another title
    ):
        cmid = uuid.uuid4().hex
        forged = InteractiveReply(v=1, type="interactive_reply", id=cmid, ts=1, context_id=message_id, reply=choice)
        await ivy.send(Outgoing(shop, cmid, canonical_json(forged.model_dump(mode="json", exclude_none=True))))
    await ivy.answer(offered[0], "slot-6")
    replies = await receiver.wait_for(lambda r: messages(r, "interactive"))
    assert [m["interactive"] for m in replies] == [
        {"type": "button_reply", "button_reply": {"id": "slot-6", "title": "6 pm"}}
    ]
    assert replies[0]["context"]["id"] == message_id


async def test_the_command_line_shows_a_location_request_and_answers_it(world, relay, code_inbox):  # noqa: F811
    gateway, receiver = world
    shop = gateway.phone_number_id
    await register_profile(relay, code_inbox, gateway.home, "hal", "+14155550177")
    env = {**gateway.env, "COVE_PROFILE": "hal"}

    def cove(*args: str) -> subprocess.CompletedProcess[str]:
        return run_cove(list(args), env)

    assert (await asyncio.to_thread(cove, "send", shop, "Where do you deliver?")).returncode == 0
    wa_id = (await receiver.wait_for(lambda r: messages(r, "text")))[0]["from_user_id"]
    request = (await send(gateway, to(LOCATION_REQUEST, wa_id)))["messages"][0]["id"]
    cta = (await send(gateway, to(CTA_URL, wa_id)))["messages"][0]["id"]
    shown = await asyncio.to_thread(cove, "inbox")
    assert shown.returncode == 0, shown.stderr
    out = " ".join(shown.stdout.split())
    assert "[business]" in out and "[Send location]" in out and f"(id {request})" in out
    assert "[See Dates] → https://www.luckyshrub.com?clickID=kqDGWd24Q5TR" in out and f"(id {cta})" in out

    answered = await asyncio.to_thread(
        cove, "businesses", "location", shop, "--latitude", "-33.9249", "--longitude", "18.4241",
        "--name", "Home", "--reply-to", request,
    )  # fmt: skip
    assert answered.returncode == 0, answered.stderr
    located = (await receiver.wait_for(lambda r: messages(r, "location")))[0]
    assert located["context"]["id"] == request and located["location"]["latitude"] == -33.9249

    refused = await asyncio.to_thread(cove, "businesses", "react", shop, cta, "thanks")
    assert refused.returncode != 0 and "must be an emoji" in refused.stderr, refused
    reacted = await asyncio.to_thread(cove, "businesses", "react", shop, cta, "🎉")
    assert reacted.returncode == 0, reacted.stderr
    reaction = (await receiver.wait_for(lambda r: messages(r, "reaction")))[0]
    assert reaction["reaction"] == {"message_id": cta, "emoji": "🎉"}

    # The history keeps both sides as the command line showed them.
    kept = await asyncio.to_thread(cove, "history", shop)
    kept_text = " ".join(kept.stdout.split())
    assert "[See Dates] → https://www.luckyshrub.com" in kept_text and "[Send location]" in kept_text
    assert "→" in kept_text and "location: Home (-33.924900, 18.424100)" in kept_text and "reacted 🎉" in kept_text
