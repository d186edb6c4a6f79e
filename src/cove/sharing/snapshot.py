"""One consistent read of the relay's database, returned as Arrow tables.

An export reads a million rows from several tables. Through the async driver every row becomes a Python object
(tens of µs per row, measured); through ADBC (Apache Arrow's database connectivity, with drivers for SQLite and
PostgreSQL) the database's C client fills Arrow columns directly, several times faster.

The reads run in a child process (``python -m cove.sharing.snapshot``). ADBC's SQLite driver carries its own copy of
SQLite, and two copies of SQLite in one process break each other's POSIX locks (seen here as "disk I/O error" on
the relay's own connection, and a documented way to corrupt a database). In its own process it is just another
reader. All statements of one export run in that process on one connection inside one transaction, so the
permitted sets, the rows sent and the held sets describe the same instant; results come back as Arrow IPC files.

Statements are built with SQLAlchemy from the catalogue and the consent predicate, then compiled for the relay's
dialect: the database evaluates exactly what the rest of Cove evaluates.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
from sqlalchemy import Integer, Select, String
from sqlalchemy.engine import URL, Dialect
from sqlalchemy.types import TypeEngine


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
    """Collects statements, then runs them all at once in one transaction: :meth:`read`."""

    def __init__(self, url: URL, dialect: Dialect) -> None:
        self._url, self._dialect = url, dialect
        self._statements: list[Statement] = []

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

    def read(self) -> dict[str, pa.Table]:
        with tempfile.TemporaryDirectory(prefix="cove-snapshot-") as folder:
            job = {
                "url": self._url.render_as_string(hide_password=False),
                "statements": [[s.name, s.sql] for s in self._statements],
                "folder": folder,
            }
            done = subprocess.run(
                [sys.executable, "-m", "cove.sharing.snapshot"], input=json.dumps(job), capture_output=True, text=True
            )
            if done.returncode != 0:
                raise SnapshotError(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "reader failed")
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


def _connect(url: URL):  # noqa: ANN202 - an ADBC DB-API connection
    if url.get_backend_name() == "sqlite":
        import adbc_driver_sqlite.dbapi

        return adbc_driver_sqlite.dbapi.connect(url.database, autocommit=True)
    import adbc_driver_postgresql.dbapi

    return adbc_driver_postgresql.dbapi.connect(
        url.set(drivername="postgresql").render_as_string(hide_password=False), autocommit=True
    )


def _run(job: dict[str, Any]) -> None:
    from sqlalchemy.engine import make_url

    url = make_url(job["url"])
    conn = _connect(url)
    cursor = conn.cursor()
    # WAL (SQLite) and REPEATABLE READ (PostgreSQL): every statement sees the database as of the first read.
    cursor.execute("BEGIN ISOLATION LEVEL REPEATABLE READ" if url.get_backend_name() != "sqlite" else "BEGIN")
    try:
        for name, sql in job["statements"]:
            cursor.execute(sql)
            if name is None:
                continue
            table = cursor.fetch_arrow_table()
            with (
                pa.OSFile(str(Path(job["folder"]) / f"{name}.arrow"), "wb") as sink,
                pa.ipc.new_file(sink, table.schema) as writer,
            ):
                writer.write_table(table)
    finally:
        cursor.execute("ROLLBACK")
        cursor.close()
        conn.close()


if __name__ == "__main__":
    _run(json.loads(sys.stdin.read()))
