"""The business rules on a real relay's send path: the 24 h service window a user opens, opt-ins per category,
stop promotions, blocks and template review, refused with the Cloud API's codes; from metadata only."""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

import httpx
from sqlalchemy import update
from websockets.asyncio.client import connect

from cove.business.storage import business_reach, business_templates, business_windows
from cove.db import create_engine
from test_business_platform import UTILITY, business, cove, http, pair_rows

MARKETING: dict[str, Any] = {
    "name": "weekly_offer",
    "language": "en",
    "category": "MARKETING",
    "components": [
        {
            "type": "BODY",
            "text": "Hello {{1}}, this week every sourdough loaf is 20% off at our shop.",
            "example": {"body_text": [["Ana"]]},
        }
    ],
}
DAY_AND_AN_HOUR_MS = 25 * 3_600_000
TEXT = {"kind": "text"}


def template_header(template: dict[str, Any], version: int = 1) -> dict[str, Any]:
    return {
        "kind": "template",
        "template_id": template["template_id"],
        "template_version": version,
        "language": template["language"],
        "category": template["category"],
    }


async def send_body(api: httpx.AsyncClient, to: str, header: dict[str, Any] | None) -> dict[str, Any]:
    """A send as a client would make it; the ciphertext is opaque to the relay, so any bytes do here."""
    identity = (await api.get(f"/v1/keys/{to}/identity")).json()
    body: dict[str, Any] = {
        "client_message_id": uuid.uuid4().hex,
        "messages": [
            {
                "device_id": d["device_id"],
                "registration_id": d["registration_id"],
                "kind": 1,
                "body": base64.b64encode(b"opaque ciphertext").decode(),
            }
            for d in identity["devices"]
        ],
    }
    if header is not None:
        body["business"] = header
    return body


async def send(api: httpx.AsyncClient, to: str, header: dict[str, Any] | None = TEXT) -> httpx.Response:
    return await api.put(f"/v1/messages/{to}", json=await send_body(api, to, header))


def refused(response: httpx.Response, status: int, cloud_code: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == "business_rule"
    assert error["cloud_api"]["code"] == cloud_code and error["cloud_api"]["type"] == "OAuthException"
    assert error["cloud_api"]["error_data"]["messaging_product"] == "whatsapp"
    return error


def ok(response: httpx.Response) -> None:
    assert response.status_code == 200, response.text
    assert response.json()["queued"] == 1


async def approved_template(relay, owner: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:  # noqa: ANN001
    submitted = await owner.post("/v1/business/templates", json=body)
    assert submitted.status_code == 201, submitted.text
    template = submitted.json()
    done = cove(relay, "business", "approve", template["template_id"])
    assert done.returncode == 0, done.stderr
    return {**template, "category": body["category"]}


async def set_template_status(relay, template_id: str, status: str, paused_until_ms: int | None = None) -> None:  # noqa: ANN001
    engine = create_engine(relay.database_url)
    try:
        async with engine.begin() as conn:
            t = business_templates
            values = {"status": status, "paused_until_ms": paused_until_ms}
            await conn.execute(update(t).where(t.c.template_id == template_id).values(**values))
    finally:
        await engine.dispose()


async def test_free_form_text_only_inside_the_window_the_user_opened_and_it_closes_after_24_hours(users, relay):
    shop = await business(users, relay, "shop", "+14155550171")
    ana = await users.register("ana", "+14155550172")
    bob = await users.register("bob", "+14155550173")
    s, a = shop.core.account_id, ana.core.account_id
    async with http(relay, shop) as owner, http(relay, ana) as user, http(relay, bob) as other:
        error = refused(await send(owner, a), 400, 131047)
        assert error["cloud_api"]["message"] == "(#131047) Re-engagement message"
        refused(await send(owner, a, header=None), 400, 131047)  # no header: a business's send is free-form
        # A plain user cannot claim a business header; plain users' messages still go as before.
        assert (await send(other, a)).json()["error"]["code"] == "not_a_business"
        ok(await send(other, a, header=None))

        ok(await send(user, s, header=None))  # Ana writes: the window opens
        ok(await send(owner, a))
        ok(await send(owner, a, header=None))
        refused(await send(owner, bob.core.account_id), 400, 131047)  # only for Ana
        assert [r["user_account_id"] for r in await pair_rows(relay, business_windows)] == [a]
        assert await pair_rows(relay, business_reach) == []  # replies inside a window do not count for the tier

    relay.env["COVE_CLOCK_OFFSET_MS"] = str(DAY_AND_AN_HOUR_MS)
    relay.restart()
    async with http(relay, shop) as owner, http(relay, ana) as user:
        refused(await send(owner, a), 400, 131047)  # 25 h later the window has closed
        ok(await send(user, s, header=None))
        ok(await send(owner, a))


async def test_templates_outside_the_window_need_an_opt_in_and_respect_stop_promotions_blocks_and_review(users, relay):
    shop = await business(users, relay, "shop", "+14155550174")
    ana = await users.register("ana", "+14155550175")
    s, a = shop.core.account_id, ana.core.account_id
    async with http(relay, shop) as owner, http(relay, ana) as user:
        utility = await approved_template(relay, owner, UTILITY)
        marketing = await approved_template(relay, owner, MARKETING)

        error = refused(await send(owner, a, template_header(utility)), 400, 131026)
        assert "No active utility opt-in" in error["cloud_api"]["error_data"]["details"]
        opted = await user.put(f"/v1/business/{s}/opt-in", json={"categories": ["utility"], "source": "web"})
        assert opted.status_code == 200, opted.text
        ok(await send(owner, a, template_header(utility)))
        refused(await send(owner, a, template_header(marketing)), 400, 131026)  # opted in to utility only
        await user.put(f"/v1/business/{s}/opt-in", json={"categories": ["marketing"], "source": "web"})
        ok(await send(owner, a, template_header(marketing)))
        refused(await send(owner, a), 400, 131047)  # templates do not open a window for free-form text
        # Sent outside a window: Ana now counts once against the business's messaging limit.
        assert [r["user_account_id"] for r in await pair_rows(relay, business_reach)] == [a]

        await user.post(f"/v1/business/{s}/stop-promotions")
        refused(await send(owner, a, template_header(marketing)), 400, 131050)
        ok(await send(owner, a, template_header(utility)))
        ok(await send(user, s, header=None))
        refused(await send(owner, a, template_header(marketing)), 400, 131050)  # inside the window too
        await user.post(f"/v1/business/{s}/resume-promotions")
        ok(await send(owner, a, template_header(marketing)))

        # The header must name the approved version, language and category exactly, of this business's template.
        refused(await send(owner, a, template_header(utility, version=2)), 404, 132001)
        refused(await send(owner, a, {**template_header(utility), "category": "MARKETING"}), 404, 132001)
        refused(await send(owner, a, {**template_header(utility), "template_id": str(uuid.uuid4())}), 404, 132001)
        incomplete = await send(owner, a, {"kind": "template", "template_id": utility["template_id"]})
        assert incomplete.status_code == 400 and incomplete.json()["error"]["code"] == "invalid_request"
        pending = await owner.post("/v1/business/templates", json={**UTILITY, "name": "order_delayed"})
        pending_header = {**template_header(utility), "template_id": pending.json()["template_id"]}
        refused(await send(owner, a, pending_header), 404, 132001)

        await set_template_status(relay, utility["template_id"], "PAUSED", int(time.time() * 1000) + 3 * 3_600_000)
        paused = await send(owner, a, template_header(utility))
        error = refused(paused, 400, 132015)
        assert 0 < int(paused.headers["Retry-After"]) <= 3 * 3600 and error["retry_after"] == int(
            paused.headers["Retry-After"]
        )
        await set_template_status(relay, utility["template_id"], "APPROVED")
        ok(await send(owner, a, template_header(utility)))

        await user.post(f"/v1/business/{s}/block", json={"reason": "spam"})
        for header in (TEXT, template_header(utility), template_header(marketing)):
            refused(await send(owner, a, header), 400, 131026)  # inside the window Ana opened, too
        await user.delete(f"/v1/business/{s}/block")
        ok(await send(owner, a))


async def test_a_refusal_over_the_websocket_has_the_same_content(users, relay):
    shop = await business(users, relay, "shop", "+14155550176")
    ana = await users.register("ana", "+14155550177")
    async with http(relay, shop) as owner:
        frame = {"type": "send", "request_id": "r1", "to": ana.core.account_id}
        frame |= await send_body(owner, ana.core.account_id, TEXT)
    url = relay.url.replace("http", "ws") + "/v1/websocket"
    async with connect(url, additional_headers={"Authorization": f"Bearer {shop.core.token}"}) as ws:
        await ws.send(json.dumps(frame))
        while (answer := json.loads(await ws.recv()))["type"] != "response":
            pass
    assert answer["request_id"] == "r1" and answer["status"] == 400
    assert answer["body"]["error"]["code"] == "business_rule"
    assert answer["body"]["error"]["cloud_api"]["code"] == 131047


async def test_the_marketing_cap_counts_every_business_and_each_number_has_a_pair_rate_and_a_throughput(users, relay):
    shops = [await business(users, relay, f"shop{i}", f"+1415555018{i}") for i in range(3)]
    ana = await users.register("ana", "+14155550185")
    a = ana.core.account_id
    headers = []
    async with http(relay, ana) as user:
        for shop in shops:
            async with http(relay, shop) as owner:
                headers.append(template_header(await approved_template(relay, owner, MARKETING)))
            opted = await user.put(
                f"/v1/business/{shop.core.account_id}/opt-in", json={"categories": ["marketing"], "source": "web"}
            )
            assert opted.status_code == 200
    # Two marketing templates in a day reach Ana, from whichever businesses; the third waits about a day.
    for shop, header in zip(shops, headers, strict=True):
        async with http(relay, shop) as owner:
            answer = await send(owner, a, header)
        if shop is not shops[2]:
            ok(answer)
    error = refused(answer, 400, 131049)
    assert 23 * 3600 < error["retry_after"] <= 24 * 3600

    # Inside a window Ana opened, one number may still write to her only so fast: a burst of 45 (the template
    # above was one of them), then 131056.
    shop = shops[0]
    async with http(relay, ana) as user:
        ok(await send(user, shop.core.account_id, header=None))
    async with http(relay, shop) as owner:
        answers = []
        while len(answers) < 200 and (not answers or answers[-1].status_code == 200):
            answers.append(await send(owner, a))
    # The bucket refills one every 6 s, so a loaded machine may fit a few more before the refusal; never fewer.
    assert len(answers) >= 45 and [r.status_code for r in answers[:-1]] == [200] * (len(answers) - 1)
    assert 0 < refused(answers[-1], 429, 131056)["retry_after"] <= 6

    # A number's throughput (set low by the operator here) refuses the next message in the same second.
    limited = cove(relay, "business", "limits", "+14155550181", "--throughput", "1")
    assert limited.returncode == 0, limited.stderr
    assert "1 messages/s" in limited.stdout
    bo, cy = await users.register("bo"), await users.register("cy")
    async with http(relay, shops[1]) as owner:
        for person in (bo, cy):
            async with http(relay, person) as user:
                ok(await send(user, shops[1].core.account_id, header=None))
        first, second = await send(owner, bo.core.account_id), await send(owner, cy.core.account_id)
    ok(first)
    assert refused(second, 429, 130429)["retry_after"] == 1
