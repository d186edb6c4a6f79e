"""What safety does when another capability acts: a banned number gets no verification code and no account;
every act towards others passes the defences (blocks, message requests); a deleted account's blocks and
acceptances go."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from cove.context import Relay
from cove.events import AccountDeleted, ContactsChanged, NumberClaimed
from cove.safety import contacts, defences, defences_storage, storage
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
    relay.outbound_checks.append(defences.check)
    relay.hooks.on(ContactsChanged, lambda event: contacts.forget(relay, event))
    relay.hooks.on_transaction(AccountDeleted, forget_defences)
