"""Durability of the relay's SQLite store: what it promises a sender it answered."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from cove.db import TransactionRunner, create_engine


async def test_every_sqlite_connection_syncs_each_commit(tmp_path: Path) -> None:
    """synchronous=FULL (2) in WAL: an acknowledged message survives a power loss, not only a process crash."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'relay.db'}")
    runner = TransactionRunner(engine)
    try:
        async with engine.connect() as conn:
            assert (await conn.execute(text("PRAGMA synchronous"))).scalar() == 2
            assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
        assert await runner.run(lambda conn: conn.execute(text("PRAGMA synchronous")).scalar()) == 2
    finally:
        runner.close()
        await engine.dispose()
