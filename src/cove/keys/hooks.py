"""What the key directory does when another capability acts: an account's deletion takes its keys, a device's
unlinking that device's."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from cove.context import Relay
from cove.events import AccountDeleted, DeviceRemoved
from cove.keys import storage


async def _forget(conn: AsyncConnection, event: AccountDeleted) -> None:
    await storage.forget_account(conn, event.account_id)


async def _forget_device(conn: AsyncConnection, event: DeviceRemoved) -> None:
    await storage.forget_account(conn, event.account_id, event.device_id)


def register(relay: Relay) -> None:
    relay.hooks.on_transaction(AccountDeleted, _forget)
    relay.hooks.on_transaction(DeviceRemoved, _forget_device)
