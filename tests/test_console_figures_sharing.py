"""The console's sharing figures on SQLite and PostgreSQL, from batches the real export gateway wrote: batches
and rows per recipient and day, rows per purpose, the disclosure log, and erasures outstanding per recipient."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from console_sections_world import chart_figures
from console_world import signed_in
from cove.clock import now_ms
from cove.console.figures.sharing import sharing_figures
from cove.console.figures.timeline import DAY_MS
from cove.db import create_engine
from cove.sharing import erasure, gateway, wire
from cove.sharing.keys import SharingKeys
from sharing_world import World

HOUR = 3_600_000


@pytest.fixture
async def world(database_url: str) -> AsyncIterator[World]:
    engine = create_engine(database_url)
    w = World(engine)
    await w.publish()
    yield w
    await engine.dispose()


async def test_batches_rows_disclosures_and_erasures_per_recipient(
    world: World, database_url: str, tmp_path: Path
) -> None:
    keys = SharingKeys.load_or_create(tmp_path / "keys")
    outbox = tmp_path / "out"
    await world.add({"ads": "in", "account_linking": "in"})
    bob = await world.add({"ads": "in"})
    await world.add({"ads": "out"})
    first = await gateway.export(world.engine, keys, "parent", outbox, at_ms=world.t0 + HOUR)
    deleted_at = now_ms() - 5 * HOUR  # the erasure is requested now-ish, within the console's window
    await world.delete(bob, deleted_at)
    second = await gateway.export(
        world.engine, keys, "parent", outbox, since_batch=first.manifest.batch_id, at_ms=world.t0 + 2 * HOUR
    )
    (event,) = [r["event_id"] for r in _revocations(second) if r["reason"] == "erased"]
    ack = wire.Ack(recipient="parent", batch_id=second.manifest.batch_id, applied_at_ms=now_ms(), erasures=[event])
    assert await erasure.apply_acks(world.engine, [ack]) == 1

    now = now_ms()
    figures = await sharing_figures(world.engine, now)
    today = now // DAY_MS
    assert figures.batches_per_day == {"parent": {today: 2}}
    assert figures.rows_per_day == {"parent": {today: first.total_rows + second.total_rows}}
    assert figures.rows_per_purpose["ads"] == {"parent": first.rows["ads"] + second.rows["ads"]}
    assert first.rows["ads"] == 2  # the two who said yes to ads

    newest, oldest = figures.latest
    assert (newest.batch_id, oldest.batch_id) == (second.manifest.batch_id, first.manifest.batch_id)
    ads = {p.purpose: p for p in oldest.purposes}["ads"]
    assert (ads.rows, ads.accounts) == (2, 2)
    assert "contact.phone_number" in ads.categories
    assert newest.revocations == second.manifest.revocations.rows

    by_recipient = {e.recipient: e for e in figures.erasures}
    parent, processor = by_recipient["parent"], by_recipient["parent_processor"]
    assert (parent.requested, parent.sent, parent.acknowledged, parent.outstanding) == (1, 1, 1, 0)
    assert parent.oldest_outstanding_ms is None
    # No batch went to the processor: its erasure waits, unsent, since the deletion.
    assert (processor.requested, processor.sent, processor.acknowledged, processor.outstanding) == (1, 0, 0, 1)
    assert processor.oldest_outstanding_ms == deleted_at
    assert figures.erasures_requested == {deleted_at // DAY_MS: 2}
    assert figures.erasures_acknowledged == {today: 1}

    async with signed_in(database_url, tmp_path / "console") as operator:
        page = await operator.get("/sharing")
    assert page.status_code == 200
    assert chart_figures(page.text, "sharing-batches")["parent"][figures.window.label(today)] == 2
    assert chart_figures(page.text, "sharing-purposes")["parent"]["ads"] == first.rows["ads"] + second.rows["ads"]
    assert second.manifest.batch_id in page.text


async def test_old_batches_fall_out_of_the_window_but_stay_in_the_log(world: World, tmp_path: Path) -> None:
    keys = SharingKeys.load_or_create(tmp_path / "keys")
    await world.add({"ads": "in"})
    result = await gateway.export(world.engine, keys, "parent", tmp_path / "out", at_ms=world.t0 + HOUR)
    later = now_ms() + 40 * DAY_MS
    figures = await sharing_figures(world.engine, later)
    assert figures.batches_per_day == {} and figures.rows_per_purpose == {}
    assert [b.batch_id for b in figures.latest] == [result.manifest.batch_id]


async def test_an_empty_relay_shows_each_section_and_nobody_unsigned_sees_or_changes_one(
    database_url: str, tmp_path: Path
) -> None:
    empty = {
        "/sharing": "No batch was sent in the last 30 days",
        "/business": "No template is waiting for review.",
        "/safety": "No action waits for review.",
    }
    async with signed_in(database_url, tmp_path / "console") as operator:
        for path, said in empty.items():
            page = await operator.get(path)
            assert page.status_code == 200 and said in page.text, path
        async with httpx.AsyncClient(base_url=operator.base, timeout=30) as stranger:
            asked = [await stranger.get(path) for path in empty]
            for path, form in (
                ("/business/templates/00000000-0000-4000-8000-000000000000/approve", {}),
                ("/business/templates/00000000-0000-4000-8000-000000000000/reject", {"reason": "x"}),
                ("/safety/reviews/1", {"decision": "lift"}),
                ("/safety/appeals/1", {"decision": "grant"}),
            ):
                # with the operator's own token even: the session is what a stranger lacks
                asked.append(await stranger.post(path, data={**form, "csrf": operator.token}))
    assert [(r.status_code, r.headers.get("location")) for r in asked] == [(303, "/login")] * len(asked)


def _revocations(result: gateway.ExportResult) -> list[dict]:
    import pyarrow.parquet as pq

    return pq.read_table(result.path / wire.REVOCATIONS_FILE).to_pylist()
