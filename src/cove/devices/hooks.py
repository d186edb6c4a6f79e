"""What linked devices do when another capability acts: a new identity (the number registered on a new phone) or a
deleted account takes the old primary's device list and link tokens with it."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from cove.context import Relay
from cove.devices import storage
from cove.events import AccountDeleted, IdentityChanged


async def _forget(conn: AsyncConnection, event: AccountDeleted | IdentityChanged) -> None:
    await storage.forget_account(conn, event.account_id)


def register(relay: Relay) -> None:
    relay.hooks.on_transaction(AccountDeleted, _forget)
    relay.hooks.on_transaction(IdentityChanged, _forget)
