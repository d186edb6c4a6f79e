"""Two people register in two `cove app` instances through the welcome page and chat: a message request accepted,
live delivery without reload, ticks that move to read, and a file that goes across encrypted."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from browser.world import SIZES, accessibility_problems, no_horizontal_scroll, screenshots
from cove.client.profile import open_profile
from cove.client.transport import CoveClient

# What a page shows may wait for a relay, two apps and Chromium sharing two loaded cores.
expect.set_options(timeout=15_000)
ALICE, BOB, CAROL = "+14155550101", "+14155550102", "+14155550103"


def _register(page: Page, url: str, phone: str, code_inbox) -> None:  # noqa: ANN001
    page.goto(url)
    expect(page.get_by_role("heading", name="Register your number")).to_be_visible()
    page.get_by_label("Phone number").fill(phone)
    page.get_by_role("button", name="Send me a code").click()
    expect(page.get_by_role("heading", name=f"Enter the code sent to {phone}")).to_be_visible()
    page.get_by_label("Code", exact=True).fill(code_inbox.latest(phone))
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("heading", name="Chats", exact=True)).to_be_visible()


def _checked(page: Page, name: str) -> None:
    """Screenshots at both sizes, no serious accessibility problem, nothing sideways at phone size."""
    screenshots(page, name)
    assert accessibility_problems(page) == []
    page.set_viewport_size(SIZES["phone"])
    assert no_horizontal_scroll(page), name
    page.set_viewport_size(SIZES["desktop"])


def _context_page(browser: Browser) -> Page:
    context = browser.new_context(viewport=SIZES["desktop"], accept_downloads=True)
    context.set_default_timeout(15_000)
    return context.new_page()


def test_two_people_chat_live(open_app, code_inbox, browser: Browser, tmp_path: Path) -> None:  # noqa: ANN001
    alice_app, bob_app = open_app("alice"), open_app("bob")
    alice, bob = _context_page(browser), _context_page(browser)

    alice.goto(alice_app.url)
    expect(alice.get_by_role("heading", name="Register your number")).to_be_visible()
    _checked(alice, "app-welcome")
    _register(alice, alice_app.url, ALICE, code_inbox)
    _register(bob, bob_app.url, BOB, code_inbox)

    # Alice writes first: to Bob it is a message request, which arrives without a reload.
    alice.get_by_label("To").fill(BOB)
    alice.get_by_label("Message", exact=True).fill("Lunch at noon?")
    alice.get_by_role("button", name="Send", exact=True).click()
    expect(alice.get_by_role("heading", name=BOB)).to_be_visible()
    mine = alice.locator("#messages li.mine").filter(has_text="Lunch at noon?")
    expect(mine).to_be_visible()

    requests = bob.locator("#requests")
    expect(requests.get_by_role("link")).to_contain_text(ALICE)  # live: Bob's page was not reloaded
    expect(mine.locator("[data-tick]")).to_have_attribute("data-tick", "delivered")
    bob.get_by_role("link", name=ALICE).click()
    expect(bob.locator("#messages")).to_contain_text("Lunch at noon?")
    # Still a request: Bob read it, but Alice is not told until he accepts.
    expect(mine.locator("[data-tick]")).to_have_attribute("data-tick", "delivered")

    # A file in the request is shown, but fetched only once Bob accepts; then he downloads it from the page.
    document = tmp_path / "route-map.txt"
    document.write_bytes(b"the route map: north ridge, then the gully\n" * 100)
    alice.get_by_label("File (optional, encrypted on this computer)").set_input_files(str(document))
    alice.get_by_label("Message", exact=True).fill("The route map")
    alice.get_by_role("button", name="Send", exact=True).click()
    arrived = bob.locator("#messages li").filter(has_text="route-map.txt")
    expect(arrived).to_be_visible()
    expect(arrived.get_by_role("link")).to_have_count(0)
    bob.get_by_role("button", name="Accept").click()
    expect(bob.locator("#request")).to_have_count(0)
    with bob.expect_download() as download:
        arrived.get_by_role("link", name="Download the file").click()
    assert Path(download.value.path()).read_bytes() == document.read_bytes()
    expect(mine.locator("[data-tick]")).to_have_attribute("data-tick", "read")
    expect(mine.locator(".sr-only")).to_have_text("read")

    # Bob replies; Alice, with the conversation open, sees it live and reads it, so Bob's tick moves to read.
    bob.get_by_label("Message", exact=True).fill("Noon works")
    bob.get_by_role("button", name="Send", exact=True).click()
    expect(alice.locator("#messages")).to_contain_text("Noon works")
    reply = bob.locator("#messages li.mine").filter(has_text="Noon works")
    expect(reply.locator("[data-tick]")).to_have_attribute("data-tick", "read")
    _checked(alice, "app-conversation")

    # A second file, now that Bob accepted: fetched at once.
    alice.get_by_label("File (optional, encrypted on this computer)").set_input_files(str(document))
    alice.get_by_label("Message", exact=True).fill("The route map again")
    alice.get_by_role("button", name="Send", exact=True).click()
    expect(bob.locator("#messages li").filter(has_text="The route map again").get_by_role("link")).to_be_visible()

    # The chat list: Alice's conversation with Bob, its last message, nothing unread.
    bob.goto(bob_app.base + "/")
    row = bob.locator("#conversations li").filter(has_text=ALICE)
    expect(row).to_contain_text("The route map again")
    expect(row.locator("[data-unread]")).to_have_count(0)
    _checked(bob, "app-chats")


def test_a_group_is_created_and_written_to(open_app, code_inbox, browser: Browser, tmp_path: Path) -> None:  # noqa: ANN001
    alice_app, bob_app = open_app("alice"), open_app("bob")
    alice, bob = _context_page(browser), _context_page(browser)
    _register(alice, alice_app.url, ALICE, code_inbox)
    _register(bob, bob_app.url, BOB, code_inbox)

    alice.get_by_label("Group name").fill("Climbing")
    alice.get_by_label("Members").fill(BOB)
    alice.get_by_role("button", name="Create the group").click()
    expect(alice.get_by_role("heading", name="Climbing")).to_be_visible()
    expect(alice.locator("#members")).to_contain_text(BOB)
    alice.get_by_label("Message", exact=True).fill("Top rope at ten?")
    alice.get_by_role("button", name="Send", exact=True).click()

    group = bob.locator("#conversations li").filter(has_text="Climbing")
    expect(group).to_contain_text("Top rope at ten?")
    expect(group.locator("[data-unread]")).to_have_attribute("data-unread", "1")
    group.get_by_role("link").click()
    expect(bob.locator("#messages")).to_contain_text("Top rope at ten?")
    mine = alice.locator("#messages li.mine").filter(has_text="Top rope at ten?")
    expect(mine.locator("[data-tick]")).to_have_attribute("data-tick", "read")

    topo = tmp_path / "topo.txt"
    topo.write_text("pitch 1: 5a, pitch 2: 5c\n")
    alice.get_by_label("File (optional, encrypted on this computer)").set_input_files(str(topo))
    alice.get_by_role("button", name="Send", exact=True).click()
    arrived = bob.locator("#messages li").filter(has_text="topo.txt")
    with bob.expect_download() as download:
        arrived.get_by_role("link", name="Download the file").click()
    assert Path(download.value.path()).read_text() == topo.read_text()
    _checked(bob, "app-group")
    expect(bob.get_by_label("Add members")).to_have_count(0)  # Bob is no admin
    alice.get_by_label("Add members").fill("12")
    alice.get_by_role("button", name="Add", exact=True).click()
    expect(alice.get_by_role("alert")).to_contain_text("neither a phone number nor an account id")


def test_the_page_refuses_a_browser_without_the_key(open_app, page: Page) -> None:  # noqa: ANN001
    app = open_app("alice")
    answer = page.goto(app.base + "/")
    assert answer is not None and answer.status == 401
    expect(page.locator("body")).to_contain_text("open the link `cove app` printed")
    answer = page.goto(app.base + "/open?key=not-this-run")
    assert answer is not None and answer.status == 401
    answer = page.goto(app.url)  # the printed link lets the same browser in
    assert answer is not None and answer.status == 200
    expect(page.get_by_role("heading", name="Welcome to Cove")).to_be_visible()


def test_the_welcome_page_says_what_is_wrong(open_app, code_inbox, page: Page) -> None:  # noqa: ANN001
    app = open_app("alice")
    page.goto(app.url)
    page.get_by_label("Phone number").fill("12345")
    page.get_by_role("button", name="Send me a code").click()
    expect(page.get_by_role("alert")).to_contain_text("is not a phone number")
    page.get_by_label("Phone number").fill(ALICE)
    page.get_by_role("button", name="Send me a code").click()
    right = code_inbox.latest(ALICE)
    page.get_by_label("Code", exact=True).fill("12")
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("alert")).to_contain_text("6 digits")
    page.get_by_label("Code", exact=True).fill("000000" if right != "000000" else "111111")
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("alert")).to_be_visible()
    expect(page.get_by_role("heading", name=f"Enter the code sent to {ALICE}")).to_be_visible()
    _checked(page, "app-welcome-error")
    page.get_by_label("Code", exact=True).fill(right)
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("heading", name="Chats", exact=True)).to_be_visible()


async def _stranger_writes(relay, code_inbox, home: Path, to: str, text: str) -> None:  # noqa: ANN001
    """Carol, with the SDK: registers and writes to ``to``, who does not know her."""
    async with CoveClient(relay.url, open_profile("carol", home)) as carol:
        await carol.request_code(CAROL)
        await carol.register(CAROL, await code_inbox.code_for(CAROL))
        await carol.send_text(await carol.resolve(to), text)


def test_a_message_request_is_reported_and_blocked(open_app, code_inbox, relay, page: Page, tmp_path: Path) -> None:  # noqa: ANN001
    app = open_app("alice")
    _register(page, app.url, ALICE, code_inbox)
    # In a thread of its own: Playwright's loop runs in this one.
    with ThreadPoolExecutor(1) as thread:
        thread.submit(
            asyncio.run, _stranger_writes(relay, code_inbox, tmp_path, ALICE, "Win a prize, click here")
        ).result()

    request = page.locator("#requests").get_by_role("link", name=CAROL)
    expect(request).to_be_visible()  # live
    request.click()
    expect(page.locator("#messages")).to_contain_text("Win a prize")
    page.get_by_text(f"Report {CAROL}").click()
    expect(page.get_by_role("listitem").filter(has_text=f"{CAROL}: Win a prize, click here")).to_be_visible()
    page.get_by_label("Attach these messages").check()
    page.get_by_label("Block them too").check()
    page.get_by_role("button", name="Send the report").click()
    expect(page.locator("#flash")).to_contain_text("Reported")
    expect(page.locator("#blocked")).to_contain_text(f"You block {CAROL}")
    expect(page.locator("#request")).to_have_count(0)
    page.get_by_role("button", name="Unblock").click()
    expect(page.locator("#flash")).to_contain_text("Unblocked")
    expect(page.locator("#blocked")).to_have_count(0)

    # What a URL names is checked: no file of this chat by that id, no conversation by that name.
    chat = page.url.rstrip("/")
    answer = page.goto(f"{chat}/files/not-a-message")
    assert answer is not None and answer.status == 404
    answer = page.goto(f"{app.base}/chats/..%2F..%2Fstate.db")
    assert answer is not None and answer.status == 404
    answer = page.goto(f"{app.base}/chats/state.db")
    assert answer is not None and answer.status == 404
    expect(page.get_by_role("heading", name="No such conversation")).to_be_visible()


def _new_code(code_inbox, phone: str, old: str) -> str:  # noqa: ANN001
    """The code sent after ``old`` (the relay's webhook may land after the page answered)."""
    for _ in range(250):
        if (code := code_inbox.latest(phone)) != old:
            return code
        time.sleep(0.02)
    raise AssertionError(f"no new code for {phone}")


async def _locked_elsewhere(relay, code_inbox, home: Path, pin: str) -> None:  # noqa: ANN001
    """Alice's number, registered on another phone with a registration lock."""
    async with CoveClient(relay.url, open_profile("old-phone", home)) as phone:
        await phone.request_code(ALICE)
        await phone.register(ALICE, await code_inbox.code_for(ALICE))
        await phone.set_pin(pin)


def test_a_locked_number_asks_for_its_pin(open_app, code_inbox, relay, page: Page, tmp_path: Path) -> None:  # noqa: ANN001
    with ThreadPoolExecutor(1) as thread:  # Playwright's loop runs in this one
        thread.submit(asyncio.run, _locked_elsewhere(relay, code_inbox, tmp_path, "correct-horse")).result()
    app = open_app("alice")
    page.goto(app.url)
    old_code = code_inbox.latest(ALICE)
    page.get_by_label("Phone number").fill(ALICE)
    page.get_by_role("button", name="Send me a code").click()
    expect(page.get_by_role("heading", name=f"Enter the code sent to {ALICE}")).to_be_visible()
    code = _new_code(code_inbox, ALICE, old_code)
    page.get_by_label("Code", exact=True).fill(code)
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("alert")).to_contain_text("registration lock")
    page.get_by_label("Code", exact=True).fill(code)
    page.get_by_label("PIN of the registration lock").fill("wrong-pin!")
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("alert")).to_contain_text("PIN is wrong")
    page.get_by_label("Code", exact=True).fill(code)
    page.get_by_label("PIN of the registration lock").fill("correct-horse")
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("heading", name="Chats", exact=True)).to_be_visible()


@pytest.mark.parametrize(
    "relay_env",  # every code request from this machine is challenged (a small proof of work)
    [{"COVE_REGISTRATION_GATE_SOURCE_PER_HOUR": "1", "COVE_REGISTRATION_GATE_BITS": "10"}],
)
def test_registering_proves_work_when_the_relay_asks(
    open_app,  # noqa: ANN001
    code_inbox,  # noqa: ANN001
    relay_env: dict[str, str],
    database_url: str,
    page: Page,
) -> None:
    app = open_app("alice")
    page.goto(app.url)
    working = page.locator("#working")
    expect(working).to_be_hidden()
    expect(working).to_contain_text("prove it is not a bulk sender")  # shown while the request is under way
    page.get_by_label("Phone number").fill(BOB)  # the machine's first code request; the next one is challenged
    page.get_by_role("button", name="Send me a code").click()
    page.get_by_role("button", name="Use another number").click()
    _register(page, app.url, ALICE, code_inbox)
    with sqlite3.connect(database_url.split(":///", 1)[1]) as db:  # the relay's own record: it was challenged
        assert db.execute("SELECT challenged FROM safety_registrations").fetchall() == [(1,)]  # Alice's
