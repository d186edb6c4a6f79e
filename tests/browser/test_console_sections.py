"""The console's sharing, business and safety sections in Chromium: an operator signs in, reads the charts
(drawn, with their figures in the tables beside them), approves and rejects templates and decides a review and an
appeal; each page at desktop and phone sizes with no serious accessibility problem.

The console runs as `cove console serve`, over a relay database the test fills with the functions the relay and
the operator commands use.
"""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page, expect

from browser.world import check_page, off_the_loop
from console_sections_world import bakery, profile, take, template
from console_world import sign_in_on
from cove.business import service
from cove.clock import now_ms
from cove.console.figures.timeline import days_ending
from cove.db import create_engine
from cove.safety import actions_storage
from cove.safety.ladder import Source, Step
from cove.safety.verdicts import ReasonCode
from cove.sharing import gateway
from cove.sharing.keys import SharingKeys
from helpers import insert_account
from sharing_world import World

HOUR = 3_600_000


async def fill(database_url: str, data_dir: Path) -> dict[str, str]:
    engine = create_engine(database_url)
    try:
        world = World(engine)
        await world.publish()
        for choices in ({"ads": "in", "account_linking": "in"}, {"ads": "in"}, {"ads": "out"}):
            await world.add(choices)
        gone = await world.add({"friend_suggestions": "in"})
        keys = SharingKeys.load_or_create(data_dir)
        first = await gateway.export(engine, keys, "parent", data_dir / "out", at_ms=world.t0 + HOUR)
        await world.delete(gone, now_ms())
        await gateway.export(
            engine, keys, "parent", data_dir / "out", since_batch=first.manifest.batch_id, at_ms=world.t0 + 2 * HOUR
        )

        await bakery(engine, data_dir)
        await service.put_profile(engine, "owl", profile("Night Owl"))
        approve = await service.submit_template(engine, "owl", template("reminder"))
        reject = await service.submit_template(engine, "owl", template("last_call", "Last call for order {{1}}."))

        await insert_account(engine, "alice", "+14155550191")
        await insert_account(engine, "bob", "+14155550192")
        review = await take(engine, "alice", Step.RESTRICT, ReasonCode.UNSOLICITED_FAN_OUT)
        await take(engine, "bob", Step.BAN, ReasonCode.SPAM, Source.RULE)
        async with engine.begin() as conn:
            appeal = await actions_storage.file_appeal(conn, "bob", "+14155550192", "I sell bread, not spam", now_ms())
        assert appeal is not None
        return {
            "approve": approve["template_id"],
            "reject": reject["template_id"],
            "review": str(review),
            "appeal": str(appeal.id),
            "first_rows": str(first.total_rows),
        }
    finally:
        await engine.dispose()


def figures(page: Page, chart_id: str) -> dict[str, list[str]]:
    """A chart's table (folded in its <details>, so read as text, not as rendered): the row's label -> its cells."""
    rows = page.locator(f'[data-chart-table="{chart_id}"] tbody tr')
    return {
        str(rows.nth(i).locator("th").text_content()).strip(): [
            c.strip() for c in rows.nth(i).locator("td").all_text_contents()
        ]
        for i in range(rows.count())
    }


def test_sharing_business_and_safety_sections(page: Page, database_url: str, open_console, tmp_path: Path) -> None:  # noqa: ANN001
    data_dir = tmp_path / "relay"
    data_dir.mkdir()
    made = off_the_loop(fill(database_url, data_dir))
    today = days_ending(now_ms()).labels()[-1]
    console = open_console(database_url, data_dir)
    page.goto(console.url)
    sign_in_on(page)
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    main = page.get_by_role("navigation", name="Main")

    main.get_by_role("link", name="Sharing").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Sharing")
    expect(page.locator("canvas#sharing-batches[data-drawn='1']")).to_be_visible()
    assert figures(page, "sharing-batches")[today] == ["2"]
    assert page.locator('[data-table="erasures"] tbody tr').count() == 2  # parent and its processor
    check_page(page, "console-sharing")

    main.get_by_role("link", name="Business").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Business")
    expect(page.locator("canvas#business-tiers[data-drawn='1']")).to_be_visible()
    assert figures(page, "business-tiers") == {"250": ["1"], "2,000": ["1"]}
    assert figures(page, "business-pauses")[today] == ["1", "0"]
    check_page(page, "console-business")
    page.evaluate("() => { document.getElementById('flash').dataset.kept = 'yes'; }")
    page.get_by_role("button", name="Approve reminder").click()
    expect(page.locator("#flash")).to_contain_text("Approved reminder (en): version 1")
    # htmx swapped the section and the flash's text in place: the live region is the one a reader was told of
    expect(page.locator("#flash[data-kept='yes']")).to_have_count(1)
    expect(page.locator(f'[data-template="{made["approve"]}"]')).to_have_count(0)
    page.get_by_label("Reason for rejecting last_call").fill("say which order it is")
    page.get_by_role("button", name="Reject last_call").click()
    expect(page.locator("#flash")).to_contain_text("Rejected last_call (en): say which order it is")
    expect(page.get_by_text("No template is waiting for review.")).to_be_visible()

    main.get_by_role("link", name="Safety").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Safety")
    expect(page.locator("canvas#safety-steps[data-drawn='1']")).to_be_visible()
    assert figures(page, "safety-steps")[today] == ["0", "0", "1", "1"]  # throttle, challenge, restrict, ban
    check_page(page, "console-safety")
    page.get_by_label(f"Note on review {made['review']} (optional)").fill("a teacher, not a spammer")
    page.get_by_role("button", name="Lift the restrict").click()
    expect(page.locator("#flash")).to_contain_text(f"Lifted the restrict of account alice (review {made['review']})")
    page.get_by_role("button", name=f"Grant appeal {made['appeal']}").click()
    expect(page.locator("#flash")).to_contain_text(f"Granted appeal {made['appeal']}")
    expect(page.get_by_text("No appeal is open.")).to_be_visible()
    expect(page.get_by_text("No action waits for review.")).to_be_visible()
