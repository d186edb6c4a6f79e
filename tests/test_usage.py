"""Usage counters per UTC day and last seen: the pure rules, the client's counting, and a real relay storing them."""

from __future__ import annotations

import asyncio
import os

import pytest
from sqlalchemy import select, update

from cove.accounts.storage import devices
from cove.accounts.usage_storage import usage_daily
from cove.client.core import ClientCore, Request
from cove.client.store import ClientStore
from cove.client.transport import RelayError
from cove.clock import now_ms
from cove.db import create_engine
from cove.errors import ApiError
from cove.protocol import usage
from cove.protocol.usage import DayCounts
from helpers import texts

DAY = usage.DAY_MS
NOW = 20_000 * DAY + 5 * 3_600_000  # 2024-10-04 05:00 UTC
TODAY = 20_000


def code_of(call) -> str:  # noqa: ANN001
    with pytest.raises(ApiError) as refused:
        call()
    return refused.value.code


# pure rules -------------------------------------------------------------------------------------------
def test_days_are_utc_days_since_the_epoch():
    assert usage.parse_day("1970-01-01") == 0
    assert usage.parse_day("2024-10-04") == TODAY
    assert usage.day_text(TODAY) == "2024-10-04"
    assert usage.day_of(NOW) == TODAY
    assert usage.day_of(TODAY * DAY - 1) == TODAY - 1
    for bad in ("2024-13-01", "2024-02-30", "20241004", "2024-10-4", "yesterday", ""):
        assert code_of(lambda bad=bad: usage.parse_day(bad)) == "invalid_usage_day"


def test_a_report_names_the_last_thirty_days_today_and_tomorrow():
    for day in (TODAY - 30, TODAY, TODAY + 1):
        usage.check_day(day, TODAY)
    for day in (TODAY - 31, TODAY + 2, 0):
        assert code_of(lambda day=day: usage.check_day(day, TODAY)) == "usage_day_out_of_range"


def test_a_report_is_checked_whole_before_anything_is_stored():
    one = DayCounts(1, 2, 3)
    assert usage.validate([("2024-10-04", one), ("2024-10-03", one)], NOW) == {TODAY: one, TODAY - 1: one}
    assert code_of(lambda: usage.validate([("2024-10-04", one), ("2024-10-04", one)], NOW)) == "duplicate_usage_day"
    assert code_of(lambda: usage.validate([("2024-10-04", one), ("2024-08-01", one)], NOW)) == (
        "usage_day_out_of_range"
    )
    assert code_of(lambda: usage.validate([("2024-10-04", DayCounts(-1))], NOW)) == "invalid_request"
    assert code_of(lambda: usage.validate([("2024-10-04", DayCounts(0, usage.MAX_COUNT + 1))], NOW)) == (
        "invalid_request"
    )
    usage.validate([("2024-10-04", DayCounts(usage.MAX_COUNT, usage.MAX_COUNT, usage.MAX_COUNT))], NOW)
    too_many = [(usage.day_text(TODAY - i), one) for i in range(32)]
    assert code_of(lambda: usage.validate(too_many, NOW)) == "invalid_request"


def test_counts_only_grow_and_an_unchanged_day_is_not_written():
    assert usage.merge(None, DayCounts(1, 2, 3)) == DayCounts(1, 2, 3)
    assert usage.merge(DayCounts(5, 5, 5), DayCounts(1, 2, 3)) is None  # a reinstall's lower totals
    assert usage.merge(DayCounts(5, 5, 5), DayCounts(5, 5, 5)) is None  # a retry
    assert usage.merge(DayCounts(5, 5, 5), DayCounts(6, 1, 5)) == DayCounts(6, 5, 5)  # per counter


# the client's counting, without a relay ---------------------------------------------------------------
def test_the_client_counts_per_day_and_reports_only_what_changed(tmp_path):
    core = ClientCore(ClientStore(tmp_path / "state.db"), os.urandom(32), {"model": "m"})
    assert core.usage.report() is None
    core.usage.app_opened()
    today = usage.day_of(now_ms())
    core.store.count_usage(today - 3, sent=4)
    core.store.count_usage(today - 40, sent=9)  # older than the relay takes: dropped, never sent
    request = core.usage.report()
    assert request.method == "PUT" and request.path == "/v1/me/usage"
    assert request.json["days"] == [
        {"day": usage.day_text(today - 3), "messages_sent": 4, "messages_received": 0, "app_opens": 0},
        {"day": usage.day_text(today), "messages_sent": 0, "messages_received": 0, "app_opens": 1},
    ]
    core.store.count_usage(today, received=1)  # counted while the report was on its way
    core.usage.reported(request)
    again = core.usage.report()
    assert again.json["days"] == [
        {"day": usage.day_text(today), "messages_sent": 0, "messages_received": 1, "app_opens": 1}
    ]
    core.usage.reported(again)
    assert core.usage.report() is None
    assert [d.day for d in core.store.usage()] == [today - 3, today]


# through a real relay ---------------------------------------------------------------------------------
async def usage_rows(relay) -> dict[str, dict[int, tuple[int, int, int, int]]]:  # noqa: ANN001
    engine = create_engine(relay.database_url)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(select(usage_daily))).all()
    finally:
        await engine.dispose()
    found: dict[str, dict[int, tuple[int, int, int, int]]] = {}
    for r in rows:
        found.setdefault(r.account_id, {})[r.day] = (
            r.messages_sent,
            r.messages_received,
            r.app_opens,
            r.updated_at_ms,
        )
    return found


def put_usage(day: str, sent: int = 0, received: int = 0, opens: int = 0) -> Request:
    body = {"day": day, "messages_sent": sent, "messages_received": received, "app_opens": opens}
    return Request("PUT", "/v1/me/usage", {"days": [body]})


async def test_usage_reported_by_the_sdk_lands_per_day_and_a_lower_report_does_not_reduce_it(users, relay):
    alice = await users.register("alice")
    bob = await users.register("bob")
    await alice.send_text(bob.core.account_id, "one")
    await alice.send_text(bob.core.account_id, "two")
    assert texts(await bob.inbox()) == ["one", "two"]
    assert await alice.report_usage() == 1
    assert await bob.report_usage() == 1
    assert await alice.report_usage() == 0  # nothing counted since

    today = usage.day_of(now_ms())
    stored = await usage_rows(relay)
    assert {day: row[:3] for day, row in stored[alice.core.account_id].items()} == {today: (2, 0, 1)}
    assert {day: row[:3] for day, row in stored[bob.core.account_id].items()} == {today: (0, 2, 1)}

    # A reinstall reports lower totals for today: ignored, and the row is not even touched.
    await alice.call(put_usage(usage.day_text(today), sent=1, opens=1))
    assert (await usage_rows(relay))[alice.core.account_id] == stored[alice.core.account_id]
    # Higher in one counter: only that counter grows.
    await alice.call(put_usage(usage.day_text(today), sent=1, received=7))
    assert (await usage_rows(relay))[alice.core.account_id][today][:3] == (2, 7, 1)
    # Another day of the last thirty, and tomorrow (a clock ahead of the relay's).
    await alice.call(put_usage(usage.day_text(today - 30), opens=4))
    await alice.call(put_usage(usage.day_text(today + 1), opens=1))
    assert sorted((await usage_rows(relay))[alice.core.account_id]) == [today - 30, today, today + 1]


async def test_out_of_range_days_and_bad_reports_are_refused_with_their_code(users, relay):
    alice = await users.register("alice")
    today = usage.day_of(now_ms())
    cases = [
        (put_usage(usage.day_text(today - 31), sent=1), "usage_day_out_of_range"),
        (put_usage(usage.day_text(today + 2), sent=1), "usage_day_out_of_range"),
        (put_usage("25/11/2026", sent=1), "invalid_usage_day"),
        (put_usage(usage.day_text(today), sent=1_000_001), "invalid_request"),
        (put_usage(usage.day_text(today), sent=-1), "invalid_request"),
        (
            Request("PUT", "/v1/me/usage", {"days": [put_usage(usage.day_text(today)).json["days"][0]] * 2}),
            "duplicate_usage_day",
        ),
        (
            Request(
                "PUT",
                "/v1/me/usage",
                {"days": [put_usage(usage.day_text(today - i)).json["days"][0] for i in range(32)]},
            ),
            "invalid_request",
        ),
    ]
    for request, code in cases:
        with pytest.raises(RelayError) as refused:
            await alice.call(request)
        assert (refused.value.status, refused.value.code) == (400, code), request.json
    assert alice.core.account_id not in await usage_rows(relay)  # nothing of a refused report is stored

    anonymous = users.client("nobody")
    with pytest.raises(RelayError) as unauthenticated:
        await anonymous.call(put_usage(usage.day_text(today), sent=1))
    assert unauthenticated.value.status == 401


async def test_last_seen_is_refreshed_on_connect_and_device_updates_move_updated_at(users, relay):
    alice = await users.register("alice")
    key = (devices.c.account_id == alice.core.account_id, devices.c.device_id == alice.core.device_id)
    two_days_ago = now_ms() - 2 * DAY
    engine = create_engine(relay.database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(update(devices).where(*key).values(last_seen_at_ms=two_days_ago, updated_at_ms=1))
        # Any authenticated request counts as seen, and the relay remembers it looked at this device within the
        # hour (the key upload after registering): a restarted relay sees the backdated row afresh.
        relay.restart()

        async def device():  # noqa: ANN202
            async with engine.connect() as conn:
                return (await conn.execute(select(devices).where(*key))).one()

        await alice.inbox()  # connects the WebSocket
        for _ in range(100):
            row = await device()
            if row.last_seen_at_ms > two_days_ago:
                break
            await asyncio.sleep(0.05)
        assert row.last_seen_at_ms > now_ms() - 60_000
        assert row.updated_at_ms == row.last_seen_at_ms  # the day of last seen changed: exported again
        seen = row.last_seen_at_ms

        await alice.inbox()  # within the hour: no write
        await asyncio.sleep(0.3)
        assert (await device()).last_seen_at_ms == seen

        info = {**alice.core.device_info, "app_version": "0.2.0", "os_version": "16"}
        await alice.update_device(info)
        row = await device()
        assert (row.app_version, row.os_version) == ("0.2.0", "16")
        assert row.updated_at_ms >= seen
        me = await alice.call(Request("GET", "/v1/accounts/me"))
        assert me["devices"][0]["app_version"] == "0.2.0"
    finally:
        await engine.dispose()
