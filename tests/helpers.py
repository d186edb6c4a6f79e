"""Helpers the integration tests share: reading the relay's database and picking events."""

from __future__ import annotations

from typing import Any

from sqlalchemy import MetaData, event, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from cove.accounts.storage import accounts, devices
from cove.client.events import MessageReceived


def texts(events: list) -> list[str]:
    return [e.text for e in events if isinstance(e, MessageReceived)]


async def server_rows(database_url: str) -> list[tuple[str, dict]]:
    """Every row of every table the relay has, as (table, row) pairs."""
    engine = create_async_engine(database_url)
    meta = MetaData()
    async with engine.connect() as conn:
        await conn.run_sync(meta.reflect)
        rows = []
        for table in meta.sorted_tables:
            for row in (await conn.execute(select(table))).mappings():
                rows.append((table.name, dict(row)))
    await engine.dispose()
    return rows


def assert_no_plaintext(rows: list[tuple[str, dict]], secrets: list[str]) -> None:
    for table, row in rows:
        for column, value in row.items():
            for secret in secrets:
                needle = secret.encode()
                if isinstance(value, bytes | bytearray | memoryview):
                    assert needle not in bytes(value), f"plaintext {secret!r} in {table}.{column}"
                elif isinstance(value, str):
                    assert secret not in value, f"plaintext {secret!r} in {table}.{column}"


async def insert_account(engine: AsyncEngine, account_id: str, phone: str) -> None:
    """An account with one device, written straight to the tables (no keys, no token)."""
    async with engine.begin() as conn:
        await conn.execute(
            insert(accounts).values(id=account_id, phone_number=phone, created_at_ms=1, identity_generation=1)
        )
        await conn.execute(
            insert(devices).values(
                account_id=account_id,
                device_id=1,
                registration_id=1,
                identity_curve25519="c",
                identity_ed25519="e",
                device_model="m",
                os_name="o",
                os_version="1",
                app_version="1",
                created_at_ms=1,
                updated_at_ms=1,
                last_seen_at_ms=1,
            )
        )


class Queries:
    """Counts the statements an engine runs (what a check costs once its caches are warm)."""

    def __init__(self, relay: Any) -> None:  # noqa: ANN401 - a cove.context.Relay
        self.count = 0
        event.listen(relay.engine.sync_engine, "before_cursor_execute", self._counted)

    def _counted(self, *_: Any) -> None:  # noqa: ANN401
        self.count += 1
