"""The business gateway with real processes: a relay, the business's gateway, its webhook receiver and users'
SDK clients. A business talks Cloud API to the gateway; users see end-to-end encrypted Cove messages.

Covers the issue's proof list: opt-in; a template outside the window; free-form inside it; window expiry with an
injected clock; stop promotions; blocks with reasons lowering quality until the template pauses; tier limits;
signatures verified (by the receiver, which refuses anything unsigned); a receiver down for a while, then back,
with nothing lost and nothing applied twice; and nothing of the content in the relay's database or log.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import insert

from cove.business.gateway.graph import Identity
from cove.business.gateway.outbox import Outbox
from cove.business.gateway.service import Gateway
from cove.business.gateway.statuses import Status
from cove.business.gateway.store import GatewayStore, MessageRecord
from cove.business.keys import BSUID
from cove.business.storage import business_reach
from cove.client.core import ClientCore, PayloadReceived
from cove.client.events import MessageReceived, Read, TemplateReceived
from cove.client.store import ClientStore
from cove.client.transport import CoveClient
from cove.db import create_engine
from cove.testing import run_cove
from gateway_world import GatewayProcess, Receiver, operator, register_profile, shop_gateway
from helpers import assert_no_plaintext, server_rows
from test_business_sending import DAY_AND_AN_HOUR_MS, MARKETING

SHOP_PHONE = "+14155550190"
PROFILE = {"display_name": "Corner Bakery", "about": "Fresh bread every morning", "vertical": "RESTAURANT"}
ORDER_READY = {
    "name": "order_ready",
    "language": "en",
    "category": "UTILITY",
    "components": [
        {"type": "BODY", "text": "Your order {{1}} is ready for pickup.", "example": {"body_text": [["A-17"]]}}
    ],
}
WEEKLY_OFFER = MARKETING


def template(name: str, to: str, *values: str) -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "to": to,
        "type": "template",
        "template": {
            "name": name,
            "language": {"code": "en"},
            "components": [{"type": "body", "parameters": [{"type": "text", "text": v} for v in values]}],
        },
    }


def text(to: str, body: str) -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": "text",
        "text": {"body": body},
    }


@pytest.fixture
async def world(relay, code_inbox, tmp_path: Path):  # noqa: ANN001, ANN201
    """The relay, the business's gateway (its profile under ``gateway.home``) and its webhook receiver."""
    async with shop_gateway(relay, code_inbox, tmp_path, SHOP_PHONE, PROFILE) as world:
        yield world


async def approved_templates(gateway: GatewayProcess, relay, receiver: Receiver, *bodies: dict[str, Any]) -> None:  # noqa: ANN001
    async with gateway.api() as api:
        for body in bodies:
            made = await api.post(f"/{gateway.phone_number_id}/message_templates", json=body)
            assert made.status_code == 200, made.text
            assert made.json()["status"] == "PENDING"
            approved = operator(relay, "business", "approve", made.json()["id"])
            assert approved.returncode == 0, approved.stderr
    names = {b["name"] for b in bodies}
    await receiver.wait_for(
        lambda r: (
            names
            <= {
                c["value"]["message_template_name"]
                for c in r.changes("message_template_status_update")
                if c["value"]["event"] == "APPROVED"
            }
        )
    )


async def opt_in(relay, user, business_id: str, *categories: str) -> None:  # noqa: ANN001
    async with httpx.AsyncClient(base_url=relay.url, headers={"Authorization": f"Bearer {user.core.token}"}) as api:
        made = await api.put(
            f"/v1/business/{business_id}/opt-in", json={"categories": list(categories), "source": "web"}
        )
        assert made.status_code == 200, made.text


async def user_call(relay, user, method: str, path: str, **kw: Any) -> httpx.Response:  # noqa: ANN001
    async with httpx.AsyncClient(base_url=relay.url, headers={"Authorization": f"Bearer {user.core.token}"}) as api:
        return await api.request(method, path, **kw)


async def send(gateway: GatewayProcess, body: dict[str, Any], **headers: str) -> dict[str, Any]:
    async with gateway.api() as api:
        answer = await api.post(f"/{gateway.phone_number_id}/messages", json=body, headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.json()


def failed_with(receiver: Receiver, message_id: str) -> int | None:
    for mid, status, errors in receiver.statuses():
        if mid == message_id and status == "failed":
            return errors[0]["code"]
    return None


def statuses_of(receiver: Receiver, message_id: str) -> list[str]:
    return [status for mid, status, _ in receiver.statuses() if mid == message_id]


async def test_a_business_integrates_through_the_gateway_with_templates_windows_and_webhooks(world, users, relay):
    gateway, receiver = world
    shop = gateway.phone_number_id
    ana = await users.register("ana", "+14155550191")
    await approved_templates(gateway, relay, receiver, ORDER_READY, WEEKLY_OFFER)

    # Without an opt-in a template is accepted, then fails by webhook (as the Cloud API reports it). Ana never
    # dealt with the shop, so it gets no user id for her: the answer names her by the number it gave.
    refused = await send(gateway, template("order_ready", ana.core.phone_number, "A-17"))
    assert refused["contacts"][0] == {"input": ana.core.phone_number, "wa_id": ana.core.phone_number.lstrip("+")}
    assert refused["messages"][0]["message_status"] == "accepted"
    assert await receiver.wait_for(lambda r: failed_with(r, refused["messages"][0]["id"])) == 131026

    # Opted in: a template outside the window reaches Ana, who renders the signed text with the value; from now
    # on the shop knows her by a user id of its own.
    await opt_in(relay, ana, shop, "utility")
    first = await send(gateway, template("order_ready", ana.core.phone_number, "Q-5520"))
    # The shop sent to her number, so it may see the number (Meta's contact book); her id is Meta's BSUID shape.
    wa_id = first["contacts"][0]["user_id"]
    assert first["contacts"][0]["wa_id"] == ana.core.phone_number.lstrip("+")
    assert re.match(BSUID, wa_id) and ana.core.phone_number.lstrip("+") not in wa_id
    sent = await send(gateway, template("order_ready", wa_id, "Q-5521"))
    message_id = sent["messages"][0]["id"]
    received = [e for e in await ana.inbox() if isinstance(e, TemplateReceived)]
    assert [e.client_message_id for e in received] == [first["messages"][0]["id"], message_id]
    rendered = await ana.render_template(received[1])
    assert rendered.body == "Your order Q-5521 is ready for pickup."
    await ana.mark_read(shop, [message_id])
    await receiver.wait_for(lambda r: statuses_of(r, message_id) == ["sent", "delivered", "read"])

    # Free-form text outside the window fails with 131047; once Ana writes, it goes through, and her message
    # reaches the business as an inbound webhook that the business can mark as read.
    outside = await send(gateway, text(wa_id, "Anything else?"))
    assert await receiver.wait_for(lambda r: failed_with(r, outside["messages"][0]["id"])) == 131047
    await ana.send_text(shop, "Can I pick it up at 5?")
    inbound = await receiver.wait_for(
        lambda r: [m for c in r.changes("messages") for m in c["value"].get("messages", [])]
    )
    assert inbound[0]["from_user_id"] == wa_id and inbound[0]["text"]["body"] == "Can I pick it up at 5?"
    assert inbound[0]["from"] == ana.core.phone_number.lstrip("+")
    reply = await send(gateway, text(wa_id, "Yes, see you at 5."))
    async with gateway.api() as api:
        marked = await api.post(
            f"/{shop}/messages",
            json={"messaging_product": "whatsapp", "status": "read", "message_id": inbound[0]["id"]},
        )
    assert marked.json() == {"success": True}
    events = await ana.inbox()
    replies = [e for e in events if isinstance(e, MessageReceived)]
    assert [e.text for e in replies] == ["Yes, see you at 5."] and replies[0].business == {"kind": "text"}
    assert any(isinstance(e, Read) for e in events)
    await receiver.wait_for(lambda r: "delivered" in statuses_of(r, reply["messages"][0]["id"]))

    # The same idempotency key twice is one message; with another body it is refused.
    first = await send(gateway, text(wa_id, "Your bread is warm."), **{"Idempotency-Key": "k-1"})
    again = await send(gateway, text(wa_id, "Your bread is warm."), **{"Idempotency-Key": "k-1"})
    assert first == again
    async with gateway.api() as api:
        clash = await api.post(f"/{shop}/messages", json=text(wa_id, "Other"), headers={"Idempotency-Key": "k-1"})
    assert clash.status_code == 422 and clash.json()["error"]["code"] == 100
    assert [e.text for e in await ana.inbox() if isinstance(e, MessageReceived)] == ["Your bread is warm."]

    # Stop promotions: the business hears of it, and marketing fails with 131050 even inside the window.
    await opt_in(relay, ana, shop, "marketing")
    stopped = await user_call(relay, ana, "POST", f"/v1/business/{shop}/stop-promotions")
    assert stopped.status_code == 200
    preference = await receiver.wait_for(lambda r: r.changes("user_preferences"))
    assert preference[0]["value"]["user_preferences"][0] == {
        **preference[0]["value"]["user_preferences"][0],
        "user_id": wa_id,
        "value": "stop",
    }
    offer = await send(gateway, template("weekly_offer", wa_id, "Ana"))
    assert await receiver.wait_for(lambda r: failed_with(r, offer["messages"][0]["id"])) == 131050

    # Ana writes STOP in the chat: only the business can read it, so the business records her opt-out.
    async with gateway.api() as api:
        stop = await api.delete(f"/{shop}/opt_ins/{wa_id}", params={"category": "UTILITY"})
    assert stop.json() == {"success": True}

    # A day and an hour later (the relay's clock moved), the window has closed again.
    relay.env["COVE_CLOCK_OFFSET_MS"] = str(DAY_AND_AN_HOUR_MS)
    relay.restart()
    late = await send(gateway, text(wa_id, "Still there?"))
    assert await receiver.wait_for(lambda r: failed_with(r, late["messages"][0]["id"]), timeout=30) == 131047
    no_longer = await send(gateway, template("order_ready", wa_id, "Q-5522"))
    assert await receiver.wait_for(lambda r: failed_with(r, no_longer["messages"][0]["id"])) == 131026

    # Every webhook arrived once, signed (the receiver refuses anything else), and statuses never went back.
    stats = receiver.stats()
    assert stats["rejected_signature"] == 0
    ids = [e["event_id"] for e in receiver.events()]
    assert len(ids) == len(set(ids))
    order = {"sent": 0, "delivered": 1, "read": 2, "failed": 3}
    by_message: dict[str, list[int]] = {}
    for mid, status, _ in receiver.statuses():
        by_message.setdefault(mid, []).append(order[status])
    assert all(seen == sorted(set(seen)) for seen in by_message.values())

    # The relay stored and logged no parameter value and no text.
    secrets = ["Q-5521", "Can I pick it up", "Yes, see you at 5", "Your bread is warm", "Anything else", "Still there"]
    assert_no_plaintext(await server_rows(relay.database_url), secrets)
    assert not any(s in relay.log() for s in secrets)


async def test_blocks_with_reasons_pause_the_template_and_tiers_cap_new_users(world, users, relay):
    gateway, receiver = world
    shop = gateway.phone_number_id
    await approved_templates(gateway, relay, receiver, WEEKLY_OFFER)
    people = [await users.register(name) for name in ("bo", "cy", "di", "ed")]
    for person in people:
        await opt_in(relay, person, shop, "marketing")
    offers = [await send(gateway, template("weekly_offer", p.core.phone_number, "friend")) for p in people[:3]]
    for offer in offers:
        await receiver.wait_for(lambda r, o=offer: "sent" in statuses_of(r, o["messages"][0]["id"]))

    # One "spam" block is not enough to pause; two reports-and-blocks among few users make the template RED:
    # paused 3 hours, and the number is flagged.
    blocked = await user_call(relay, people[0], "POST", f"/v1/business/{shop}/block", json={"reason": "spam"})
    assert blocked.status_code == 200
    await asyncio.sleep(1.5)  # the gateway reads the relay's events every second
    assert not receiver.changes("phone_number_quality_update")
    for person in people[1:3]:
        reported = await user_call(
            relay, person, "POST", f"/v1/business/{shop}/report", json={"reason": "spam", "block": True}
        )
        assert reported.status_code == 200
    paused = await receiver.wait_for(
        lambda r: [c for c in r.changes("message_template_status_update") if c["value"]["event"] == "PAUSED"]
    )
    assert paused[0]["value"]["message_template_name"] == "weekly_offer"
    flagged = await receiver.wait_for(lambda r: r.changes("phone_number_quality_update"))
    assert flagged[0]["value"]["event"] == "FLAGGED"
    after = await send(gateway, template("weekly_offer", people[3].core.phone_number, "friend"))
    assert await receiver.wait_for(lambda r: failed_with(r, after["messages"][0]["id"])) == 132015
    async with gateway.api() as api:
        number = (await api.get(f"/{shop}")).json()
        listed = (await api.get(f"/{shop}/message_templates")).json()["data"]
    assert number["quality_rating"] == "RED" and number["messaging_limit_tier"] == "TIER_250"
    assert [t["status"] for t in listed] == ["PAUSED"]


async def test_the_messaging_tier_caps_new_users_outside_windows(world, users, relay):
    gateway, receiver = world
    shop = gateway.phone_number_id
    await approved_templates(gateway, relay, receiver, ORDER_READY)
    fay = await users.register("fay")
    await opt_in(relay, fay, shop, "utility")
    # 250 users already reached today (an unverified business's tier), recorded as the send path records them.
    engine = create_engine(relay.database_url)
    try:
        async with engine.begin() as conn:
            now = time.time_ns() // 1_000_000
            rows = [
                {"business_id": shop, "user_account_id": f"earlier-{i}", "reached_at_ms": now - 60_000}
                for i in range(250)
            ]
            await conn.execute(insert(business_reach), rows)
    finally:
        await engine.dispose()
    capped = await send(gateway, template("order_ready", fay.core.phone_number, "B-2"))
    assert await receiver.wait_for(lambda r: failed_with(r, capped["messages"][0]["id"])) == 131048
    # Verification moves the business to 2,000 users a day, and Fay gets her message.
    verified = operator(relay, "business", "verify", "+14155550190")
    assert verified.returncode == 0, verified.stderr
    upgrade = await receiver.wait_for(lambda r: r.changes("phone_number_quality_update"))
    assert upgrade[0]["value"]["event"] == "UPGRADE" and upgrade[0]["value"]["current_limit"] == "TIER_2K"
    sent = await send(gateway, template("order_ready", fay.core.phone_number, "B-2"))
    assert [e.client_message_id for e in await fay.inbox() if isinstance(e, TemplateReceived)] == [
        sent["messages"][0]["id"]
    ]


async def test_a_receiver_down_for_a_while_loses_nothing_and_gets_nothing_twice(world, users, relay):
    gateway, receiver = world
    shop = gateway.phone_number_id
    gus = await users.register("gus")
    await gus.send_text(shop, "hello")  # opens the window: free-form is fine
    await receiver.wait_for(lambda r: [c for c in r.changes("messages") if c["value"].get("messages")])

    receiver.down()
    sent = [await send(gateway, text(gus.core.phone_number, f"note {i}")) for i in range(5)]
    await gus.inbox()  # delivery receipts: 5 more webhooks, all waiting
    await receiver.wait_for(lambda r: r.stats()["refused_down"] > 0)
    await asyncio.sleep(1)
    receiver.up()
    ids = [s["messages"][0]["id"] for s in sent]
    await receiver.wait_for(lambda r: all(statuses_of(r, i) == ["sent", "delivered"] for i in ids), timeout=60)
    counts = Counter(e["event_id"] for e in receiver.events())
    assert set(counts.values()) == {1}
    assert receiver.stats()["rejected_signature"] == 0
    status = gateway.cli("status")
    assert "dead: 0" in status.stdout


async def test_the_cove_command_line_shows_a_template_as_the_server_signed_it(world, relay, code_inbox):
    gateway, receiver = world
    shop = gateway.phone_number_id
    phone = "+14155550199"
    await register_profile(relay, code_inbox, gateway.home, "hal", phone)
    await approved_templates(gateway, relay, receiver, ORDER_READY)
    env = {**gateway.env, "COVE_PROFILE": "hal"}

    def cove(*args: str) -> subprocess.CompletedProcess[str]:
        return run_cove(list(args), env)

    opted = await asyncio.to_thread(cove, "businesses", "opt-in", SHOP_PHONE, "--category", "utility", "--source", "qr")
    assert opted.returncode == 0, opted.stderr
    assert "opted in to: utility (qr)" in opted.stdout
    about = await asyncio.to_thread(cove, "businesses", "show", shop)
    assert "Corner Bakery" in about.stdout and "not verified" in about.stdout
    # A business named by anything but a number or an account id is refused before it goes into a relay path:
    # "../accounts/me?" was DELETE /v1/accounts/me, Hal's own account.
    odd = await asyncio.to_thread(cove, "businesses", "withdraw", "../accounts/me?")
    assert odd.returncode == 2 and "neither a phone number" in " ".join(odd.stderr.split()), odd.stderr
    assert (await asyncio.to_thread(cove, "businesses", "show", shop)).returncode == 0
    sent = await send(gateway, template("order_ready", phone, "Z-42"))
    shown = await asyncio.to_thread(cove, "inbox")
    assert shown.returncode == 0, shown.stderr
    assert "[business]" in shown.stdout and "Your order Z-42 is ready for pickup." in shown.stdout
    # The command line sends read receipts for what it showed: the business hears "read".
    await receiver.wait_for(lambda r: "read" in statuses_of(r, sent["messages"][0]["id"]))

    # The business's own commands: its profile, and revoking the tokens its systems use.
    shown = gateway.cli("profile")
    assert shown.returncode == 0 and "Corner Bakery" in shown.stdout and "quality: GREEN" in shown.stdout
    assert "1 token(s) revoked" in gateway.cli("revoke-tokens").stdout
    async with gateway.api() as api:
        refused = await api.post(f"/{shop}/messages", json=text(phone, "hello"))
    assert refused.status_code == 401 and refused.json()["error"]["code"] == 190


async def test_interactive_buttons_reach_the_user_and_the_choice_comes_back_as_a_webhook(world, users):
    gateway, receiver = world
    shop = gateway.phone_number_id
    ivy = await users.register("ivy")
    await ivy.send_text(shop, "When can I pick up my cake?")
    inbound = await receiver.wait_for(
        lambda r: [m for c in r.changes("messages") for m in c["value"].get("messages", [])]
    )
    # Ivy never shared her number and the shop never sent to it: the shop knows her by her id alone, and
    # answers in Meta's recipient field, as client libraries do for a BSUID.
    assert "from" not in inbound[0]
    buttons = {
        "messaging_product": "whatsapp",
        "recipient": inbound[0]["from_user_id"],
        "type": "interactive",
        "interactive": {
            "type": "button",
            "body": {"text": "Pick a time for your cake"},
            "action": {
                "buttons": [
                    {"type": "reply", "reply": {"id": "slot-4", "title": "4 pm"}},
                    {"type": "reply", "reply": {"id": "slot-6", "title": "6 pm"}},
                ]
            },
        },
    }
    sent = await send(gateway, buttons)
    offered = [e for e in await ivy.inbox() if isinstance(e, PayloadReceived)]
    assert [e.client_message_id for e in offered] == [sent["messages"][0]["id"]]
    assert offered[0].business == {"kind": "text"}
    with pytest.raises(ValueError, match="not one of"):
        await ivy.answer(offered[0], "slot-9")
    await ivy.answer(offered[0], "slot-6")
    replies = await receiver.wait_for(
        lambda r: [
            m for c in r.changes("messages") for m in c["value"].get("messages", []) if m["type"] == "interactive"
        ]
    )
    assert replies[0]["interactive"] == {"type": "button_reply", "button_reply": {"id": "slot-6", "title": "6 pm"}}
    assert replies[0]["context"]["id"] == sent["messages"][0]["id"]


def test_a_receipt_that_overtakes_the_relays_answer_still_reports_sent_then_delivered(tmp_path):
    """The user's delivery receipt can reach the gateway before the relay answers the send: the message is
    recorded before it leaves, and the receipt reports `sent` first, so no status is lost or goes backwards."""
    core = ClientCore(ClientStore(tmp_path / "gateway.db"), bytes(32), {})
    store = GatewayStore(core.store)
    outbox = Outbox(store.db)
    identity = Identity("shop", "+14155550190")
    gateway = Gateway(CoveClient("http://127.0.0.1:9", core), store, outbox, None, identity, clock=lambda: 5_000)
    record = MessageRecord("wamid.one", "out", "ana", "CC.ANA", "wamid.one", "accepted", "utility", None)
    store.add_message(record, 1_000)
    with core.store.transaction():
        gateway._move("wamid.one", Status.DELIVERED, 2_000)  # the receipt, first
        gateway._move("wamid.one", Status.SENT, 3_000)  # then the relay's answer: nothing more to say
    sent = [json.loads(e.body) for e in outbox.due(10_000, 10)]
    statuses = [s["status"] for e in sent for s in e["entry"][0]["changes"][0]["value"]["statuses"]]
    assert statuses == ["sent"]  # the second waits for the first (per-message order)
    outbox.delivered(outbox.due(10_000, 10)[0].event_id, 10_000)
    after = [json.loads(e.body) for e in outbox.due(10_000, 10)]
    assert [s["status"] for e in after for s in e["entry"][0]["changes"][0]["value"]["statuses"]] == ["delivered"]
    assert store.message("wamid.one").status == "delivered"
