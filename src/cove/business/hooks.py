"""What the business capability does when another acts: it applies the business rules to every send between
two accounts (``Relay.send_rule``) and stores what they decided with the envelopes; an account's deletion
takes its business data (cove.business.storage.forget_account); a new number gives the account new
per-business ids (cove.business.identity_service.number_changed)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from cove.business import identity_service, sending, storage
from cove.business.keys import BusinessKeys
from cove.context import Relay
from cove.errors import ApiError
from cove.events import AccountDeleted, NumberChanged
from cove.messaging.service import Send


async def business_rules(relay: Relay, send: Send) -> sending.BusinessWrites | None:
    """A business's send passes the business rules (raising their refusal); a message to a business opens its
    service window. Neither costs a plain send a query: the business flags come with the cached devices."""
    sender, recipient_id, now = send.sender, send.recipient_id, send.now
    if sender.business:
        return await sending.check(
            relay.engine, relay.limits, sender.account_id, recipient_id, send.request.business, now
        )
    if send.request.business is not None:
        raise ApiError(403, "not_a_business", "only a business account's messages carry a business header")
    if send.registered[0].business and not send.request.receipt:
        return sending.BusinessWrites(recipient_id, sender.account_id, opens_window_at_ms=now)
    return None


async def _forget(conn: AsyncConnection, event: AccountDeleted) -> None:
    await storage.forget_account(conn, event.account_id)


def register(relay: Relay) -> None:
    relay.send_rule = business_rules
    relay.writer.store_with_sends = sending.store
    relay.hooks.on_transaction(AccountDeleted, _forget)

    async def new_ids(conn: AsyncConnection, event: NumberChanged) -> None:
        # A new number, a new id with each business (Meta's rule), each told in its feed.
        keys = BusinessKeys.load_or_create(relay.settings.data_dir)
        await identity_service.number_changed(conn, keys, event.account_id, event.phone_number)

    relay.hooks.on_transaction(NumberChanged, new_ids)
