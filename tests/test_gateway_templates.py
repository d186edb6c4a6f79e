"""Templates through the gateway as a Cloud API client sees them: Meta's list and single-template shapes, cursor
paging walked both ways, filters and fields, a duplicate name and language refused as Meta refuses it, and edits.

The reference shapes are Meta's template-management page
(https://developers.facebook.com/documentation/business-messaging/whatsapp/templates/template-management): the
list's example response, its default fields, and error 100 subcode 2388024.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cove.business.errors import CloudApiError
from cove.business.gateway import template_listing as listing
from cove.business.keys import BSUID
from cove.client.events import TemplateReceived
from gateway_world import operator, shop_gateway

SHOP_PHONE = "+14155550170"
PROFILE = {"display_name": "Lucky Shrub", "about": "Succulents and more", "vertical": "RETAIL"}

# Meta's example list item (positional), as the reference page shows it: its keys and its components' nesting.
META_ITEM = {
    "name": "coupon_expiration_reminder_number_vars",
    "parameter_format": "POSITIONAL",
    "components": [
        {"type": "HEADER", "format": "TEXT", "text": "Act fast, {{1}}!", "example": {"header_text": ["Pablo"]}},
        {
            "type": "BODY",
            "text": "Just a quick reminder: your coupon code, {{1}}, expires in only {{2}} days! Happy shopping.",
            "example": {"body_text": [["SUMMER20", "10"]]},
        },
        {"type": "FOOTER", "text": "Lucky Shrub Succulents"},
        {
            "type": "BUTTONS",
            "buttons": [
                {"type": "URL", "text": "See deals", "url": "https://www.luckyshrub.com/deals"},
                {"type": "QUICK_REPLY", "text": "Unsubscribe"},
            ],
        },
    ],
    "language": "en",
    "status": "APPROVED",
    "category": "MARKETING",
    "id": "1304694804498707",
}


def creation(name: str, language: str = "en", body: str = "Your order {{1}} is ready for pickup.") -> dict[str, Any]:
    return {
        "name": name,
        "language": language,
        "category": "UTILITY",
        "components": [{"type": "BODY", "text": body, "example": {"body_text": [["A-17"]]}}],
    }


def shape(value: Any) -> Any:
    """The keys and nesting of a JSON value, without its values."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v) for v in value]
    return type(value).__name__


@pytest.fixture
async def world(relay, code_inbox, tmp_path: Path):  # noqa: ANN001, ANN201
    """The relay, the shop's gateway and its webhook receiver."""
    async with shop_gateway(relay, code_inbox, tmp_path, SHOP_PHONE, PROFILE) as world:
        yield world


async def test_templates_list_and_read_in_metas_shapes_with_paging_filters_and_fields(world, relay):
    gateway, _ = world
    shop = gateway.phone_number_id
    async with gateway.api() as api:
        coupon = {k: META_ITEM[k] for k in ("name", "language", "category", "components")}
        made = await api.post(f"/{shop}/message_templates", json=coupon)
        assert made.status_code == 200, made.text
        coupon_id = made.json()["id"]
        assert operator(relay, "business", "approve", coupon_id).returncode == 0

        # The list item has exactly Meta's keys and nesting; the components come back as they were created.
        listed = (await api.get(f"/{shop}/message_templates")).json()
        item = listed["data"][0]
        assert shape(item) == shape(META_ITEM)
        assert item["components"] == META_ITEM["components"] and item["id"] == coupon_id
        assert set(listed["paging"]["cursors"]) == {"before", "after"} and "next" not in listed["paging"]
        # GET /{template_id}: the same object.
        single = await api.get(f"/{coupon_id}")
        assert single.status_code == 200 and single.json() == item
        assert (await api.get(f"/{coupon_id}", params={"fields": "name,status"})).json() == {
            "name": META_ITEM["name"],
            "status": "APPROVED",
            "id": coupon_id,
        }

        # The same name and language again: Meta's error, and nothing overwritten.
        again = await api.post(f"/{shop}/message_templates", json=creation(META_ITEM["name"]))
        error = again.json()["error"]
        assert again.status_code == 400 and error["code"] == 100 and error["error_subcode"] == 2388024
        assert error["error_user_title"] == "Content in This Language Already Exists"
        assert (await api.get(f"/{coupon_id}")).json() == item
        # Another language of the same name is a new template.
        spanish = await api.post(f"/{shop}/message_templates", json=creation(META_ITEM["name"], "es"))
        assert spanish.status_code == 200 and spanish.json()["status"] == "PENDING"

        for i in range(5):
            made = await api.post(f"/{shop}/message_templates", json=creation(f"order_{i}"))
            assert made.status_code == 200, made.text
        everything = [(t["name"], t["language"]) for t in (await api.get(f"/{shop}/message_templates")).json()["data"]]
        assert len(everything) == 7 and everything == sorted(everything)

        # Walk forward by `next` links two at a time, then back by `previous`: every template once, in order.
        pages, url, params = [], f"/{shop}/message_templates", {"limit": "2", "fields": "name,language"}
        while True:
            got = (await api.get(url, params=params)).json()
            pages.append(got)
            if "next" not in got["paging"]:
                break
            url, params = got["paging"]["next"], None
        walked = [(t["name"], t["language"]) for p in pages for t in p["data"]]
        assert walked == everything and [len(p["data"]) for p in pages] == [2, 2, 2, 1]
        assert set(pages[0]["data"][0]) == {"name", "language", "id"}
        back, got = [], pages[-1]
        while "previous" in got["paging"]:
            got = (await api.get(got["paging"]["previous"])).json()
            back = [(t["name"], t["language"]) for t in got["data"]] + back
        assert back == everything[:-1]

        # Filters: status, part of the name, language, body content; and the summary a client library asks for.
        approved = (await api.get(f"/{shop}/message_templates", params={"status": "APPROVED"})).json()["data"]
        assert [t["id"] for t in approved] == [coupon_id]
        named = (await api.get(f"/{shop}/message_templates", params={"name": "order_", "limit": 3})).json()
        assert [t["name"] for t in named["data"]] == ["order_0", "order_1", "order_2"]
        spanish_only = (await api.get(f"/{shop}/message_templates", params={"language": "es"})).json()["data"]
        assert [t["language"] for t in spanish_only] == ["es"]
        summary = await api.get(
            f"/{shop}/message_templates",
            params={"content": "coupon code", "summary": "total_count,message_template_count,message_template_limit"},
        )
        assert [t["id"] for t in summary.json()["data"]] == [coupon_id]
        assert summary.json()["summary"] == {
            "total_count": 1,
            "message_template_count": 6,
            "message_template_limit": 250,
        }

        # Bad parameters are Graph errors (100), never a traceback; a field Meta has but Cove lacks is left out.
        for bad in ({"after": "not-a-cursor"}, {"fields": "name,secret"}, {"status": "LOST"}, {"name": "../x"}):
            refused = await api.get(f"/{shop}/message_templates", params=bad)
            assert refused.status_code == 400 and refused.json()["error"]["code"] == 100, bad
        lenient = await api.get(f"/{coupon_id}", params={"fields": "name,previous_category,quality_score"})
        assert lenient.json() == {"name": META_ITEM["name"], "quality_score": lenient.json()["quality_score"],
                                  "id": coupon_id}  # fmt: skip
        assert lenient.json()["quality_score"]["score"] == "GREEN"
        unknown = await api.get("/0b8f3c4e-1111-4222-8333-444455556666")
        assert unknown.status_code == 400 and unknown.json()["error"]["code"] == 100

        # An edit replaces the components and sends the template back to review; an approved one keeps its category.
        edit = {"components": [{"type": "BODY", "text": "Your coupon is waiting. Use it this week."}]}
        edited = await api.post(f"/{coupon_id}", json=edit)
        assert edited.json() == {"success": True}
        after = (await api.get(f"/{coupon_id}")).json()
        assert after["status"] == "PENDING" and after["components"] == edit["components"]
        assert operator(relay, "business", "approve", coupon_id).returncode == 0
        locked = await api.post(f"/{coupon_id}", json={"category": "UTILITY"})
        assert locked.status_code == 400 and "category_locked" in locked.json()["error"]["error_data"]["details"]

        # Delete one language by the template's id (hsm_id), as Meta allows.
        spanish_id = spanish.json()["id"]
        gone = await api.delete(f"/{shop}/message_templates", params={"name": META_ITEM["name"], "hsm_id": spanish_id})
        assert gone.json() == {"success": True}
        assert (await api.get(f"/{spanish_id}")).status_code == 400
        assert (await api.get(f"/{coupon_id}")).status_code == 200


APPOINTMENT = {
    "name": "appointment_reminder",
    "language": "en",
    "category": "UTILITY",
    "components": [
        {"type": "BODY", "text": "Your appointment is on {{1}}. Will you come?", "example": {"body_text": [["Mon"]]}},
        {
            "type": "BUTTONS",
            "buttons": [
                {"type": "QUICK_REPLY", "text": "Yes, I will"},
                {"type": "QUICK_REPLY", "text": "Reschedule"},
                {"type": "URL", "text": "Details", "url": "https://shrub.example/a/{{1}}",
                 "example": ["https://shrub.example/a/A-17"]},
            ],
        },
    ],
}  # fmt: skip


def appointment(to: str, *buttons: dict[str, Any]) -> dict[str, Any]:
    """Meta's send shape: index as a string, a quick reply's payload, a URL button's suffix."""
    return {
        "messaging_product": "whatsapp",
        "to": to,
        "type": "template",
        "template": {
            "name": "appointment_reminder",
            "language": {"code": "en"},
            "components": [{"type": "body", "parameters": [{"type": "text", "text": "Monday 10:00"}]}, *buttons],
        },
    }


def quick_reply(index: str, payload: str) -> dict[str, Any]:
    return {"type": "button", "sub_type": "quick_reply", "index": index,
            "parameters": [{"type": "payload", "payload": payload}]}  # fmt: skip


URL_SUFFIX = {"type": "button", "sub_type": "url", "index": "2", "parameters": [{"type": "text", "text": "A-17"}]}


async def test_a_quick_reply_payload_comes_back_in_the_button_webhook_when_the_user_taps_it(world, relay, users):
    gateway, receiver = world
    shop = gateway.phone_number_id
    async with gateway.api() as api:
        made = await api.post(f"/{shop}/message_templates", json=APPOINTMENT)
        assert operator(relay, "business", "approve", made.json()["id"]).returncode == 0
        ana = await users.register("ana")
        async with httpx.AsyncClient(base_url=relay.url, headers={"Authorization": f"Bearer {ana.core.token}"}) as r:
            opted = await r.put(f"/v1/business/{shop}/opt-in", json={"categories": ["utility"], "source": "web"})
            assert opted.status_code == 200, opted.text

        # A payload for a button that is not a quick reply does not fit the template (132000), nor a missing suffix.
        for wrong in ([quick_reply("2", "x")], [quick_reply("0", "confirm-A17")]):
            refused = await api.post(f"/{shop}/messages", json=appointment(ana.core.phone_number, *wrong))
            assert refused.status_code == 400 and refused.json()["error"]["code"] == 132000, refused.text
        sent = await api.post(
            f"/{shop}/messages", json=appointment(ana.core.phone_number, quick_reply("0", "confirm-A17"), URL_SUFFIX)
        )
        assert sent.status_code == 200, sent.text
    message_id = sent.json()["messages"][0]["id"]

    # Ana's client renders the signed template: her buttons, the URL with its suffix, the payloads it carries.
    received = [e for e in await ana.inbox() if isinstance(e, TemplateReceived)]
    assert [e.client_message_id for e in received] == [message_id]
    rendered = await ana.render_template(received[0])
    assert [(b.text, b.payload, b.url) for b in rendered.buttons] == [
        ("Yes, I will", "confirm-A17", None),
        ("Reschedule", "Reschedule", None),  # no payload sent: the button's text, as Meta does
        ("Details", None, "https://shrub.example/a/A-17"),
    ]
    with pytest.raises(ValueError, match="not one of the message's quick replies"):
        await ana.tap(received[0], "Details")
    await ana.tap(received[0], "Yes, I will")
    await ana.tap(received[0], "Reschedule")

    taps = await receiver.wait_for(
        lambda r: (
            (
                found := [
                    m for c in r.changes("messages") for m in c["value"].get("messages", []) if m["type"] == "button"
                ]
            )
            and len(found) == 2
            and found
        )  # fmt: skip
    )
    assert [t["button"] for t in taps] == [
        {"payload": "confirm-A17", "text": "Yes, I will"},
        {"payload": "Reschedule", "text": "Reschedule"},
    ]
    assert all(t["context"]["id"] == message_id and t["context"]["from"] == SHOP_PHONE for t in taps)
    # Sent to her number, so the business may see it: ``from`` beside her business-scoped ``from_user_id``.
    assert set(taps[0]) == {"context", "from", "from_user_id", "id", "timestamp", "type", "button"}
    assert re.fullmatch(BSUID, taps[0]["from_user_id"])


# The page rule, without processes ----------------------------------------------------------------------------------

VIEW = st.builds(
    lambda name, language, n: {
        "template_id": f"00000000-0000-4000-8000-{n:012d}",
        "name": name,
        "language": language,
        "category": "utility",
        "status": "APPROVED",
        "reason": None,
        "version": 1,
        "parameter_format": "POSITIONAL",
        "components": [{"type": "BODY", "text": "Hello"}],
        "quality": "GREEN",
        "updated_at_ms": 0,
    },
    st.text("abz_1", min_size=1, max_size=4),
    st.sampled_from(["en", "es", "pt_BR"]),
    st.integers(0, 10**6),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(VIEW, max_size=30, unique_by=lambda v: v["template_id"]), st.integers(1, 7))
def test_walking_the_pages_forward_or_back_visits_every_template_once_in_order(views, limit):
    everything = sorted((v["name"], v["language"], v["template_id"]) for v in views)
    seen, query = [], listing.parse_query({"limit": str(limit)})
    while True:
        page = listing.page(views, query)
        assert len(page.data) <= limit
        seen += [(t["name"], t["language"], t["id"]) for t in page.data]
        if not page.has_next:
            break
        query = listing.parse_query({"limit": str(limit), "after": page.after})
    assert seen == everything
    back = []
    while True:
        back = [(t["name"], t["language"], t["id"]) for t in page.data] + back
        if not page.has_previous:
            break
        page = listing.page(views, listing.parse_query({"limit": str(limit), "before": page.before}))
    assert back == everything


@pytest.mark.parametrize(
    "params",
    [{"limit": "0"}, {"limit": "-1"}, {"limit": "x"}, {"after": "e30"}, {"before": "!!"}, {"after": "a", "before": "b"},
     {"language": "english"}, {"quality_score": "BLUE"}, {"summary": "everything"}, {"name": "A"}],
)  # fmt: skip
def test_bad_listing_parameters_are_invalid_parameter_errors(params):
    with pytest.raises(CloudApiError) as refused:
        listing.parse_query(params)
    assert refused.value.code == 100


def test_a_big_limit_is_served_as_the_maximum_and_rejected_reasons_are_metas_codes():
    assert listing.parse_query({"limit": "100000"}).limit == listing.MAX_LIMIT
    rejected = {"status": "REJECTED", "reason": "promotional wording in a utility template"}
    assert listing.rejected_reason(rejected) == "PROMOTIONAL"
    assert listing.rejected_reason({**rejected, "reason": "unclear"}) == "NONE"
    assert listing.rejected_reason({"status": "APPROVED", "reason": None}) == "NONE"
