"""The relay's database: one async engine, the shared metadata, and Alembic migrations applied on start.

SQLite (WAL) is the embedded default; PostgreSQL via asyncpg is the scale-out store. Each capability
declares its tables on :data:`metadata` in its own ``storage`` module.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, MetaData, Table, event, text
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

metadata = MetaData()

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


T = TypeVar("T")


def _sqlite_path(url: str) -> str:
    return url.split("///", 1)[-1]


def _use_sqlite_pragmas(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_conn, _record) -> None:  # noqa: ANN001
        cursor = dbapi_conn.cursor()
        # WAL lets readers run beside the writer. FULL syncs the log at every commit: a message answered
        # "sent" survives a power loss or an OS crash, not only a crash of the relay (NORMAL's promise).
        # The queue writer's group commit shares one sync among every send and ack waiting at that moment.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()


def insert_new(table: Table) -> dict[str, Any]:
    """``INSERT ... ON CONFLICT DO NOTHING`` for each dialect the relay runs on, keyed by ``conn.dialect.name``:
    a row the key already holds is skipped, so two relay processes writing it at once both succeed."""
    return {
        dialect: insert_for(table).on_conflict_do_nothing()
        for dialect, insert_for in (("sqlite", sqlite_insert), ("postgresql", postgresql_insert))
    }


def create_engine(url: str) -> AsyncEngine:
    if url.startswith("sqlite"):
        path = _sqlite_path(url)
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30})
        _use_sqlite_pragmas(engine.sync_engine)
        return engine
    return create_async_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)


class TransactionRunner:
    """Runs a synchronous function inside one transaction, for the relay's write-heavy hot path.

    On PostgreSQL the function runs on an async connection (asyncpg; each statement awaits on the event
    loop). On SQLite it runs whole on one dedicated thread with a plain sqlite3 connection: one hand-off
    per transaction instead of aiosqlite's one per statement, which cost more than the SQL itself. That
    thread keeps its connection open: a pool check-out and its reset on return cost as much as a statement.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._sync: Engine | None = None
        self._conn: Connection | None = None  # the SQLite thread's own, opened on first use
        self._thread: ThreadPoolExecutor | None = None
        if engine.dialect.name == "sqlite":
            path = _sqlite_path(engine.url.render_as_string(hide_password=False))
            self._sync = create_sync_engine(f"sqlite+pysqlite:///{path}", connect_args={"timeout": 30})
            _use_sqlite_pragmas(self._sync)
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="cove-sqlite-writer")

    async def run(self, fn: Callable[[Connection], T]) -> T:
        if self._sync is None:
            async with self._engine.begin() as conn:
                return await conn.run_sync(fn)
        return await asyncio.get_running_loop().run_in_executor(self._thread, self._in_transaction, fn)

    def _in_transaction(self, fn: Callable[[Connection], T]) -> T:
        assert self._sync is not None
        if self._conn is None:
            self._conn = self._sync.connect()
        with self._conn.begin():
            return fn(self._conn)

    def _disconnect(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def close(self) -> None:
        if self._thread is not None:
            self._thread.submit(self._disconnect).result()  # on the thread that opened it, as sqlite3 wants
            self._thread.shutdown(wait=True)
        if self._sync is not None:
            self._sync.dispose()


def _alembic_config(connection: Connection) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = connection
    return cfg


def _upgrade(connection: Connection) -> None:
    command.upgrade(_alembic_config(connection), "head")


# Any constant: relay processes starting together on one PostgreSQL database migrate one after another.
_MIGRATION_LOCK = 0x436F7665


async def migrate(engine: AsyncEngine) -> None:
    """Bring the schema to the newest revision; safe to call on every start, by several processes at once."""
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
        await conn.run_sync(_upgrade)
