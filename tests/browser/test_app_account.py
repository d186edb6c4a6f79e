"""The account page in a real browser, against a real relay: who this profile is, and deleting the account only
after the number is typed, after which the relay no longer knows it and the local profile is gone."""

from __future__ import annotations

from pathlib import Path

import httpx
from playwright.sync_api import Page, expect
from sqlalchemy import func, select

from browser.privacy_world import person_under_policy, profile_core, relay_scalar
from browser.world import check_page
from cove.accounts.storage import accounts
from cove.client.profile import profile_folder

NUMBER = "+4915100000003"


def accounts_with(database_url: str, number: str) -> int:
    return relay_scalar(database_url, select(func.count()).where(accounts.c.phone_number == number))


def test_deleting_the_account_asks_for_the_number_then_the_relay_forgets_it(
    relay, code_inbox, open_app, page: Page, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    carol = person_under_policy(relay, code_inbox, open_app, home, "carol", NUMBER)
    app, account_id = carol.app, carol.account_id
    core = profile_core(home, "carol")
    token = core.token
    core.store.close()

    page.goto(app.url)
    page.goto(f"{app.base}/account")
    expect(page.locator("#account-number")).to_have_text(NUMBER)
    expect(page.locator("#account-id")).to_have_text(account_id)
    expect(page.locator("#account-devices")).to_contain_text("1 registered")
    check_page(page, "app-account")

    # A number that is not this account's deletes nothing.
    page.get_by_label("To confirm, type your number").fill("+4915100000009")
    page.get_by_role("button", name="Delete my account").click()
    expect(page.locator("#delete-error")).to_contain_text("nothing was deleted")
    assert accounts_with(relay.database_url, NUMBER) == 1

    page.get_by_label("To confirm, type your number").fill("+49 151 0000 0003")
    page.get_by_role("button", name="Delete my account").click()
    expect(page.get_by_role("heading", name="Account deleted")).to_be_visible()
    assert accounts_with(relay.database_url, NUMBER) == 0
    # One erasure per recipient the published policy names, each as the relay answers it by its id alone.
    rows = page.locator("#receipts tbody tr")
    expect(rows).to_have_count(2)
    for row in rows.all():
        event = httpx.get(row.get_by_role("link").get_attribute("href") or "").json()
        expect(row).to_contain_text(event["recipient"])
        expect(row).to_contain_text(event["event_id"])
        assert event["state"] == "requested"
        expect(row).to_contain_text("requested: the next batch to this recipient carries it")
    assert {httpx.get(a.get_attribute("href") or "").json()["recipient"] for a in rows.get_by_role("link").all()} == {
        "parent",
        "parent_processor",
    }
    assert httpx.get(f"{relay.url}/v1/me/privacy", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert not profile_folder("carol", home).exists()
    check_page(page, "app-account-deleted")

    # The app has no account now: its pages lead to registering again.
    page.goto(f"{app.base}/privacy")
    assert page.url.endswith("/welcome")
