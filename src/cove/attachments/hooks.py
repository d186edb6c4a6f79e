"""The attachments' part of an account's data export: its uploads the relay still holds (ciphertext it cannot
read, kept until fetched by every recipient or expired), by id, size and time."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from cove.accounts.export import listed
from cove.attachments.storage import attachments
from cove.context import Relay


async def _export(conn: AsyncConnection, account_id: str) -> dict[str, Any]:
    a = attachments.c
    return {
        "attachments": {
            "uploaded": await listed(
                conn,
                select(
                    a.id,
                    a.uploader_device_id.label("device_id"),
                    a.size,
                    a.received,
                    a.recipients,
                    a.fetches,
                    a.created_at_ms.label("created_at"),
                    a.completed_at_ms.label("completed_at"),
                    a.expires_at_ms.label("expires_at"),
                )
                .where(a.uploader_account_id == account_id)
                .order_by(a.created_at_ms),
            )
        }
    }


def register(relay: Relay) -> None:
    relay.export_sections.append(_export)
