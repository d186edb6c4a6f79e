"""What the business capability does when another acts: it applies the business rules to every send between
two accounts (``Relay.send_rule``) and stores what they decided with the envelopes; an account's deletion
takes its business data (cove.business.storage.forget_account); a new number gives the account new
per-business ids (cove.business.identity_service.number_changed).

Both kinds of block hold both ways. A user's block of a business, from its preferences or the safety block
(``cove block``), fails the business's sends with 131026; a business's block of a user (its blocklist,
cove.business.blocks) fails its own sends to them with 131026 and withholds the user's messages to it.

Its part of an account's data export is cove.business.export."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from cove.activity import Withheld
from cove.business import blocks_storage, export, identity_service, sending, storage
from cove.business.errors import CloudApiError
from cove.business.keys import BusinessKeys
from cove.context import Relay
from cove.errors import ApiError
from cove.events import AccountDeleted, NumberChanged
from cove.messaging.service import Send
from cove.safety import contacts
from cove.safety.pairs import BLOCKS


async def business_rules(relay: Relay, send: Send) -> sending.BusinessWrites | None:
    """A business's send passes the business rules (raising their refusal); a message to a business opens its
    service window. Neither costs a plain send a query: the business flags come with the cached devices."""
    sender, recipient_id, now = send.sender, send.recipient_id, send.now
    if sender.business:
        if not send.request.receipt:
            # The user blocked the business with the safety block (cove block): the same answer as a block from
            # the business's preferences, which the decision gives. (Its receipts were withheld before this.)
            _, there = await contacts.between(relay, sender.account_id, recipient_id)
            if there & BLOCKS:
                raise sending.refusal(CloudApiError(131026))
        return await sending.check(
            relay.engine, relay.limits, sender.account_id, recipient_id, send.request.business, now
        )
    if send.request.business is not None:
        raise ApiError(403, "not_a_business", "only a business account's messages carry a business header")
    if send.registered[0].business and not send.request.receipt:
        async with relay.engine.connect() as conn:
            if await blocks_storage.blocked_by_business(conn, recipient_id, sender.account_id):
                # The business blocked this user: nothing reaches it, and the user is answered as if it did.
                raise Withheld
        return sending.BusinessWrites(recipient_id, sender.account_id, opens_window_at_ms=now)
    return None


async def _forget(conn: AsyncConnection, event: AccountDeleted) -> None:
    await storage.forget_account(conn, event.account_id)
    await blocks_storage.forget_account(conn, event.account_id)


def register(relay: Relay) -> None:
    relay.send_rule = business_rules
    relay.writer.store_with_sends = sending.store
    relay.hooks.on_transaction(AccountDeleted, _forget)
    relay.export_sections.append(export.section)

    async def new_ids(conn: AsyncConnection, event: NumberChanged) -> None:
        # A new number, a new id with each business (Meta's rule), each told in its feed.
        keys = BusinessKeys.load_or_create(relay.settings.data_dir)
        await identity_service.number_changed(conn, keys, event.account_id, event.phone_number)

    relay.hooks.on_transaction(NumberChanged, new_ids)
