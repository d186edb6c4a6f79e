"""Where Splink trains and scores: the engine behind account linking.

Linking keeps its own bookkeeping (the inputs, the exact-key counts, one-to-one clustering, the write and the
audit) in an in-memory DuckDB, because those steps are joins over at most a few million rows. Splink's training
and scoring, the part that grows with the data, runs on an engine: DuckDB in the same in-memory database by
default, or Spark (``cove.partner.spark``) when one machine is not enough. An engine gets the two prepared
tables from that database and hands the scored pairs back into it, so the same model gives the same links
whichever engine ran it.

"The same" is exact, not statistical. Splink picks the records behind the u probabilities (and splits them into
chunks) by hashing each record's id; DuckDB's ``hash`` and Spark's ``hash`` differ, so each engine would sample
other pairs and learn slightly other u values. Both engines here hash with :data:`PORTABLE_HASH` instead: the
first 60 bits of the id's MD5, which both compute alike, so both sample the very same pairs.

:func:`open_engine` is the way in: a context manager, since an engine may hold a session to stop.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from typing import TYPE_CHECKING, Protocol

import duckdb
import pyarrow as pa

if TYPE_CHECKING:
    from splink import Linker, SettingsCreator

    from cove.partner.spark import SparkSettings

PARENT, MESSENGER = "parent_", "messenger_"  # Splink's names of the two datasets
INPUTS = (("parent", PARENT), ("messenger", MESSENGER))  # (table in the working database, Splink's name)


class EngineName(StrEnum):
    DUCKDB = "duckdb"
    SPARK = "spark"


ENGINES = tuple(engine.value for engine in EngineName)
# MD5's first 15 hex digits as a non-negative BIGINT: in DuckDB and in Spark SQL, the same number for one string.
PORTABLE_HASH = {
    "duckdb": "CAST('0x' || substr(md5(CAST({} AS VARCHAR)), 1, 15) AS BIGINT)",
    "spark": "CAST(conv(substring(md5(CAST({} AS STRING)), 1, 15), 16, 10) AS BIGINT)",
}


class EngineError(Exception):
    """An engine cannot run here (no Java for Spark, pyspark not installed, the JVM failed to start)."""


class LinkEngine(Protocol):
    name: str

    def linker(self, mem: duckdb.DuckDBPyConnection, settings: SettingsCreator) -> Linker:
        """An untrained linker over the working database's ``parent`` and ``messenger`` tables."""
        ...

    def predict(self, mem: duckdb.DuckDBPyConnection, linker: Linker) -> str:
        """Score every blocked pair; returns the name of a table in ``mem`` holding Splink's predictions."""
        ...


class DuckDBEngine:
    """Splink on DuckDB, in the working database itself: nothing is copied."""

    name = "duckdb"

    def linker(self, mem: duckdb.DuckDBPyConnection, settings: SettingsCreator) -> Linker:
        from splink import DuckDBAPI, Linker

        db_api = portable_api(DuckDBAPI, "duckdb")(mem)
        inputs = [db_api.register(table, table_name=dataset) for table, dataset in INPUTS]
        return Linker(inputs, settings, log_level=logging.ERROR)

    def predict(self, mem: duckdb.DuckDBPyConnection, linker: Linker) -> str:
        return linker.inference.predict(warning_mode="never").physical_name


@cache
def portable_api(api: type, dialect: str) -> type:
    """Splink's database API ``api``, its SQL dialect hashing with :data:`PORTABLE_HASH` [``dialect``]."""

    class PortableDialect(type(api.sql_dialect)):
        def hash_function_expression(self, col_expression: str) -> str:
            return PORTABLE_HASH[dialect].format(col_expression)

    class PortableAPI(api):
        sql_dialect = PortableDialect()

    return PortableAPI


@contextmanager
def open_engine(name: str, spark: SparkSettings | None = None) -> Iterator[LinkEngine]:
    """The engine called ``name``, ready until the block ends; ``spark`` sizes a Spark session."""
    if name == "duckdb":
        yield DuckDBEngine()
    elif name == "spark":
        from cove.partner.spark import SparkEngine

        with SparkEngine(spark) as engine:
            yield engine
    else:
        raise EngineError(f"unknown linking engine {name!r}; expected one of {', '.join(ENGINES)}")


@dataclass(frozen=True)
class Agreement:
    """How far two engines' links agree: pairs linked by both, by one only, and the largest probability gap."""

    both: int
    only_first: int
    only_second: int
    max_probability_gap: float

    @property
    def share_identical(self) -> float:
        union = self.both + self.only_first + self.only_second
        return self.both / union if union else 1.0


def compare_links(first: pa.Table, second: pa.Table) -> Agreement:
    """Compare two ``links`` tables (``subject``, ``user_id``, ``probability``)."""
    with duckdb.connect() as db:
        db.register("a", first)
        db.register("b", second)
        both, only_a, only_b, gap = db.execute("""
            SELECT count(a.subject) FILTER (WHERE b.subject IS NOT NULL),
                   count(*) FILTER (WHERE b.subject IS NULL), count(*) FILTER (WHERE a.subject IS NULL),
                   coalesce(max(abs(a.probability - b.probability)), 0)
            FROM a FULL JOIN b ON a.subject = b.subject AND a.user_id = b.user_id""").fetchall()[0]
    return Agreement(both, only_a, only_b, gap)
