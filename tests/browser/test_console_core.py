"""The operator's console in Chromium: sign in, the overview, the rollout's and consent's charts, a person's
choice made through the SDK moving the consent chart, and the ledger's verification from its button."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from browser.world import chart_cell, check_page, off_the_loop, wait_for_chart_cell
from console_world import RELAY_ENV, sign_in_on
from cove.client.core import ClientCore
from cove.client.store import ClientStore
from cove.client.transport import CoveClient
from privacy_world import notice_for, publish

PHONE = "+14155550161"


@pytest.fixture
def relay_env() -> dict[str, str]:
    return RELAY_ENV


class Person:
    """One SDK user with a local store of their own; each step opens the client in a loop of its own."""

    def __init__(self, relay, folder: Path) -> None:  # noqa: ANN001
        self.relay, self.folder = relay, folder
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "key").write_bytes(os.urandom(32))

    async def _run(self, step) -> None:  # noqa: ANN001
        info = {"model": "Pixel 9", "os_name": "Android", "os_version": "15", "app_version": "0.1.0"}
        core = ClientCore(ClientStore(self.folder / "state.db"), (self.folder / "key").read_bytes(), info)
        client = CoveClient(self.relay.url, core)
        try:
            await step(client)
        finally:
            await client.aclose()
            core.store.close()

    def do(self, step) -> None:  # noqa: ANN001
        off_the_loop(self._run(step))


def test_an_operator_signs_in_and_watches_a_choice_move_the_consent_chart(
    page: Page,
    relay,
    code_inbox,
    open_console,
    tmp_path: Path,  # noqa: ANN001
) -> None:
    off_the_loop(publish(relay.database_url))
    alice = Person(relay, tmp_path / "alice")

    async def join(client: CoveClient) -> None:
        await client.request_code(PHONE)
        await client.register(PHONE, await code_inbox.code_for(PHONE))
        notice = await notice_for(client)
        await client.notice_shown(notice)
        await client.accept_terms(notice, "adult")
        await client.choose("ads", "in")

    alice.do(join)
    console = open_console(relay.database_url, relay.data_dir)

    page.goto(console.url)
    expect(page.get_by_role("heading", name="Sign in to the Cove console")).to_be_visible()
    check_page(page, "console-login")
    sign_in_on(page, password="not the password")
    expect(page.get_by_role("alert")).to_have_text("Wrong name or password.")
    sign_in_on(page)

    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    expect(page.locator('[data-figure="accepted"]')).to_have_text("1")
    check_page(page, "console-overview")

    page.get_by_role("link", name="Rollout", exact=True).first.click()
    expect(page.get_by_role("heading", name="Rollout", exact=True)).to_be_visible()
    expect(page.locator("#rollout-figures canvas[data-drawn='1']").first).to_be_attached()  # Chart.js drew it
    assert chart_cell(page, "rollout-1-waves", "everyone", "accepted") == "1"
    assert chart_cell(page, "rollout-1-purposes", "ads", "opted in") == "1"
    check_page(page, "console-rollout")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Consent").click()
    expect(page.get_by_role("heading", name="Consent", exact=True)).to_be_visible()
    assert chart_cell(page, "consent-totals", "ads", "turned on") == "1"
    assert chart_cell(page, "consent-totals", "ads", "withdrawn") == "0"

    alice.do(lambda client: client.withdraw("ads"))  # changed through the SDK, as the app's page would
    page.get_by_role("link", name="Refresh").click()  # what the page does by itself every 15 s
    wait_for_chart_cell(page, "consent-totals", "ads", "withdrawn", "1")

    expect(page.locator("#ledger-status")).to_contain_text("not verified")
    page.get_by_role("button", name="Verify the ledger now").click()
    expect(page.locator("#ledger-status")).to_contain_text("verified intact")
    expect(page.locator("#ledger-status")).to_contain_text("by olivia")
    check_page(page, "console-consent")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Relay health").click()
    expect(page.get_by_role("heading", name="Relay health")).to_be_visible()
    expect(page.locator('#health-figures [data-figure="connected"]')).to_have_text("0")  # alice's client closed
    buckets = page.locator('[data-chart-table="health-connected"] tbody tr')  # one per bucket a process wrote in
    expect(buckets.first).to_be_attached()
    assert (buckets.first.locator("td").text_content() or "").strip().isdigit()
    page.get_by_role("link", name="6 hours").click()
    expect(page.get_by_role("link", name="6 hours")).to_have_attribute("aria-current", "page")
    check_page(page, "console-health")
    page.goto(f"{console.base}/health?span=forever")
    expect(page.locator('[data-code="unknown_span"]')).to_contain_text("span must be one of 1h, 6h, 24h, 7d")

    page.goto(f"{console.base}/")
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in to the Cove console")).to_be_visible()
    page.goto(f"{console.base}/consent")
    expect(page).to_have_url(f"{console.base}/login")
