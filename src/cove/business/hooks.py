"""What the business capability does when another acts: it applies the business rules to every send between
two accounts (``Relay.send_rule``) and stores what they decided with the envelopes; an account's deletion
takes its business data (cove.business.storage.forget_account)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from cove.business import sending, storage
from cove.context import Relay
from cove.errors import ApiError
from cove.events import AccountDeleted
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
