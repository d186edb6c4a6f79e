"""Journeys that cross the two pages: a person's choice in the app's privacy center moves the operator's chart."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from browser.privacy_world import accept_terms, open_privacy_with_notice, person_under_policy
from browser.world import SIZES, chart_cell, wait_for_chart_cell
from console_world import PASSWORD, RELAY_ENV


@pytest.fixture
def relay_env() -> dict[str, str]:
    return {**RELAY_ENV, "COVE_NOTICE_INTERVAL_SECONDS": "0.3"}


def turned_on(console: Page, purpose: str) -> str | None:
    return chart_cell(console, "consent-totals", purpose, "turned on")


def test_a_choice_in_the_privacy_center_moves_the_consoles_chart(
    browser: Browser,
    page: Page,
    relay,
    code_inbox,
    open_app,
    open_console,
    tmp_path: Path,  # noqa: ANN001
) -> None:
    alice = person_under_policy(relay, code_inbox, open_app, tmp_path / "home", "alice", "+4915100000091")
    open_privacy_with_notice(page, alice.app.url, alice.app.base)
    accept_terms(page)

    console_process = open_console(relay.database_url, relay.data_dir)
    context = browser.new_context(viewport=SIZES["desktop"])
    console = context.new_page()
    try:
        console.goto(console_process.url)
        console.get_by_label("Operator name").fill("olivia")
        console.get_by_label("Password").fill(PASSWORD)
        console.get_by_role("button", name="Sign in").click()
        console.get_by_role("navigation", name="Main").get_by_role("link", name="Consent").click()
        expect(console.get_by_role("heading", name="Consent", exact=True)).to_be_visible()
        before = turned_on(console, "friend_suggestions")
        assert before in (None, "0")  # nobody has turned it on yet

        card = page.locator("#purpose-friend_suggestions")
        card.get_by_role("button", name="Turn on").click()
        expect(card.get_by_role("button", name="Turn on")).to_have_attribute("aria-pressed", "true")

        console.get_by_role("link", name="Refresh").click()  # what the page does by itself every 15 s
        wait_for_chart_cell(console, "consent-totals", "friend_suggestions", "turned on", "1")

        card.get_by_role("button", name="Turn off").click()  # withdrawing is one click too, and shows the same way
        expect(card.get_by_role("button", name="Turn off")).to_have_attribute("aria-pressed", "true")
        console.get_by_role("link", name="Refresh").click()
        wait_for_chart_cell(console, "consent-totals", "friend_suggestions", "withdrawn", "1")
    finally:
        context.close()
