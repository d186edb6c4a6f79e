"""What the key directory does when another capability acts: an account's deletion takes its keys, a device's
unlinking that device's. Its part of an account's data export: how many keys each device has published."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from cove.accounts.export import listed
from cove.context import Relay
from cove.events import AccountDeleted, DeviceRemoved
from cove.keys import storage


async def _forget(conn: AsyncConnection, event: AccountDeleted) -> None:
    await storage.forget_account(conn, event.account_id)


async def _forget_device(conn: AsyncConnection, event: DeviceRemoved) -> None:
    await storage.forget_account(conn, event.account_id, event.device_id)


async def _export(conn: AsyncConnection, account_id: str) -> dict[str, Any]:
    one, fallback = storage.one_time_keys.c, storage.fallback_keys.c
    return {
        "keys": {
            "one_time": await listed(
                conn,
                select(one.device_id, func.count().label("count"))
                .where(one.account_id == account_id)
                .group_by(one.device_id)
                .order_by(one.device_id),
            ),
            "fallback": await listed(
                conn,
                select(fallback.device_id, fallback.key_id, fallback.public_key)
                .where(fallback.account_id == account_id)
                .order_by(fallback.device_id),
            ),
        }
    }


def register(relay: Relay) -> None:
    relay.export_sections.append(_export)
    relay.hooks.on_transaction(AccountDeleted, _forget)
    relay.hooks.on_transaction(DeviceRemoved, _forget_device)
