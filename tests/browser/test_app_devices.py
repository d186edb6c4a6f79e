"""Linked devices in `cove app`: a second app shows its link code as a QR code and waits; the phone's app links it
from its devices page, lists both, and unlinks it."""

from __future__ import annotations

from playwright.sync_api import Browser, Page, expect

from browser.test_app_chat import ALICE, _checked, _context_page, _register


def test_a_computer_is_linked_by_its_code_and_unlinked(open_app, code_inbox, browser: Browser) -> None:  # noqa: ANN001
    phone_app, laptop_app = open_app("alice"), open_app("laptop")
    phone, laptop = _context_page(browser), _context_page(browser)
    _register(phone, phone_app.url, ALICE, code_inbox)

    laptop.goto(laptop_app.url)
    laptop.get_by_role("button", name="Show a link code").click()
    expect(laptop.get_by_role("heading", name="Link to your phone")).to_be_visible()
    code = laptop.locator("#link-code").inner_text().strip()
    assert code.startswith("cove-link:1:")
    expect(laptop.get_by_role("img", name="QR code of the link code").locator("svg")).to_be_visible()
    _checked(laptop, "app-link-code")

    phone.get_by_role("link", name="Devices").click()
    expect(phone.get_by_role("heading", name="Devices", exact=True)).to_be_visible()
    phone.get_by_label("Link code").fill(code)
    phone.get_by_role("button", name="Link it").click()
    expect(phone.locator("#flash")).to_contain_text("Linked device 2", timeout=20_000)
    expect(phone.locator("#devices > li")).to_have_count(2)
    # The laptop's page was waiting: it goes to the chats by itself, as a device of Alice's account.
    expect(laptop.get_by_role("heading", name="Chats", exact=True)).to_be_visible()
    laptop.get_by_role("link", name="Devices").click()
    expect(laptop.locator("li[data-device='2']")).to_contain_text("this device")
    _checked(phone, "app-devices")

    phone.locator("li[data-device='2']").get_by_role("button", name="Unlink device 2").click()
    expect(phone.locator("#flash")).to_contain_text("Unlinked device 2")
    expect(phone.locator("#devices > li")).to_have_count(1)


def test_a_wrong_link_code_is_refused_on_the_page(open_app, code_inbox, page: Page) -> None:  # noqa: ANN001
    app = open_app("alice")
    _register(page, app.url, ALICE, code_inbox)
    page.goto(app.base + "/devices")
    page.get_by_label("Link code").fill("cove-link:1:not-a-code")
    page.get_by_role("button", name="Link it").click()
    expect(page.get_by_role("alert")).to_be_visible()
    expect(page.locator("#devices > li")).to_have_count(1)
