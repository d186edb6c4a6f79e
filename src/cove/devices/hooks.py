"""What linked devices do when another capability acts: a new identity (the number registered on a new phone) or a
deleted account takes the old primary's device list and link tokens with it. Its part of an account's data export:
the signed device list (its version and time, not the list's bytes: the devices section has each device) and how
many link codes are open."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from cove.context import Relay
from cove.devices import storage
from cove.events import AccountDeleted, IdentityChanged


async def _forget(conn: AsyncConnection, event: AccountDeleted | IdentityChanged) -> None:
    await storage.forget_account(conn, event.account_id)


async def _export(conn: AsyncConnection, account_id: str) -> dict[str, Any]:
    lists, tokens = storage.device_lists.c, storage.link_tokens.c
    signed = (
        await conn.execute(select(lists.version, lists.updated_at_ms).where(lists.account_id == account_id))
    ).first()
    open_links = (await conn.execute(select(func.count()).where(tokens.account_id == account_id))).scalar_one()
    return {
        "device_list": {
            "version": signed.version if signed else None,
            "updated_at": signed.updated_at_ms if signed else None,
            "open_link_codes": open_links,
        }
    }


def register(relay: Relay) -> None:
    relay.export_sections.append(_export)
    relay.hooks.on_transaction(AccountDeleted, _forget)
    relay.hooks.on_transaction(IdentityChanged, _forget)
