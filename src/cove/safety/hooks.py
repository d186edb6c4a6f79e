"""What safety does when another capability acts: a banned number gets no verification code and no account."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from cove.context import Relay
from cove.events import AccountDeleted, NumberClaimed
from cove.safety import parent_signals, registration, registration_storage, storage
from cove.safety.parts import Parts
from cove.safety.verdicts import banned_error


async def refuse_banned(conn: AsyncConnection, event: NumberClaimed) -> None:
    reason = await storage.banned_reason(conn, event.phone_number)
    if reason is not None:
        raise banned_error(reason)


def register(relay: Relay) -> None:
    relay.safety = Parts()
    relay.hooks.on_transaction(NumberClaimed, refuse_banned)
    # The registration gate: judge each code request, keep each registration's signals, show what the parent said.
    relay.registration_checks.append(registration.gate)
    relay.registered_hooks.append(registration.registered)
    relay.hooks.on_transaction(AccountDeleted, _forget_registration)
    relay.privacy_sections.append(parent_signals.privacy_section(relay))


async def _forget_registration(conn: AsyncConnection, event: AccountDeleted) -> None:
    await registration_storage.forget_account(conn, event.account_id)
