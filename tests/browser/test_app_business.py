"""A business in `cove app`: its display name and verified badge, its interactive message with reply buttons, and
the person's tap reaching the business as the choice it offered."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Page, expect

from browser.test_app_chat import ALICE, _checked, _register
from cove.client.errors import RelayError
from cove.client.events import PayloadReceived
from cove.client.profile import open_profile
from cove.client.transport import CoveClient
from cove.protocol.templates.message import split_template_message
from cove.testing import run_cove
from test_business_types import BUTTONS as BUTTONS_MESSAGE

SHOP = "+14155550161"
BUTTONS = BUTTONS_MESSAGE.model_dump(mode="json", exclude_none=True)  # "Pick a time": 4 pm or 6 pm


CAKE_READY = {
    "name": "cake_ready",
    "language": "en",
    "category": "UTILITY",
    "components": [
        {"type": "BODY", "text": "Your cake {{1}} is ready.", "example": {"body_text": [["A-17"]]}},
        {"type": "BUTTONS", "buttons": [{"type": "QUICK_REPLY", "text": "On my way"}]},
    ],
}


def _api(relay, shop: CoveClient) -> httpx.AsyncClient:  # noqa: ANN001
    return httpx.AsyncClient(base_url=relay.url, headers={"Authorization": f"Bearer {shop.core.token}"})


def _as_shop(relay, home: Path, step: Any) -> Any:  # noqa: ANN001
    """``step(client)`` as the bakery's own SDK client, in a thread of its own (Playwright's loop runs in this one)."""

    async def run() -> Any:
        core = open_profile("shop", home)
        try:
            async with CoveClient(relay.url, core) as shop:
                return await step(shop)
        finally:
            core.store.close()

    with ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, run()).result()


def test_a_verified_business_offers_buttons_and_gets_the_tap(
    open_app, code_inbox, relay, page: Page, tmp_path: Path
) -> None:  # noqa: ANN001, E501
    async def open_shop(shop: CoveClient) -> None:
        await shop.request_code(SHOP)
        await shop.register(SHOP, await code_inbox.code_for(SHOP))
        async with _api(relay, shop) as api:
            made = await api.put(
                "/v1/business/profile", json={"display_name": "Corner Bakery", "vertical": "RESTAURANT"}
            )
            assert made.status_code == 200, made.text

    _as_shop(relay, tmp_path, open_shop)
    assert run_cove(["business", "verify", SHOP], relay.env).returncode == 0

    app = open_app("alice")
    _register(page, app.url, ALICE, code_inbox)
    page.get_by_label("To").fill(SHOP)  # Alice writes first: the business may answer in free form for 24 hours
    page.get_by_label("Message", exact=True).fill("Can I order a cake?")
    page.get_by_role("button", name="Send", exact=True).click()
    expect(page.locator("#messages li.mine")).to_contain_text("Can I order a cake?")

    async def offer(shop: CoveClient) -> None:
        alice = await shop.resolve(ALICE)
        cmid = uuid.uuid4().hex
        payload = {"v": 1, "type": "interactive", "id": cmid, "ts": int(time.time() * 1000), "interactive": BUTTONS}
        await shop.send(shop.core.compose_business(alice, cmid, json.dumps(payload).encode(), {"kind": "text"}))

    _as_shop(relay, tmp_path, offer)
    expect(page.get_by_role("button", name="4 pm")).to_be_visible()  # live, on the open conversation
    page.reload()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Corner Bakery")
    expect(page.get_by_role("heading", level=1)).to_contain_text("✓ verified business")
    expect(page.locator("#messages")).to_contain_text("Pick a time")
    _checked(page, "app-business")
    page.get_by_role("button", name="4 pm").click()
    expect(page.get_by_role("button", name="4 pm")).to_have_count(0)  # answered once

    async def replies(shop: CoveClient) -> list[dict[str, Any]]:
        return [e.payload for e in await shop.inbox() if isinstance(e, PayloadReceived)]

    [reply] = [p for p in _as_shop(relay, tmp_path, replies) if p.get("type") == "interactive_reply"]
    assert reply["reply"] == {"id": "slot-4", "title": "4 pm", "type": "button_reply"}

    # A template: shown as the server signed it, with the business's values, and its quick reply tapped.
    async def submit(shop: CoveClient) -> str:
        async with _api(relay, shop) as api:
            submitted = await api.post("/v1/business/templates", json=CAKE_READY)
            assert submitted.status_code == 201, submitted.text
            return submitted.json()["template_id"]

    template_id = _as_shop(relay, tmp_path, submit)
    assert run_cove(["business", "approve", template_id], relay.env).returncode == 0

    async def send_template(shop: CoveClient) -> None:
        approved = await shop.approved_template(template_id)
        header, sealed = split_template_message(approved, ["A-17"])
        cmid = uuid.uuid4().hex
        payload = {"v": 1, "type": "template", "id": cmid, "ts": int(time.time() * 1000), "sealed": sealed.decode()}
        visible = {"kind": "template", "template_id": template_id, "template_version": header.version,
                   "language": header.language, "category": header.category.value.upper()}  # fmt: skip
        await shop.send(
            shop.core.compose_business(await shop.resolve(ALICE), cmid, json.dumps(payload).encode(), visible)
        )

    _as_shop(relay, tmp_path, send_template)
    expect(page.locator("#messages")).to_contain_text("Your cake A-17 is ready.")
    page.get_by_role("button", name="On my way").click()
    expect(page.get_by_role("button", name="On my way")).to_have_count(0)
    [tapped] = [p for p in _as_shop(relay, tmp_path, replies) if p.get("type") == "template_button"]
    assert tapped["button"] == {"payload": "On my way", "text": "On my way"}

    page.get_by_label("Why").select_option("didnt_sign_up")
    page.get_by_label("Block it too, when reporting").check()
    page.get_by_role("button", name="Report the business").click()
    expect(page.locator("#flash")).to_contain_text("Reported to Cove")

    async def write_again(shop: CoveClient) -> str:
        try:
            await offer(shop)
        except RelayError as exc:
            return exc.code
        return "sent"

    assert _as_shop(relay, tmp_path, write_again) != "sent"  # blocked: the business can no longer write

    page.goto(app.base + "/")
    row = page.locator("#conversations li").filter(has_text="Corner Bakery")
    expect(row.locator(".badge")).to_have_text("verified business")
