"""What messaging does when another capability acts: a deleted account's queues go with it, in its deletion's
transaction, and an unlinked device's queue in its unlinking's; then, in every relay process, the sockets of
deleted, banned or logged-out devices close (4401)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from cove.accounts.deletion import CLOSE_REASON
from cove.context import Relay
from cove.events import AccountDeleted, DeviceRemoved, DevicesLoggedOut, IdentityChanged
from cove.messaging import storage


async def _forget(conn: AsyncConnection, event: AccountDeleted) -> None:
    await storage.forget_account(conn, event.account_id)


async def _drop_queues(conn: AsyncConnection, event: IdentityChanged) -> None:
    # A new phone is a new identity: what was queued was encrypted to keys that no longer exist.
    await storage.delete_account_queues(conn, event.account_id)


async def _drop_device_queue(conn: AsyncConnection, event: DeviceRemoved) -> None:
    await storage.delete_account_queues(conn, event.account_id, event.device_id)


def register(relay: Relay) -> None:
    hub = relay.hub

    def close_deleted(event: AccountDeleted) -> None:
        hub.log_out_account(event.account_id, CLOSE_REASON)

    def close_logged_out(event: DevicesLoggedOut) -> None:
        if event.device_ids:
            hub.log_out(event.account_id, event.device_ids, event.reason, event.at_ms)
        else:
            hub.log_out_account(event.account_id, event.reason, event.at_ms)

    relay.hooks.on_transaction(AccountDeleted, _forget)
    relay.hooks.on_transaction(IdentityChanged, _drop_queues)
    relay.hooks.on_transaction(DeviceRemoved, _drop_device_queue)
    relay.hooks.on(AccountDeleted, close_deleted)
    relay.hooks.on(DevicesLoggedOut, close_logged_out)
