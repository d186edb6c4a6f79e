"""What groups do when another capability acts: a deleted account leaves its groups in its deletion's
transaction; a group left without an admin gets one, and the other members are told. Its part of an account's data
export: its memberships and roles, and the invite links it created (never their codes, which are hashed)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from cove.accounts.export import listed
from cove.context import Relay
from cove.events import AccountDeleted
from cove.groups import service, storage


async def _export(conn: AsyncConnection, account_id: str) -> dict[str, Any]:
    g, m, i = storage.groups.c, storage.group_members.c, storage.group_invites.c
    return {
        "groups": {
            "memberships": await listed(
                conn,
                select(m.group_id, m.role, m.joined_revision, g.revision, g.created_at_ms.label("group_created_at"))
                .select_from(storage.group_members.join(storage.groups, g.id == m.group_id))
                .where(m.account_id == account_id)
                .order_by(m.group_id),
            ),
            "invites_created": await listed(
                conn,
                select(i.group_id, i.created_at_ms.label("created_at"))
                .where(i.created_by == account_id)
                .order_by(i.created_at_ms),
            ),
        }
    }


def register(relay: Relay) -> None:
    async def leave_groups(conn: AsyncConnection, event: AccountDeleted) -> None:
        await service.leave_all(relay, conn, event.account_id)

    relay.hooks.on_transaction(AccountDeleted, leave_groups)
    relay.export_sections.append(_export)
