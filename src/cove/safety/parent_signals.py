"""The parent's signed abuse signals, once the sharing gateway checked their signature: kept, shown, weighed.

A signal says the parent banned a number (by its hash) for a reason. It is one input to the registration
gate's score for that number (cove.safety.registration) and, for an account Cove already has, a
:class:`cove.safety.signals.ParentFlagged` for the detector; it never bans anyone by itself. Each is a
disclosure *received* about a person, so the account's privacy view lists it (``signals_received``) and the
relay logs each batch (counts only, never a number or a hash).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from cove.accounts import storage as account_storage
from cove.context import Relay
from cove.safety import registration_storage as storage
from cove.safety import signals
from cove.safety.registration import parent_flags

log = logging.getLogger("cove.safety")


async def keep(
    conn: AsyncConnection, recipient: str, batch_id: str, entries: list[tuple[str, str, int]], now_ms: int
) -> None:
    """Store a verified batch's ``(number_hash, reason, at_ms)`` entries, in the caller's transaction."""
    for number_hash, reason, at_ms in entries:
        await storage.save_parent_signal(conn, recipient, number_hash, reason, at_ms, batch_id, now_ms)


def received(relay: Relay, recipient: str, batch_id: str, entries: int, flagged: dict[str, str], now_ms: int) -> None:
    """After the batch committed: log it, and tell the detector about the accounts it names ``{id: reason}``."""
    log.info(
        "disclosure received: %s signed batch %s with %d abuse signal(s), %d naming an account here",
        recipient,
        batch_id,
        entries,
        len(flagged),
    )
    for account_id, reason in flagged.items():
        signals.publish(relay, signals.ParentFlagged(account_id, reason, now_ms))


def privacy_section(relay: Relay) -> Callable[[AsyncConnection, str], Awaitable[dict[str, Any]]]:
    async def section(conn: AsyncConnection, account_id: str) -> dict[str, Any]:
        account = await account_storage.account_by_id(conn, account_id)
        found = await parent_flags(relay, conn, account.phone_number) if account else []
        return {
            "signals_received": [
                {"from": s.recipient, "reason": s.reason, "at": s.at_ms, "received_at": s.received_at_ms} for s in found
            ]
        }

    return section
