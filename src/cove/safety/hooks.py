"""What safety does when another capability acts: a banned number gets no verification code and no account;
every act towards others is counted by the detector."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from cove.context import Relay
from cove.events import NumberClaimed
from cove.safety import detector, storage
from cove.safety.parts import Parts
from cove.safety.verdicts import banned_error


async def refuse_banned(conn: AsyncConnection, event: NumberClaimed) -> None:
    reason = await storage.banned_reason(conn, event.phone_number)
    if reason is not None:
        raise banned_error(reason)


def register(relay: Relay) -> None:
    parts = relay.safety = Parts()
    relay.hooks.on_transaction(NumberClaimed, refuse_banned)
    # The outbound checks run in this order: 1 actions in force, 2 the detector's counters, 3 forward limits,
    # 4 blocks and message requests.
    if relay.settings.safety_detector:
        # No automatic action until the action ladder lands: then ``act`` calls cove.safety.actions.take
        # (tests/test_safety_detector_e2e.py runs once it does). Until then the detector counts and decides only.
        parts.detector = detector.from_settings(relay.settings, act=None)
        parts.observers.append(parts.detector.hear)
        relay.outbound_checks.append(parts.detector.check)
