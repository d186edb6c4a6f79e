"""The privacy center in a real browser, against a real relay: the notice and its terms, a choice changed on the
page that the relay's own view agrees with, refusing no harder than accepting, and what was shared about me after
the operator's export."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect
from sqlalchemy import select

from browser.privacy_world import (
    DEFAULT_POLICY,
    accept_terms,
    cove,
    open_privacy_with_notice,
    person_under_policy,
    purpose,
    relay_scalar,
    relay_view,
)
from browser.world import check_page
from cove.consent.storage import consent_served

OPTIONAL = ("analytics", "account_linking", "friend_suggestions", "ads")
LOOKS = """b => { const s = getComputedStyle(b); return {
    tag: b.tagName, type: b.type, cls: b.className, weight: s.fontWeight, size: s.fontSize, color: s.color,
    background: s.backgroundColor, border: s.borderTopWidth + ' ' + s.borderTopStyle + ' ' + s.borderTopColor,
    opacity: s.opacity, disabled: b.disabled } }"""


@pytest.fixture
def relay_env() -> dict[str, str]:
    return {"COVE_NOTICE_INTERVAL_SECONDS": "0.3", "COVE_FLEET_POLL_SECONDS": "0.3"}


def card(page: Page, purpose_id: str) -> Locator:
    return page.locator(f"#purpose-{purpose_id}")


def click_once(page: Page, purpose_id: str, label: str) -> None:
    """One click on the purpose's card and nothing else (no confirmation, no second page): the card then shows
    that button pressed."""
    card(page, purpose_id).get_by_role("button", name=label).click()
    expect(card(page, purpose_id).get_by_role("button", name=label)).to_have_attribute("aria-pressed", "true")


def test_a_choice_made_on_the_page_is_the_relays_and_refusing_is_no_harder(
    relay, code_inbox, open_app, page: Page, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    alice = person_under_policy(relay, code_inbox, open_app, home, "alice", "+4915100000001")
    app, account_id = alice.app, alice.account_id

    open_privacy_with_notice(page, app.url, app.base)
    expect(page.locator(".summary")).to_contain_text("Your messages, calls, contacts and groups never leave Cove")
    expect(page.locator(".notice-purpose h4")).to_have_count(5)
    check_page(page, "app-privacy-notice")
    # Shown is recorded as shown: the relay's served log holds the very text the page displays.
    shown_hash = page.locator("input[name=text_hash]").input_value()
    served = select(consent_served.c.text_hash).where(consent_served.c.account_id == account_id)
    assert relay_scalar(relay.database_url, served) == shown_hash

    # The terms need an age bracket: a form without one (or with a made-up one) accepts nothing.
    version = page.locator("input[name=version]").input_value()
    form = {"version": version, "text_hash": shown_hash, "age_bracket": "teen"}
    assert page.request.post(f"{app.base}/privacy/terms", form=form, headers={"Origin": app.base}).status == 400
    assert relay_view(relay, home, "alice")["policy"] is None

    accept_terms(page)
    expect(page.locator("#notice-title")).to_have_count(0)
    # Nothing pre-ticked: every optional purpose is off and neither of its buttons is pressed.
    for purpose_id in OPTIONAL:
        expect(card(page, purpose_id).locator(".badge")).to_have_text("Off")
        expect(card(page, purpose_id).locator("[aria-pressed=true]")).to_have_count(0)
    view = relay_view(relay, home, "alice")
    assert all(not purpose(view, p)["active"] and purpose(view, p)["your_choice"] is None for p in OPTIONAL)

    # Refusing looks exactly as accepting does: same element and class, same box, weight and colours.
    on = card(page, "analytics").get_by_role("button", name="Turn on")
    off = card(page, "analytics").get_by_role("button", name="Turn off")
    assert off.evaluate(LOOKS) == on.evaluate(LOOKS)
    on_box, off_box = on.bounding_box(), off.bounding_box()
    assert on_box and off_box
    assert off_box["width"] >= on_box["width"] and off_box["height"] >= on_box["height"]

    # And it takes no more clicks: after one click each, from the same page, the relay holds both choices.
    before = page.url
    click_once(page, "analytics", "Turn off")
    click_once(page, "ads", "Turn on")
    assert page.url == before  # changed in place (htmx), and the status region says so
    expect(page.locator("#flash")).to_have_text("Saved. Ads on Parent Platforms apps: On: you turned it on.")
    expect(card(page, "ads").locator("[data-why]")).to_have_text("On: you turned it on.")
    expect(card(page, "analytics").locator("[data-why]")).to_have_text("Off: you turned it off.")

    view = relay_view(relay, home, "alice")
    assert purpose(view, "analytics")["your_choice"] == "out" and not purpose(view, "analytics")["active"]
    assert purpose(view, "ads")["your_choice"] == "in" and purpose(view, "ads")["active"]
    assert purpose(view, "ads")["why"] == "chose_in"

    # Turning off what was turned on withdraws the consent, and works without JavaScript as well.
    withdrawn = page.request.post(f"{app.base}/privacy/purposes/ads/off", headers={"Origin": app.base})
    assert withdrawn.ok
    view = relay_view(relay, home, "alice")
    assert purpose(view, "ads")["your_choice"] == "out" and purpose(view, "ads")["method"] == "withdraw"

    # A button the page does not offer is refused, and nothing changes.
    refused_object = page.request.post(f"{app.base}/privacy/purposes/analytics/object", headers={"Origin": app.base})
    assert refused_object.status == 409
    assert purpose(relay_view(relay, home, "alice"), "analytics")["objected_at"] is None

    page.goto(f"{app.base}/privacy")
    expect(card(page, "safety")).to_contain_text("no objection switch")
    check_page(page, "app-privacy")


def test_a_disclosure_appears_in_what_was_shared_about_me_after_an_export(
    relay, code_inbox, open_app, page: Page, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    bob = person_under_policy(relay, code_inbox, open_app, home, "bob", "+4915100000002")
    app, account_id = bob.app, bob.account_id
    open_privacy_with_notice(page, app.url, app.base)
    accept_terms(page)
    expect(page.locator("#disclosures-none")).to_be_visible()
    click_once(page, "account_linking", "Turn on")

    cove(relay.env, "share", "export", "--recipient", "parent", "--outbox", str(tmp_path / "outbox"))
    page.reload()
    rows = page.locator("#disclosures tbody tr")
    expect(rows).to_have_count(1)
    shared = relay_view(relay, home, "bob")["disclosures"]
    assert [d["purpose"] for d in shared] == ["account_linking"]
    row = rows.first
    expect(row).to_contain_text("parent")
    expect(row).to_contain_text("Account linking")
    expect(row).to_contain_text("contact.phone_number")
    expect(row).to_contain_text(shared[0]["batch_id"])

    # Download my data: a JSON file, named after the day, with the account's choices and its consent receipts.
    with page.expect_download() as started:
        page.get_by_role("button", name="Download my data").click()
    download = started.value
    assert re.fullmatch(r"cove-my-data-\d{4}-\d{2}-\d{2}\.json", download.suggested_filename)
    document = json.loads(Path(download.path()).read_text())
    assert document["format"] == "cove.export/1" and document["account_id"] == account_id
    choices = document["sections"]["consent"]["choices"]["items"]
    assert {(c["purpose_id"], c["choice"]) for c in choices} == {("account_linking", "in")}
    receipts = document["sections"]["consent_receipts"]
    assert receipts["verification"]["chain_intact"] and receipts["records"]
    assert [d["batch_id"] for d in document["sections"]["sharing"]["disclosures"]["items"]] == [shared[0]["batch_id"]]

    # Turning it off again: the next batch carries the revocation, listed with its (not yet) confirmation.
    click_once(page, "account_linking", "Turn off")
    cove(relay.env, "share", "export", "--recipient", "parent", "--outbox", str(tmp_path / "outbox"), "--since", "last")
    page.reload()
    revoked = page.locator("#revocations tbody tr")
    expect(revoked).to_have_count(1)
    expect(revoked.first).to_contain_text("you withdrew your consent")
    expect(revoked.first).to_contain_text("not yet")
    check_page(page, "app-privacy-shared")


def test_one_click_objects_to_a_legitimate_interest_that_takes_objections(
    relay, code_inbox, open_app, page: Page, tmp_path: Path
) -> None:
    # The default policy declares spam protection strictly necessary; this variant lets people object to it.
    policy = tmp_path / "objectable.toml"
    policy.write_text(DEFAULT_POLICY.read_text().replace("objectable = false", "objectable = true"))
    home = tmp_path / "home"
    dana = person_under_policy(relay, code_inbox, open_app, home, "dana", "+4915100000004", policy)
    open_privacy_with_notice(page, dana.app.url, dana.app.base)
    accept_terms(page)
    expect(card(page, "safety").locator("[data-why]")).to_have_text(
        "On: it rests on a legitimate interest, not on your consent."
    )

    card(page, "safety").get_by_role("button", name="Object").click()
    expect(card(page, "safety").locator("[data-why]")).to_have_text("Off: you objected to it.")
    expect(card(page, "safety").get_by_role("button")).to_have_count(0)  # an objection stands: nothing to undo
    safety = purpose(relay_view(relay, home, "dana"), "safety")
    assert safety["objected_at"] and safety["why"] == "objected" and not safety["active"]
