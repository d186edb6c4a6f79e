"""Templates with a real relay and gateway, against Meta's reference: the list pages with Meta's cursors, one
template reads as Meta's, a name that exists in that language is refused as Meta refuses it, a template with a
quick-reply and a URL button is sent with both values, and pywa 4.5.0's client lists and reads them."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from contracts.harness import against, pywa_client
from contracts.reference import responses, sends
from gateway_world import GatewayProcess, Receiver, operator


def template(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "language": "en",
        "category": "UTILITY",
        "components": [
            {"type": "BODY", "text": "Your order {{1}} is ready.", "example": {"body_text": [["A-17"]]}},
            {
                "type": "BUTTONS",
                "buttons": [
                    {"type": "QUICK_REPLY", "text": "Stop updates"},
                    {
                        "type": "URL",
                        "text": "Track it",
                        "url": "https://luckyshrimp.example/track/{{1}}",
                        "example": ["https://luckyshrimp.example/track/A-17"],
                    },
                ],
            },
        ],
    }


async def test_templates_list_page_read_and_send_as_metas(shop: tuple[GatewayProcess, Receiver], users, relay):
    gateway, _ = shop
    biz = gateway.phone_number_id
    names = ["order_ready", "order_shipped", "order_late"]
    async with gateway.api() as api:
        ids = {}
        for name in names:
            made = await api.post(f"/{biz}/message_templates", json=template(name))
            assert made.status_code == 200, made.text
            ids[name] = made.json()["id"]
        assert operator(relay, "business", "approve", ids["order_ready"]).returncode == 0

        # Two pages of two: Meta's cursors, nothing twice, nothing missing.
        first = await api.get(f"/{biz}/message_templates", params={"limit": 2})
        assert first.status_code == 200, first.text
        assert against(responses.TemplateList, first.json()) == []
        after = first.json()["paging"]["cursors"]["after"]
        assert first.json()["paging"].get("next")
        second = await api.get(f"/{biz}/message_templates", params={"limit": 2, "after": after})
        assert against(responses.TemplateList, second.json()) == []
        listed = [t["name"] for t in first.json()["data"] + second.json()["data"]]
        assert sorted(listed) == sorted(names)

        one = await api.get(f"/{ids['order_ready']}")
        assert one.status_code == 200, one.text
        assert against(responses.Template, one.json()) == []
        assert one.json()["status"] == "APPROVED" and one.json()["parameter_format"] == "POSITIONAL"

        again = await api.post(f"/{biz}/message_templates", json=template("order_ready"))
        assert again.status_code == 400 and against(responses.GraphError, again.json()) == []
        assert again.json()["error"]["code"] == 100

        # Sent with a quick-reply payload and a URL suffix, to a user who opted in.
        ivy = await users.register("ivy")
        async with httpx.AsyncClient(
            base_url=relay.url, headers={"Authorization": f"Bearer {ivy.core.token}"}
        ) as user_api:
            opt_in = {"categories": ["utility"], "source": "web"}
            opted = await user_api.put(f"/v1/business/{biz}/opt-in", json=opt_in)
            assert opted.status_code == 200, opted.text
        body = sends.template(ivy.core.phone_number, "order_ready", ["A-17"], quick_reply="stop", url_suffix="A-17")
        sent = await api.post(f"/{biz}/messages", json=body)
        assert sent.status_code == 200, sent.text
        assert against(responses.SendResponse, sent.json()) == []

    # pywa's client lists them and reads one.
    wa = pywa_client(gateway)
    wa_listed = await asyncio.to_thread(lambda: [t.name for t in wa.get_templates(waba_id=biz)])
    assert sorted(wa_listed) == sorted(names)
    read = await asyncio.to_thread(wa.get_template, ids["order_ready"])
    assert read.name == "order_ready" and str(read.status) == "APPROVED"
