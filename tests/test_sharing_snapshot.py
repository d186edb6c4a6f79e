"""The snapshot's reader: several connections, one instant, on SQLite and PostgreSQL; failures say why."""

from __future__ import annotations

import asyncio
import sqlite3
import threading

import pytest
from sqlalchemy import column, func, insert, select, table
from sqlalchemy.engine import URL

from cove.db import create_engine
from cove.sharing.snapshot import Snapshot, SnapshotError
from cove.sharing.storage import sharing_subjects

READERS = 4


def commit_until(url: URL, stop: threading.Event) -> int:
    """Commit one row at a time, as fast as the database takes them, until ``stop``; how many were committed."""
    if url.get_backend_name() == "sqlite":
        # Unsynced commits land every few microseconds, well inside the time the readers take to begin.
        conn = sqlite3.connect(url.database, isolation_level=None, timeout=30)
        conn.execute("PRAGMA synchronous=OFF")
        commit = lambda n: conn.execute("INSERT INTO sharing_subjects (account_id) VALUES (?)", (f"w-{n}",))  # noqa: E731
    else:

        async def insert_one(n: int) -> None:
            async with engine.begin() as c:
                await c.execute(insert(sharing_subjects).values(account_id=f"w-{n}"))

        engine = create_engine(url.render_as_string(hide_password=False))
        runner = asyncio.Runner()
        commit = lambda n: runner.run(insert_one(n))  # noqa: E731
    written = 0
    try:
        while not stop.is_set():
            commit(written)
            written += 1
    finally:
        if url.get_backend_name() == "sqlite":
            conn.close()
        else:
            runner.run(engine.dispose())
            runner.close()
    return written


async def test_every_reader_connection_sees_the_same_instant_while_a_writer_commits(database_url: str) -> None:
    engine = create_engine(database_url)
    stop = threading.Event()
    writer = asyncio.create_task(asyncio.to_thread(commit_until, engine.url, stop))
    try:
        seen = []
        for _ in range(8):
            snapshot = Snapshot(engine.url, engine.dialect, readers=READERS)
            for n in range(READERS):
                snapshot.query(f"count_{n}", select(func.count().label("n")).select_from(sharing_subjects))
            tables = await asyncio.to_thread(snapshot.read)
            counts = {t.column("n")[0].as_py() for t in tables.values()}
            assert len(counts) == 1, counts  # one instant, though commits fell while the readers began
            seen.extend(counts)
    finally:
        stop.set()
        await writer
        await engine.dispose()
    assert len(set(seen)) > 1  # the writer did commit between reads: the check above could have failed


async def test_a_failed_read_says_why_and_the_next_read_works(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        broken = Snapshot(engine.url, engine.dialect)
        broken.query("subjects", select(sharing_subjects.c.ordinal))
        broken.query("missing", select(column("x")).select_from(table("no_such_table")))
        with pytest.raises(SnapshotError, match="no_such_table"):
            await asyncio.to_thread(broken.read)

        snapshot = Snapshot(engine.url, engine.dialect)
        snapshot.query("subjects", select(sharing_subjects.c.ordinal, sharing_subjects.c.account_id))
        tables = await asyncio.to_thread(snapshot.read)
        assert tables["subjects"].num_rows == 0
        assert tables["subjects"].schema.names == ["ordinal", "account_id"]
        assert set(snapshot.seconds) >= {"begin", "subjects", "total"}
    finally:
        await engine.dispose()
