"""What groups do when another capability acts: a deleted account leaves its groups in its deletion's
transaction; a group left without an admin gets one, and the other members are told."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from cove.context import Relay
from cove.events import AccountDeleted
from cove.groups import service


def register(relay: Relay) -> None:
    async def leave_groups(conn: AsyncConnection, event: AccountDeleted) -> None:
        await service.leave_all(relay, conn, event.account_id)

    relay.hooks.on_transaction(AccountDeleted, leave_groups)
