"""What the sharing gateway does when another capability acts: a deleted account becomes erasure events for
its recipients, in its deletion's transaction (cove.sharing.erasure); a user's privacy view lists what was
disclosed about them (cove.sharing.disclosures)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from cove.context import Relay
from cove.events import AccountDeleted
from cove.safety.parts import of
from cove.sharing.disclosures import disclosures_of
from cove.sharing.erasure import record_erasure
from cove.sharing.partner_keys import number_hashes


async def _erase(conn: AsyncConnection, event: AccountDeleted) -> None:
    await record_erasure(conn, event.account_id, event.at_ms)


async def _disclosures(conn: AsyncConnection, account_id: str) -> dict[str, Any]:
    return {"disclosures": await disclosures_of(conn, account_id)}


def register(relay: Relay) -> None:
    relay.hooks.on_transaction(AccountDeleted, _erase)
    relay.privacy_sections.append(_disclosures)
    # The parent's signed signals name numbers by their hash under its key: safety's gate looks them up by it.
    of(relay).parent_number_hashes = number_hashes(relay)
