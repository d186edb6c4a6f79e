"""One consistent read of the relay's database, returned as Arrow tables.

An export reads a million rows from several tables. Through the async driver every row becomes a Python object
(tens of µs per row, measured); through ADBC (Apache Arrow's database connectivity, with drivers for SQLite and
PostgreSQL) the database's C client fills Arrow columns directly, several times faster.

The reads run in a child process (``python -m cove.sharing.snapshot``). ADBC's SQLite driver carries its own copy of
SQLite, and two copies of SQLite in one process break each other's POSIX locks (seen here as "disk I/O error" on
the relay's own connection, and a documented way to corrupt a database). In its own process it is just another
reader. The process is started by the first read and then kept, serving one read after another over its standard
input and output: starting Python and importing Arrow cost about 0.4 s, more than a small incremental export.

All statements of one read see the same instant, so the permitted sets, the rows sent and the held sets agree.
They run on several connections at once, one table each, biggest first (the caller lists them so), each
connection in its own transaction on one shared snapshot:

- PostgreSQL: the first connection opens a REPEATABLE READ transaction and exports its snapshot
  (``pg_export_snapshot()``); the others adopt it with ``SET TRANSACTION SNAPSHOT`` before reading anything.
- SQLite (WAL): a read transaction sees the database as of its first read. A guard connection holds the write
  lock (``BEGIN IMMEDIATE``) while every reader makes that first read, so no commit can fall between them; the
  guard then lets writers go on, a few milliseconds later.

Results come back as Arrow IPC files. Statements are built with SQLAlchemy from the catalogue and the consent
predicate, then compiled for the relay's dialect: the database evaluates exactly what the rest of Cove evaluates.
"""

from __future__ import annotations

import atexit
import json
import os
import queue
import re
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
from sqlalchemy import Integer, Select, String
from sqlalchemy.engine import URL, Dialect
from sqlalchemy.types import TypeEngine

# Connections reading at once. More than the cores only makes them take turns; past four the tables run out.
READERS = max(1, min(4, os.cpu_count() or 1))


class SnapshotError(Exception):
    """The read failed; the message carries the database's own error."""


@dataclass(frozen=True)
class Statement:
    name: str | None  # None: run for its effect (a temporary table), return nothing
    sql: str
    types: tuple[pa.DataType | None, ...] = ()


def _arrow_type(sql_type: TypeEngine) -> pa.DataType | None:
    if isinstance(sql_type, String):
        return pa.string()
    if isinstance(sql_type, Integer):  # BigInteger and SmallInteger too
        return pa.int64()
    return None


class Snapshot:
    """Collects statements, then runs them all at once on one snapshot of the database: :meth:`read`."""

    def __init__(self, url: URL, dialect: Dialect, readers: int = READERS) -> None:
        self._url, self._dialect, self.readers = url, dialect, readers
        self._statements: list[Statement] = []
        self.seconds: dict[str, float] = {}  # after read(): wall seconds per statement, in the reader process

    def compile(self, statement: Any, **params: Any) -> str:
        if params:
            statement = statement.params(**params)
        return str(statement.compile(dialect=self._dialect, compile_kwargs={"literal_binds": True}))

    def query(self, name: str, statement: Select, **params: Any) -> None:
        """Read ``statement`` as the table ``name``, typed from its columns: SQLite's driver infers types from
        values, which an empty result or an all-NULL column does not show."""
        types = tuple(_arrow_type(c.type) for c in statement.selected_columns)
        self._statements.append(Statement(name, self.compile(statement, **params), types))

    def create_temporary(self, name: str, statement: Select, **params: Any) -> None:
        """A temporary table, for this read only, that later statements can join."""
        self._statements.append(
            Statement(None, f"CREATE TEMPORARY TABLE {name} AS {self.compile(statement, **params)}")
        )

    @staticmethod
    def warm_up() -> None:
        """Have the reader process start now (it takes about 0.4 s), so that it is ready when :meth:`read` runs."""
        _reader.start()

    def read(self) -> dict[str, pa.Table]:
        with tempfile.TemporaryDirectory(prefix="cove-snapshot-") as folder:
            self.seconds = _reader.run(
                {
                    "url": self._url.render_as_string(hide_password=False),
                    "statements": [[s.name, s.sql] for s in self._statements],
                    "folder": folder,
                    "readers": self.readers,
                }
            )
            tables = {}
            for s in self._statements:
                if s.name is None:
                    continue
                with pa.memory_map(str(Path(folder) / f"{s.name}.arrow")) as source:
                    found = pa.ipc.open_file(source).read_all()
                schema = pa.schema(
                    [
                        (n, t or found.schema.field(i).type)
                        for i, (n, t) in enumerate(zip(found.column_names, s.types, strict=True))
                    ]
                )
                tables[s.name] = found.cast(schema)
        return tables


class _ReaderProcess:
    """The child process that runs reads, one job at a time: started on first use, restarted if it died."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        """Start the process if it is not running, without waiting for it to be ready; never blocks (the caller may
        be an event loop): if a read holds the lock, the process is running already."""
        if self._lock.acquire(blocking=False):
            try:
                self._start()
            finally:
                self._lock.release()

    def _start(self) -> None:
        if self._process is None or self._process.poll() is not None:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "cove.sharing.snapshot"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )

    def run(self, job: dict[str, Any]) -> dict[str, float]:
        """Runs ``job``; the wall seconds each statement took, by name."""
        with self._lock:
            self._start()
            assert self._process.stdin is not None and self._process.stdout is not None
            try:
                self._process.stdin.write(json.dumps(job) + "\n")
                self._process.stdin.flush()
                answer = self._process.stdout.readline()
            except BrokenPipeError:
                answer = ""
            if not answer:
                self._process.wait()
                raise SnapshotError(f"the reader process exited (code {self._process.returncode})")
            answer = json.loads(answer)
            if "error" in answer:
                raise SnapshotError(answer["error"])
            return answer["seconds"]

    def close(self) -> None:
        with self._lock:
            if self._process is not None and self._process.poll() is None:
                assert self._process.stdin is not None
                self._process.stdin.close()  # the child's cue to exit
                self._process.wait()


_reader = _ReaderProcess()
atexit.register(_reader.close)


def _connect(url: URL):  # noqa: ANN202 - an ADBC DB-API connection
    if url.get_backend_name() == "sqlite":
        import adbc_driver_sqlite.dbapi

        return adbc_driver_sqlite.dbapi.connect(url.database, autocommit=True)
    import adbc_driver_postgresql.dbapi

    return adbc_driver_postgresql.dbapi.connect(
        url.set(drivername="postgresql").render_as_string(hide_password=False), autocommit=True
    )


# The child process's side -------------------------------------------------------------------------------------
SNAPSHOT_ID = re.compile(r"^[0-9A-Fa-f]+-[0-9A-Fa-f]+(-[0-9A-Fa-f]+)?$")


def _begin_together(url: URL, count: int) -> list:  # noqa: ANN401 - ADBC cursors
    """``count`` cursors, each in a read transaction, all on one snapshot of the database."""
    cursors = [_connect(url).cursor() for _ in range(count)]
    if url.get_backend_name() != "sqlite":
        leader, *others = cursors
        leader.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        if others:
            leader.execute("SELECT pg_export_snapshot()")
            (snapshot_id,) = leader.fetchone()
            if not SNAPSHOT_ID.match(snapshot_id):
                raise SnapshotError(f"unexpected snapshot id {snapshot_id!r}")
            for cursor in others:
                cursor.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
                cursor.execute(f"SET TRANSACTION SNAPSHOT '{snapshot_id}'")
        return cursors
    guard = _connect(url).cursor() if count > 1 else None
    try:
        if guard is not None:
            guard.execute("PRAGMA busy_timeout = 30000")
            guard.execute("BEGIN IMMEDIATE")
        for cursor in cursors:
            cursor.execute("BEGIN")
            cursor.execute("SELECT count(*) FROM sqlite_schema")  # the first read fixes the snapshot
            cursor.fetchall()
    finally:
        if guard is not None:
            guard.execute("ROLLBACK")
            _close(guard)
    return cursors


def _close(cursor) -> None:  # noqa: ANN001 - an ADBC cursor
    connection = cursor.connection
    cursor.close()
    connection.close()


def _run(job: dict[str, Any]) -> dict[str, float]:
    from sqlalchemy.engine import make_url

    started = time.perf_counter()
    seconds: dict[str, float] = {}
    url = make_url(job["url"])
    setup = [sql for name, sql in job["statements"] if name is None]
    reads: queue.SimpleQueue[tuple[str, str]] = queue.SimpleQueue()
    for name, sql in job["statements"]:
        if name is not None:
            reads.put((name, sql))
    cursors = _begin_together(url, max(1, min(job["readers"], reads.qsize())))
    seconds["begin"] = time.perf_counter() - started
    failures: list[BaseException] = []

    def work(cursor) -> None:  # noqa: ANN001 - an ADBC cursor
        try:
            for sql in setup:  # temporary tables belong to one connection: each makes its own
                cursor.execute(sql)
            while True:
                try:
                    name, sql = reads.get_nowait()
                except queue.Empty:
                    return
                began = time.perf_counter()
                cursor.execute(sql)
                table = cursor.fetch_arrow_table()
                with (
                    pa.OSFile(str(Path(job["folder"]) / f"{name}.arrow"), "wb") as sink,
                    pa.ipc.new_file(sink, table.schema) as writer,
                ):
                    writer.write_table(table)
                seconds[name] = time.perf_counter() - began
        except BaseException as exc:  # noqa: BLE001 - handed to the parent as the job's answer
            failures.append(exc)

    try:
        threads = [threading.Thread(target=work, args=(cursor,)) for cursor in cursors]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        for cursor in cursors:
            cursor.execute("ROLLBACK")
            _close(cursor)
    if failures:
        raise failures[0]
    seconds["total"] = time.perf_counter() - started
    return seconds


def _serve() -> None:
    """One job a line on standard input, one answer a line on standard output, until the input closes."""
    for line in sys.stdin:
        try:
            answer: dict[str, Any] = {"seconds": _run(json.loads(line))}
        except Exception as exc:  # noqa: BLE001 - every failure is the parent's SnapshotError
            message = str(exc).strip().splitlines()
            answer = {"error": message[-1] if message else type(exc).__name__}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    _serve()
