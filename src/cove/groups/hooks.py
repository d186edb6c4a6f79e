"""What groups do when another capability acts: a deleted account leaves its groups in its deletion's
transaction, and a group left without an admin gets one."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from cove.context import Relay
from cove.events import AccountDeleted
from cove.groups import rules, storage
from cove.groups.rules import ADMIN


async def _leave_groups(conn: AsyncConnection, event: AccountDeleted) -> None:
    for group_id in await storage.memberships(conn, event.account_id):
        await storage.next_revision(conn, group_id)
        await storage.remove(conn, group_id, [event.account_id])
        remaining = await storage.members(conn, group_id)
        if not remaining:
            await storage.delete_group(conn, group_id)
        elif (heir := rules.successor(remaining)) is not None:
            await storage.set_role(conn, group_id, heir, ADMIN)


def register(relay: Relay) -> None:
    relay.hooks.on_transaction(AccountDeleted, _leave_groups)
