"""What safety does when another capability acts: a banned number gets no verification code and no account;
every act towards others passes the defences (blocks, message requests); a deleted account's blocks and
acceptances go."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from cove.context import Relay
from cove.events import AccountDeleted, ContactsChanged, NumberClaimed
from cove.safety import (
    contacts,
    defences,
    defences_storage,
    forwarding,
    parent_signals,
    registration,
    registration_storage,
    storage,
)
from cove.safety.pairs import Pairs
from cove.safety.parts import Parts, of
from cove.safety.verdicts import banned_error


async def refuse_banned(conn: AsyncConnection, event: NumberClaimed) -> None:
    reason = await storage.banned_reason(conn, event.phone_number)
    if reason is not None:
        raise banned_error(reason)


async def forget_defences(conn: AsyncConnection, event: AccountDeleted) -> None:
    # Blocks and acceptances go; reports stay, as verdicts do: a review or an appeal, and the weight of a
    # reporter's word, must not vanish because the account reported (or reporting) was deleted.
    await defences_storage.forget_account(conn, event.account_id)


def register(relay: Relay) -> None:
    relay.safety = Parts()
    relay.hooks.on_transaction(NumberClaimed, refuse_banned)
    settings = relay.settings
    of(relay).contacts = Pairs(settings.safety_contacts_cache_pairs, settings.safety_contacts_ttl_seconds)
    relay.hooks.on(ContactsChanged, lambda event: contacts.forget(relay, event))
    relay.hooks.on_transaction(AccountDeleted, forget_defences)
    # The outbound checks, in this order: actions in force, the detector's counters, forward limits, defences.
    relay.outbound_checks.append(forwarding.check)
    relay.outbound_checks.append(defences.check)
    # The registration gate: judge each code request, keep each registration's signals, show what the parent said.
    relay.registration_checks.append(registration.gate)
    relay.registered_hooks.append(registration.registered)
    relay.hooks.on_transaction(AccountDeleted, _forget_registration)
    relay.privacy_sections.append(parent_signals.privacy_section(relay))


async def _forget_registration(conn: AsyncConnection, event: AccountDeleted) -> None:
    await registration_storage.forget_account(conn, event.account_id)
