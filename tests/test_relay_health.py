"""A real relay writes its health figures while two people message each other; the operator reads them with
`cove relay health` and the read model the console uses; rows older than 7 days go. SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result
from rich.console import Console
from typer.testing import CliRunner

from conftest import Users
from cove.cli import app
from cove.client.events import MessageReceived
from cove.client.transport import CoveClient
from cove.db import create_engine
from cove.fleet import commands, health, health_storage, histogram
from cove.fleet.health_recorder import HealthWriter, Recorder
from cove.fleet.health_storage import KEEP_MS, HealthRow
from cove.messaging import storage as messaging_storage
from cove.messaging.envelope import Envelope, EnvelopeKind
from cove.testing import CodeInbox, RelayProcess, nats_server
from helpers import texts

INTERVAL_SECONDS = 0.2


_HEALTH_ENV = {"COVE_HEALTH_INTERVAL_SECONDS": str(INTERVAL_SECONDS)}


@pytest.fixture
def relay_env() -> dict[str, str]:
    return _HEALTH_ENV


async def _rows(database_url: str) -> list[HealthRow]:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            return [row async for row in health_storage.rows_since(conn, 0)]
    finally:
        await engine.dispose()


async def _rows_until(database_url: str, enough: Callable[[list[HealthRow]], bool]) -> list[HealthRow]:
    """The relay writes every INTERVAL_SECONDS: read until the rows show what the test waits for."""
    for _ in range(300):
        rows = await _rows(database_url)
        if enough(rows):
            return rows
        await asyncio.sleep(INTERVAL_SECONDS / 2)
    raise AssertionError(f"the relay's health rows never showed it: {rows[-3:]}")


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """The table's cells unwrapped, whatever the terminal the tests run in."""
    monkeypatch.setattr(commands, "console", Console(width=200))


async def test_a_relay_records_connections_messages_and_delivery_latency(users, relay: RelayProcess):
    alice = await users.register("alice")
    bob = await users.register("bob")
    received: list[str] = []
    connected = asyncio.Event()

    async def listen() -> None:
        async for event in bob.events():
            connected.set()
            if isinstance(event, MessageReceived):
                received.append(event.text)
                if len(received) == 3:
                    return

    listener = asyncio.create_task(listen())
    # Bob's socket is open once a row counts it; what Alice sends from then on is delivered live.
    await _rows_until(relay.database_url, lambda rows: any(r.connected >= 1 for r in rows))
    for i in range(3):
        await alice.send_text(bob.core.account_id, f"live {i}")
    await asyncio.wait_for(listener, 30)
    # Alice is offline: Bob's answers wait in the queue and reach her as a backlog when she connects.
    for text in ("one", "two"):
        await bob.send_text(alice.core.account_id, text)
    assert texts(await alice.inbox()) == ["one", "two"]

    rows = await _rows_until(relay.database_url, lambda rows: sum(r.delivered for r in rows) >= 5)
    assert sum(r.accepted for r in rows) >= 5
    assert len({r.process for r in rows}) == 1
    assert all(r.interval_ms > 0 and r.queue_depth is not None for r in rows)
    # Live deliveries were timed; the backlog Alice read on connecting waited for her, not for the relay.
    samples = sum(sum(r.latency) for r in rows)
    assert 3 <= samples < sum(r.delivered for r in rows)
    assert any(r.p99_ms is not None and r.p99_ms > 0 for r in rows)

    engine = create_engine(relay.database_url)
    try:
        async with engine.connect() as conn:
            series = await health.health_series(conn, rows[0].at_ms - 1, 60_000)
            latest = await health.latest(conn, 60_000)
    finally:
        await engine.dispose()
    assert len(series) == 1  # a minute's bucket holds the whole test
    assert series[0].latency_samples == samples and series[0].p99_ms is not None and series[0].p99_ms > 0
    assert series[0].accepted_per_s > 0 and series[0].delivered_per_s > 0
    assert latest is not None and latest.fleet.processes == 1 and latest.fleet.silent == 0
    assert list(latest.processes) == [rows[0].process]

    shown = await _cove(relay.database_url, relay.data_dir, "relay", "health", "--minutes", "5")
    assert shown.exit_code == 0, shown.output
    assert rows[0].process.split(":")[0] in shown.output and "fleet (1 of 1 writing)" in shown.output
    assert "p99 ms" in shown.output


async def test_a_fleet_is_summed_over_its_processes(database_url: str, tmp_path: Path, code_inbox: CodeInbox):
    """Alice's process accepts, Bob's delivers what NATS woke it with: the fleet's figures hold both."""
    if database_url.startswith("sqlite"):
        pytest.skip("a fleet shares PostgreSQL")
    nats = nats_server(tmp_path)
    nats.start()
    env = {"COVE_NATS_URL": nats.url, "COVE_BUS_PREFIX": f"t{uuid.uuid4().hex[:12]}", **_HEALTH_ENV}
    relays = [
        RelayProcess(database_url, _folder(tmp_path / name), code_inbox.url, env, preloaded=True) for name in "ab"
    ]
    made = [Users(relay, code_inbox, tmp_path / "clients") for relay in relays]
    try:
        for relay in relays:
            relay.start()
        alice = await made[0].register("alice", "+14155550101")
        bob = await made[1].register("bob", "+14155550102")
        await alice.send_text(bob.core.account_id, "through the queue")  # sets up the session
        assert texts(await bob.inbox()) == ["through the queue"]
        received: list[str] = []
        listener = asyncio.create_task(_listen(bob, 3, received))
        rows = await _rows_until(database_url, lambda rows: any(r.connected >= 1 for r in rows))
        held_by = next(r.process for r in rows if r.connected >= 1)
        for i in range(3):
            await alice.send_text(bob.core.account_id, f"woken {i}")
        await asyncio.wait_for(listener, 30)

        # Each process writes its own rows: wait for the sender's count as well as the deliverer's.
        rows = await _rows_until(
            database_url, lambda rows: sum(r.accepted for r in rows) >= 4 and sum(sum(r.latency) for r in rows) >= 3
        )
        by_process: dict[str, list[HealthRow]] = {}
        for row in rows:
            by_process.setdefault(row.process, []).append(row)
        assert len(by_process) == 2
        (sender,) = set(by_process) - {held_by}
        assert sum(r.accepted for r in by_process[sender]) >= 4 and sum(r.delivered for r in by_process[sender]) == 0
        assert sum(r.delivered for r in by_process[held_by]) >= 4
        assert sum(sum(r.latency) for r in by_process[held_by]) >= 3  # the woken ones, timed where they left

        engine = create_engine(database_url)
        try:
            async with engine.connect() as conn:
                latest = await health.latest(conn, 60_000)
        finally:
            await engine.dispose()
        assert latest is not None and latest.fleet.processes == 2 and set(latest.processes) == set(by_process)
        assert latest.fleet.accepted_per_s == pytest.approx(sum(f.accepted_per_s for f in latest.processes.values()))
        assert latest.fleet.latency_samples == sum(f.latency_samples for f in latest.processes.values())
    finally:
        for users in made:
            await users.aclose()
        for relay in relays:
            if relay.started:
                relay.stop()
        nats.stop()


def _folder(path: Path) -> Path:
    path.mkdir()
    return path


async def _listen(client: CoveClient, count: int, into: list[str]) -> None:
    async for event in client.events():
        if isinstance(event, MessageReceived):
            into.append(event.text)
            if len(into) == count:
                return


async def _cove(database_url: str, data_dir: Path, *args: str) -> Result:
    """An operator command on the relay's database (in a thread: it runs its own event loop)."""
    env = {"COVE_DATABASE_URL": database_url, "COVE_DATA_DIR": str(data_dir), "COVE_CONFIG": str(data_dir / "none")}
    return await asyncio.to_thread(CliRunner().invoke, app, list(args), env=env)


async def test_a_row_is_written_with_the_queue_depth_and_rows_older_than_7_days_go(database_url: str):
    engine = create_engine(database_url)
    now = 30 * 86_400_000
    old = HealthRow("old:1:x", now - KEEP_MS - 1, 10_000, 1, 2, 3, tuple(histogram.empty()), None, None, 0)
    kept = HealthRow("old:1:x", now - KEEP_MS + 1, 10_000, 1, 2, 3, tuple(histogram.empty()), None, None, 0)
    try:
        async with engine.begin() as conn:
            await health_storage.append(conn, old)
            await health_storage.append(conn, kept)
            await conn.run_sync(lambda sync: messaging_storage.insert_envelopes(sync, _envelopes(3, now)))
        clock = _Clock(now - 10_000)
        recorder = Recorder(clock)
        recorder.accepted(4)
        clock.ms = now
        writer = HealthWriter(engine, recorder, lambda: 9, messaging_storage.queued_envelopes, prune_seconds=60)
        written = await writer.write()
        assert (written.connected, written.accepted, written.queue_depth, written.interval_ms) == (9, 4, 3, 10_000)
        async with engine.connect() as conn:
            stored = [row async for row in health_storage.rows_since(conn, 0)]
        assert stored == [kept, written]
    finally:
        await engine.dispose()


async def test_past_the_count_cap_the_queue_depth_is_the_cap_or_the_estimate(
    database_url: str, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(messaging_storage, "QUEUE_COUNT_CAP", 2)
    engine = create_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(lambda sync: messaging_storage.insert_envelopes(sync, _envelopes(5, 1000)))
        async with engine.connect() as conn:
            depth = await messaging_storage.queued_envelopes(conn)
    finally:
        await engine.dispose()
    if database_url.startswith("sqlite"):
        assert depth == 2  # the count stopped at the cap: a lower bound
    else:
        assert 2 <= depth <= 5  # the statistics' estimate, which may not have seen the inserts yet


class _Clock:
    def __init__(self, ms: int) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


def _envelopes(n: int, now: int) -> list[Envelope]:
    return [
        Envelope(None, "acct", 1, EnvelopeKind.OLM_MESSAGE, "sender", 1, f"m{i}", b"x", now, now + 86_400_000)
        for i in range(n)
    ]


def test_without_the_relay_database_the_command_refuses_in_one_line(tmp_path: Path):
    env = {"COVE_DATA_DIR": str(tmp_path / "nothing"), "COVE_CONFIG": str(tmp_path / "none.toml")}
    result = CliRunner().invoke(app, ["relay", "health"], env={**env, "COVE_DATABASE_URL": ""})
    assert result.exit_code == 1 and "no relay database at" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "nothing").exists()


async def test_with_no_rows_in_the_window_the_command_says_so(database_url: str, tmp_path: Path):
    result = await _cove(database_url, tmp_path, "relay", "health", "--minutes", "2")
    assert result.exit_code == 0, result.output
    assert "no relay process wrote its health figures in the last 2 minute(s)" in result.output
