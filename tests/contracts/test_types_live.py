"""Reactions, locations, contacts, call-to-action URL buttons and location requests with a real relay and gateway,
both ways: what a user's app sends arrives as Meta's webhook shapes, and pywa 4.5.0's client sends each type
through the gateway (its answers checked against Meta's send answer)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from pywa import types

from contracts.harness import against, pywa_client, webhook_problems
from contracts.reference import responses, sends
from cove.client.events import MessageReceived
from gateway_world import GatewayProcess, Receiver


def messages_of(receiver: Receiver, kind: str) -> list[dict[str, Any]]:
    return [m for c in receiver.changes("messages") for m in c["value"].get("messages", []) if m["type"] == kind]


async def first_text(user, timeout: float = 20.0) -> MessageReceived:  # noqa: ANN001, ASYNC109
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [e for e in await user.inbox() if isinstance(e, MessageReceived)]
        if found:
            return found[0]
        await asyncio.sleep(0.1)
    raise AssertionError("the business's text never arrived")


async def test_a_users_reaction_location_and_contacts_arrive_as_metas_webhooks_and_pywa_sends_each_type(
    shop: tuple[GatewayProcess, Receiver], users
) -> None:
    gateway, receiver = shop
    biz = gateway.phone_number_id
    ivy = await users.register("ivy")
    await ivy.send_text(biz, "Where are you?")
    (hello,) = await receiver.wait_for(lambda r: messages_of(r, "text"))
    user = receiver.changes("messages")[0]["value"]["contacts"][0].get("user_id") or hello["from"]

    # pywa's client sends every type through the gateway, answered as Meta answers.
    wa = pywa_client(gateway)
    phone = types.Contact.Phone(phone="+1 (650) 555-1234", type="WORK")
    card = types.Contact(name=types.Contact.Name(formatted_name="Lucky Shrimp", first_name="Lucky"), phones=[phone])
    calls = [
        lambda: wa.send_message(user, "Here we are."),
        lambda: wa.send_reaction(user, "\U0001f44d", hello["id"]),
        lambda: wa.send_location(user, 37.44216251868683, -122.16153582049394, name="Philz", address="101 Forest"),
        lambda: wa.send_contact(user, card),
        lambda: wa.send_message(user, "Dates", buttons=types.URLButton(title="See Dates", url="https://x.example")),
        lambda: wa.request_location(user, "Where should we pick you up?"),
    ]
    sent = [await asyncio.to_thread(call) for call in calls]
    assert all(s.id.startswith("wamid.") for s in sent)

    # The same in plain HTTP, from Meta's examples: each answer is Meta's.
    async with gateway.api() as api:
        answers = []
        for name in ("reaction", "location", "contacts", "interactive_cta_url", "interactive_location_request"):
            body = sends.free_form(user)[name]
            if name == "reaction":
                body = sends.addressed(user, "reaction", {"message_id": hello["id"], "emoji": "\u2764\ufe0f"})
            answer = await api.post(f"/{biz}/messages", json=body)
            assert answer.status_code == 200, (name, answer.text)
            answers.append(answer.json())
    assert [against(responses.SendResponse, a) for a in answers] == [[]] * len(answers)

    # Ivy reacts to the business's text, shares a location and a contact card.
    text = await first_text(ivy)
    await ivy.react(biz, text.client_message_id, "\U0001f600")
    await ivy.send_location(biz, 52.52, 13.405, name="Brandenburger Tor", address="Pariser Platz, Berlin")
    await ivy.send_contacts(biz, sends.CONTACTS)
    for kind in ("reaction", "location", "contacts"):
        await receiver.wait_for(lambda r, kind=kind: messages_of(r, kind))
    assert messages_of(receiver, "reaction")[0]["reaction"] == {"message_id": sent[0].id, "emoji": "\U0001f600"}
    assert messages_of(receiver, "location")[0]["location"]["name"] == "Brandenburger Tor"
    problems = webhook_problems([event["body"] for event in receiver.events()])
    assert not problems, json.dumps(problems, indent=1)
