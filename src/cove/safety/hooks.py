"""What safety does when another capability acts: a banned number gets no verification code and no account
(but may get a code to appeal with); a code request passes the registration gate; every act towards others
passes safety's outbound checks (the actions in force, the detector's counters, the forward limits, then the
defences: blocks, message requests); every process hears of actions taken, decisions made and contacts changed
anywhere in the fleet; a deleted account's blocks, acceptances and registration signals go. Its part of an
account's data export is cove.safety.export."""

from __future__ import annotations

import math

from sqlalchemy.ext.asyncio import AsyncConnection

from cove.accounts import codes
from cove.context import Relay
from cove.errors import ApiError
from cove.events import AccountDeleted, AccountJudged, ContactsChanged, NumberClaimed, SafetyActionChanged
from cove.safety import (
    actions,
    actions_storage,
    contacts,
    defences,
    defences_storage,
    detector,
    export,
    forwarding,
    parent_signals,
    registration,
    registration_storage,
    signals,
    storage,
)
from cove.safety.ladder import Source, Step
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


async def forget_account(conn: AsyncConnection, event: AccountDeleted) -> None:
    # Blocks, acceptances, registration signals and appeals go; reports and actions stay, as verdicts do: a review,
    # and the weight of a reporter's word, must not vanish because the account reported was deleted.
    await defences_storage.forget_account(conn, event.account_id)
    await registration_storage.forget_account(conn, event.account_id)
    await actions_storage.forget_appeals(conn, event.account_id)


def register(relay: Relay) -> None:
    settings = relay.settings
    parts = Parts(
        standing=Standing(settings.safety_actions_cached),
        contacts=Pairs(settings.safety_contacts_cache_pairs, settings.safety_contacts_ttl_seconds),
    )
    relay.safety = parts
    relay.hooks.on_transaction(NumberClaimed, refuse_banned)
    relay.hooks.on_transaction(AccountDeleted, forget_account)
    # The outbound checks, in this order: actions in force, the detector's counters, forward limits, defences.
    relay.outbound_checks.append(actions.check)
    if settings.safety_detector:

        async def act(decision: detector.Decision) -> None:
            await actions.take(
                relay,
                decision.account_id,
                Step.named(decision.step),
                decision.reason,
                Source(decision.source),
                None if math.isnan(decision.score) else decision.score,
            )

        parts.detector = detector.from_settings(settings, act=act)
        parts.observers.append(parts.detector.hear)
        relay.outbound_checks.append(parts.detector.check)
    relay.outbound_checks.append(forwarding.check)
    relay.outbound_checks.append(defences.check)
    # The registration gate: judge each code request, keep each registration's signals, show what the parent said.
    relay.registration_checks.append(registration.gate)
    relay.registered_hooks.append(registration.registered)
    relay.privacy_sections.append(parent_signals.privacy_section(relay))
    relay.export_sections.append(export.section)

    def forget(event: SafetyActionChanged) -> None:
        parts.standing.forget(event.account_id)

    def judged(event: AccountJudged) -> None:
        signals.publish(relay, signals.Judged(event.account_id, event.abusive, event.at_ms))

    relay.hooks.on(SafetyActionChanged, forget)
    relay.hooks.on(AccountJudged, judged)
    relay.hooks.on(ContactsChanged, lambda event: contacts.forget(relay, event))
