"""What consent does when another capability acts: a deleted account's consent state goes with it (in its
deletion's transaction); a published policy is reloaded at once; a connecting device gets its due notice."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from cove.consent import push, storage
from cove.context import Relay
from cove.events import AccountDeleted, PolicyPublished


async def _forget(conn: AsyncConnection, event: AccountDeleted) -> None:
    await storage.forget_account(conn, event.account_id)


def register(relay: Relay) -> None:
    async def reload(_event: PolicyPublished) -> None:
        await relay.policies.reload()

    relay.hooks.on_transaction(AccountDeleted, _forget)
    relay.hooks.on(PolicyPublished, reload)
    relay.connect_frames.append(push.on_connect)
