"""What safety does when another capability acts: a banned number gets no verification code and no account."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from cove.context import Relay
from cove.events import NumberClaimed
from cove.safety import forwarding, storage
from cove.safety.parts import Parts
from cove.safety.verdicts import banned_error


async def refuse_banned(conn: AsyncConnection, event: NumberClaimed) -> None:
    reason = await storage.banned_reason(conn, event.phone_number)
    if reason is not None:
        raise banned_error(reason)


def register(relay: Relay) -> None:
    relay.safety = Parts()
    relay.hooks.on_transaction(NumberClaimed, refuse_banned)
    # The outbound checks, in this order: actions in force, the detector's counters, forward limits, defences.
    relay.outbound_checks.append(forwarding.check)
