"""What the sharing gateway does when another capability acts: a deleted account becomes erasure events for
its recipients, in its deletion's transaction (cove.sharing.erasure)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from cove.context import Relay
from cove.events import AccountDeleted
from cove.sharing.erasure import record_erasure


async def _erase(conn: AsyncConnection, event: AccountDeleted) -> None:
    await record_erasure(conn, event.account_id, event.at_ms)


def register(relay: Relay) -> None:
    relay.hooks.on_transaction(AccountDeleted, _erase)
