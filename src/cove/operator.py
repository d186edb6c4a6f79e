"""What operator commands share: run some work against the relay's database, with readable errors."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import typer
from rich.console import Console
from sqlalchemy.ext.asyncio import AsyncEngine

from cove.config import Settings
from cove.db import create_engine, migrate
from cove.errors import ApiError

T = TypeVar("T")
err = Console(stderr=True)


def on_database(work: Callable[[AsyncEngine], Awaitable[T]]) -> T:
    """Migrate the configured database, run ``work`` on it; an ApiError becomes ``error: ...`` and exit 1."""

    async def run() -> T:
        engine = create_engine(Settings().resolved_database_url)
        try:
            await migrate(engine)
            return await work(engine)
        finally:
            await engine.dispose()

    try:
        return asyncio.run(run())
    except ApiError as exc:
        err.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(1) from exc
