"""What operator commands share: the relay's own database, found the way the relay finds it.

An operator command runs wherever the operator happens to be, not where the relay runs. It reads the relay's
settings exactly as ``cove serve`` does (``COVE_*`` variables, then ``cove.toml`` or ``COVE_CONFIG``, then the
defaults), says on stderr which database that is, and refuses a database the relay never created rather than
making an empty one, which would then answer "no policy is published" about a relay that has one.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar

from rich.markup import escape
from sqlalchemy import inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from cove.cli_guard import CommandError, err
from cove.config import Settings
from cove.db import create_engine, migrate

T = TypeVar("T")

HINT = (
    "start the relay once with `cove serve` (it creates the database), or set COVE_DATA_DIR "
    "(or COVE_DATABASE_URL, cove.toml, COVE_CONFIG) as the relay has them"
)


class NoRelayDatabase(CommandError):
    """The settings point at no database the relay made: the command runs in the wrong place or environment."""


def describe(url: str) -> str:
    """The database as a person recognises it: a file path for SQLite, the URL without its password otherwise."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return str(parsed.database)
    return parsed.render_as_string(hide_password=True)


def _located(settings: Settings) -> tuple[str, str]:
    """The database URL and its description; a SQLite file must already exist (opening it would create it)."""
    url = settings.resolved_database_url
    where = describe(url)
    if make_url(url).get_backend_name() == "sqlite" and not Path(where).is_file():
        raise NoRelayDatabase(f"no relay database at {where}: {HINT}")
    return url, where


async def migrate_or_explain(url: str) -> None:
    """Bring the database at ``url`` to this version's schema, as the relay does on start (creating a SQLite
    file); a :class:`CommandError` naming the database when it cannot be opened."""
    engine = create_engine(url)
    try:
        await migrate(engine)
    except (OSError, DBAPIError) as exc:
        raise CommandError(f"cannot open the relay database {describe(url)}: {exc}") from exc
    finally:
        await engine.dispose()


@asynccontextmanager
async def relay_database(settings: Settings | None = None) -> AsyncIterator[AsyncEngine]:
    """The relay's database, migrated to this version's schema; :class:`NoRelayDatabase` if the relay made none."""
    url, where = _located(settings or Settings())
    err.print(f"relay database: {escape(where)}", highlight=False, soft_wrap=True)
    engine = create_engine(url)
    try:
        try:
            async with engine.connect() as conn:
                created = await conn.run_sync(lambda sync: inspect(sync).has_table("alembic_version"))
        except (OSError, DBAPIError) as exc:
            raise CommandError(f"cannot open the relay database {where}: {exc}") from exc
        if not created:
            raise NoRelayDatabase(f"{where} holds no Cove schema: {HINT}")
        await migrate(engine)  # what the relay does on start; a no-op when it already runs this version
        yield engine
    finally:
        await engine.dispose()


def on_database(work: Callable[[AsyncEngine], Awaitable[T]]) -> T:
    """Run ``work`` on the relay's database (errors reach the ``cove`` command's guard as messages)."""

    async def run() -> T:
        async with relay_database() as engine:
            return await work(engine)

    return asyncio.run(run())


def ensure_relay_database() -> None:
    """Refuse to go on without the relay's database: for commands that use the relay's data directory only."""

    async def nothing(_engine: AsyncEngine) -> None:
        return None

    on_database(nothing)
