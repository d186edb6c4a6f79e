"""What messaging does when another capability acts: a deleted account's queues go with it, in its deletion's
transaction, and an unlinked device's queue in its unlinking's; then, in every relay process, the sockets of
deleted, banned or logged-out devices close (4401). Its part of an account's data export: what is queued for it,
by id, size and time, never a byte of the ciphertext."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from cove.accounts.deletion import CLOSE_REASON
from cove.accounts.export import listed
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


async def _export(conn: AsyncConnection, account_id: str) -> dict[str, Any]:
    e, g = storage.envelopes.c, storage.group_messages.c
    # A group message's body is stored once in group_messages; its envelopes point at it.
    size = func.coalesce(
        select(func.length(g.body)).where(g.id == e.group_message_id).scalar_subquery(), func.length(e.body)
    )
    mine = e.account_id == account_id
    sent = storage.sent_messages.c
    return {
        "messaging": {
            "queued_count": (await conn.execute(select(func.count()).where(mine))).scalar_one(),
            "queued": await listed(
                conn,
                select(
                    e.id,
                    e.device_id,
                    e.kind,
                    e.sender_account_id,
                    e.client_message_id,
                    size.label("size"),
                    e.server_ts_ms.label("stored_at"),
                    e.expires_at_ms.label("expires_at"),
                    e.group_message_id.is_not(None).label("group"),
                )
                .where(mine)
                .order_by(e.id),
            ),
            # Its own sends' idempotency records: whom each message went to, kept until the retention ends.
            "sends_remembered": (
                await conn.execute(select(func.count()).where(sent.sender_account_id == account_id))
            ).scalar_one(),
        }
    }


def register(relay: Relay) -> None:
    relay.export_sections.append(_export)
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
