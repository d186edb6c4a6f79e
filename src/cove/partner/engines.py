"""Where Splink trains and scores: the engine behind account linking.

Linking keeps its own bookkeeping (the inputs, the exact-key counts, one-to-one clustering, the write and the
audit) in an in-memory DuckDB, because those steps are joins over at most a few million rows. Splink's training
and scoring, the part that grows with the data, runs on an engine: DuckDB in the same in-memory database by
default, or Spark (``cove.partner.spark``) when one machine is not enough. An engine gets the two prepared
tables from that database and hands the scored pairs back into it, so the same model gives the same links
whichever engine ran it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Protocol

import duckdb

if TYPE_CHECKING:
    from splink import Linker, SettingsCreator

PARENT, MESSENGER = "parent_", "messenger_"  # Splink's names of the two datasets
INPUTS = (("parent", PARENT), ("messenger", MESSENGER))  # (table in the working database, Splink's name)


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

        db_api = DuckDBAPI(mem)
        inputs = [db_api.register(table, table_name=dataset) for table, dataset in INPUTS]
        return Linker(inputs, settings, log_level=logging.ERROR)

    def predict(self, mem: duckdb.DuckDBPyConnection, linker: Linker) -> str:
        return linker.inference.predict(warning_mode="never").physical_name
