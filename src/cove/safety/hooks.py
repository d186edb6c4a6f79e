"""What safety does when another capability acts: a banned number gets no verification code and no account
(but may get a code to appeal with), every act towards others passes safety's outbound checks, and every
process hears of actions taken and decisions made anywhere in the fleet."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from cove.context import Relay
from cove.errors import ApiError
from cove.events import AccountJudged, NumberClaimed, SafetyActionChanged
from cove.safety import actions, signals, storage
from cove.safety.parts import Parts
from cove.safety.standing import Standing
from cove.safety.verdicts import banned_error

APPEAL = "appeal"


async def refuse_banned(conn: AsyncConnection, event: NumberClaimed) -> None:
    reason = await storage.banned_reason(conn, event.phone_number)
    if event.purpose == APPEAL:
        if reason is None:
            # An appeal code costs an SMS like any other: only a banned number, which cannot log in, needs one.
            raise ApiError(
                409,
                "not_banned",
                "this number is not banned: appeal from the app (`cove appeal`) with the account's own device",
            )
        return
    if reason is not None:
        raise banned_error(reason)


def register(relay: Relay) -> None:
    parts = Parts(standing=Standing(relay.settings.safety_actions_cached))
    relay.safety = parts
    relay.hooks.on_transaction(NumberClaimed, refuse_banned)
    # Safety's outbound checks, in the order of the shared brief: actions first.
    relay.outbound_checks.append(actions.check)

    def forget(event: SafetyActionChanged) -> None:
        parts.standing.forget(event.account_id)

    def judged(event: AccountJudged) -> None:
        signals.publish(relay, signals.Judged(event.account_id, event.abusive, event.at_ms))

    relay.hooks.on(SafetyActionChanged, forget)
    relay.hooks.on(AccountJudged, judged)
