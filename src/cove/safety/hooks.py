"""What safety does when another capability acts: a banned number gets no verification code and no account
(but may get a code to appeal with); every act towards others passes safety's outbound checks (the actions in
force, then the defences: blocks, message requests); every process hears of actions taken, decisions made and
contacts changed anywhere in the fleet; a deleted account's blocks and acceptances go."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from cove.accounts import codes
from cove.context import Relay
from cove.errors import ApiError
from cove.events import AccountDeleted, AccountJudged, ContactsChanged, NumberClaimed, SafetyActionChanged
from cove.safety import actions, actions_storage, contacts, defences, defences_storage, signals, storage
from cove.safety.pairs import Pairs
from cove.safety.parts import Parts
from cove.safety.standing import Standing
from cove.safety.verdicts import banned_error


async def refuse_banned(conn: AsyncConnection, event: NumberClaimed) -> None:
    reason = await storage.banned_reason(conn, event.phone_number)
    if event.purpose == codes.APPEAL:
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


async def forget_deleted(conn: AsyncConnection, event: AccountDeleted) -> None:
    # Blocks and acceptances go; reports stay, as verdicts do: a review or an appeal, and the weight of a
    # reporter's word, must not vanish because the account reported (or reporting) was deleted.
    await defences_storage.forget_account(conn, event.account_id)
    await actions_storage.forget_appeals(conn, event.account_id)


def register(relay: Relay) -> None:
    settings = relay.settings
    parts = Parts(
        standing=Standing(settings.safety_actions_cached),
        contacts=Pairs(settings.safety_contacts_cache_pairs, settings.safety_contacts_ttl_seconds),
    )
    relay.safety = parts
    relay.hooks.on_transaction(NumberClaimed, refuse_banned)
    # Safety's outbound checks, in the order of the shared brief: actions first, the defences last.
    relay.outbound_checks.append(actions.check)
    relay.outbound_checks.append(defences.check)

    def forget(event: SafetyActionChanged) -> None:
        parts.standing.forget(event.account_id)

    def judged(event: AccountJudged) -> None:
        signals.publish(relay, signals.Judged(event.account_id, event.abusive, event.at_ms))

    relay.hooks.on(SafetyActionChanged, forget)
    relay.hooks.on(AccountJudged, judged)
    relay.hooks.on(ContactsChanged, lambda event: contacts.forget(relay, event))
    relay.hooks.on_transaction(AccountDeleted, forget_deleted)
