"""What the sharing gateway does when another capability acts: a deleted account becomes erasure events for
its recipients, in its deletion's transaction (cove.sharing.erasure), whose ids the deletion hands back; a user's
privacy view and data export list what was disclosed about them (cove.sharing.disclosures) and what was revoked,
with the recipient's acknowledgement (cove.sharing.revocations)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from cove.accounts.export import capped
from cove.context import Relay
from cove.events import AccountDeleted
from cove.safety.parts import of
from cove.sharing import revocations
from cove.sharing.disclosures import disclosures_of
from cove.sharing.erasure import receipts_of, record_erasure
from cove.sharing.partner_keys import number_hashes


async def _erase(conn: AsyncConnection, event: AccountDeleted) -> None:
    await record_erasure(conn, event.account_id, event.at_ms)


async def _shared(conn: AsyncConnection, account_id: str) -> dict[str, Any]:
    return {
        "disclosures": await disclosures_of(conn, account_id),
        "revocations": await revocations.of_account(conn, account_id),
    }


async def _export(conn: AsyncConnection, account_id: str) -> dict[str, Any]:
    return {
        "sharing": {
            "disclosures": capped(await disclosures_of(conn, account_id)),
            "revocations": capped(await revocations.of_account(conn, account_id, revocations.VIEW_LIMIT + 1)),
        }
    }


def register(relay: Relay) -> None:
    relay.hooks.on_transaction(AccountDeleted, _erase)
    relay.privacy_sections.append(_shared)
    relay.export_sections.append(_export)
    relay.deletion_receipts.append(receipts_of)
    # The parent's signed signals name numbers by their hash under its key: safety's gate looks them up by it.
    of(relay).parent_number_hashes = number_hashes(relay)
