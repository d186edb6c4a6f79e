"""The console's read models on a real relay's database (SQLite and PostgreSQL): the rollout's figures and the
consent history follow what people do through the SDK, and the time axis keeps every chart readable."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import update

from console_world import RELAY_ENV
from cove.clock import now_ms, to_datetime
from cove.consent import service
from cove.consent.ledger_storage import ledger_entries
from cove.console.figures.consent import OBJECTED, OFF, ON, WITHDRAWN, LedgerUnreadable, consent_history
from cove.console.figures.overview import headlines
from cove.console.figures.rollout import all_rollouts
from cove.console.figures.timeline import DAY_MS, HOUR_MS, MAX_BUCKETS, WEEK_MS, bucket_for, days_ending, timeline
from cove.console.health import charts as health_charts
from cove.db import create_engine
from cove.fleet.health import Figures
from cove.testing import policy_opening_now
from privacy_world import notice_for

DEFAULT = Path(__file__).resolve().parents[1] / "policies" / "cove-default.toml"
TIMES = st.integers(min_value=0, max_value=4_000_000_000_000)


@pytest.fixture
def relay_env() -> dict[str, str]:
    return RELAY_ENV


@given(TIMES, TIMES)
def test_the_axis_never_has_more_than_max_buckets_and_covers_both_ends(a: int, b: int) -> None:
    first, last = min(a, b), max(a, b)
    axis = timeline(first, last)
    assert len(axis.indexes) <= MAX_BUCKETS
    assert axis.first * axis.bucket_ms <= first and last < (axis.last + 1) * axis.bucket_ms
    assert len(axis.labels()) == len(axis.indexes)


@given(TIMES, st.integers(min_value=0, max_value=10 * 365 * DAY_MS))
def test_the_bucket_is_the_smallest_of_hour_day_week_that_fits(first: int, span: int) -> None:
    size = bucket_for(first, first + span)
    smaller = [s for s in (HOUR_MS, DAY_MS, WEEK_MS) if s < size]
    assert all((first + span) // s - first // s >= MAX_BUCKETS for s in smaller)


@given(st.dictionaries(st.integers(min_value=0, max_value=50), st.integers(min_value=0, max_value=1000)))
def test_running_totals_end_at_the_sum_of_the_counts_on_the_axis(counts: dict[int, int]) -> None:
    axis = timeline(0, 50 * HOUR_MS)
    running = axis.running(counts)
    assert running[-1] == sum(counts.values()) and running == sorted(running)


@given(now=TIMES, days=st.integers(min_value=1, max_value=400))
def test_a_window_of_days_ends_today_and_holds_each_day_once(now: int, days: int) -> None:
    window = days_ending(now, days)
    assert window.bucket_ms == DAY_MS and len(window.indexes) == days == len(set(window.labels()))
    assert window.last == window.index_of(now) and window.start_ms <= now < window.start_ms + days * DAY_MS
    assert window.labels()[-1] == to_datetime(now).strftime("%Y-%m-%d")


@given(now=TIMES, counts=st.dictionaries(st.integers(min_value=-50, max_value=50), st.integers(0, 10**9)))
def test_aligned_counts_keep_the_window_days_and_only_them(now: int, counts: dict[int, int]) -> None:
    window = days_ending(now, 30)
    shifted = {window.first + offset: value for offset, value in counts.items()}
    aligned = window.align(shifted)
    assert len(aligned) == 30
    assert sum(aligned) == sum(v for d, v in shifted.items() if window.first <= d <= window.last)


def objectable_safety(policy):  # noqa: ANN001, ANN201
    """The default policy with its legitimate-interest purpose open to objection (the shipped one takes none)."""
    purposes = [p.model_copy(update={"objectable": True}) if p.id == "safety" else p for p in policy.purposes]
    return policy.model_copy(update={"purposes": purposes})


async def _publish(relay, policy) -> None:  # noqa: ANN001
    engine = create_engine(relay.database_url)
    try:
        await service.publish(engine, policy)
    finally:
        await engine.dispose()


async def test_rollout_and_consent_figures_follow_what_people_do(users, relay) -> None:
    policy = objectable_safety(policy_opening_now(DEFAULT))
    engine = create_engine(relay.database_url)
    try:
        async with engine.connect() as conn:
            assert await all_rollouts(conn, now_ms()) == []
            assert (await consent_history(conn, now_ms())).timeline is None
        await _publish(relay, policy)
        alice, bob, carol = [await users.register(name) for name in ("alice", "bob", "carol")]
        for person in (alice, bob, carol):
            await person.notice_shown(await notice_for(person))
        for person in (alice, bob):  # carol was served the notice, and has not accepted it
            await person.accept_terms(await notice_for(person), "adult")
        await alice.choose("ads", "in")
        await bob.choose("ads", "in")
        await bob.withdraw("ads")
        await alice.choose("analytics", "out")
        await alice.object_to("safety")

        async with engine.connect() as conn:
            [figures] = await all_rollouts(conn, now_ms())
            history = await consent_history(conn, now_ms())
            overview = await headlines(conn, now_ms())
    finally:
        await engine.dispose()

    everyone = figures.status.waves[-1]
    assert (everyone.served, everyone.accepted) == (3, 2)
    waves = {s.label: s.data for s in figures.waves}
    assert waves["served: everyone"][-1] == 3 and waves["accepted: everyone"][-1] == 2
    opt_ins = {s.label: s.data[-1] for s in figures.opt_ins}
    assert opt_ins["ads"] == 1 and opt_ins["analytics"] == 0  # bob withdrew; alice turned analytics off

    totals = {p.purpose: p.totals for p in history.purposes}
    assert totals["ads"] == {ON: 2, OFF: 0, WITHDRAWN: 1, OBJECTED: 0}
    assert totals["analytics"] == {ON: 0, OFF: 1, WITHDRAWN: 0, OBJECTED: 0}
    assert totals["safety"] == {ON: 0, OFF: 0, WITHDRAWN: 0, OBJECTED: 1}
    ads = {s.label: sum(s.data) for s in next(p for p in history.purposes if p.purpose == "ads").series}
    assert ads == {ON: 2, OFF: 0, WITHDRAWN: 1, OBJECTED: 0}
    assert (overview.policy_version, overview.served, overview.accepted, overview.acts_today) == (
        policy.version,
        3,
        2,
        5,
    )


async def test_an_unreadable_payload_is_said_not_crashed_on(users, relay) -> None:
    await _publish(relay, policy_opening_now(DEFAULT))
    alice = await users.register("alice")
    await alice.accept_terms(await notice_for(alice), "adult")
    await alice.choose("ads", "in")
    engine = create_engine(relay.database_url)
    try:
        async with engine.begin() as conn:  # someone edits the ledger behind Cove's back
            await conn.execute(update(ledger_entries).where(ledger_entries.c.kind == "choice").values(payload="{oops"))
        async with engine.connect() as conn:
            with pytest.raises(LedgerUnreadable):
                await consent_history(conn, now_ms())
    finally:
        await engine.dispose()


def test_the_health_charts_carry_the_fleets_figures_and_leave_a_missing_p99_missing() -> None:
    def figures(start_ms: int, connected: int, p99: int | None) -> Figures:
        return Figures(start_ms, start_ms + 60_000, 2, 0, connected, 1.234, 1.0, 3 if p99 else 0, p99, p99, 7)

    made = {id: spec for id, _, spec in health_charts([figures(0, 3, 40), figures(60_000, 5, None)], HOUR_MS)}
    assert made["health-connected"]["labels"] == ["00:00", "00:01"]
    assert made["health-connected"]["series"] == [{"label": "connected", "data": [3, 5]}]
    assert made["health-messages"]["series"][0]["data"] == [1.23, 1.23]
    assert made["health-latency"]["series"][1] == {"label": "p99", "data": [40, None]}
    assert made["health-connected"]["integer"] and not made["health-latency"]["integer"]
