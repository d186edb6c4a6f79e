"""Deleting an account (``DELETE /v1/accounts/me``): what the relay holds about it goes in one transaction.

Accounts deletes its own rows: the account row, its devices (with their identity keys and tokens), its usage
counters, its registration lock and a pending verification code for its number. Every other capability
deletes its own through an ``on_transaction(AccountDeleted)`` handler (cove.events), run in the same
transaction before it commits, so a handler that raises aborts the deletion: the key directory its one-time
and fallback keys, messaging the envelopes queued for it and the idempotency records of its sends, consent
its state (terms accepted, choices per purpose, notices served), the sharing gateway records an erasure event
for its recipients, and the business capability deletes a business's profile, templates and what users told
it, and a user's per-business ids, opt-ins and preferences; the user's blocks and reports stay, without the
account id, as anonymous feedback in the business's quality record (cove.business.storage.forget_account).
The deletion answers with the receipts capabilities leave the person (``Relay.deletion_receipts``): each
erasure event's id, which ``GET /v1/erasures/{event_id}`` answers about until the recipient acknowledged it.
Once committed, ``AccountDeleted`` is emitted: every relay process closes the account's sockets and forgets
its cached devices.

Kept, on purpose:

- The consent ledger. It is the append-only, hash-chained proof of what the person agreed to and when,
  which the operator must be able to produce (GDPR Art. 7(1) and 5(2)) for as long as a claim may be
  brought, and deleting entries would break the chain that proves nobody else's were edited. It holds the
  account id and the acts, never a phone number or content.
- Safety verdicts and ``banned_numbers``: a ban outlives the account (see cove.safety.storage).
- Envelopes this account sent that still wait for their recipients: they are the recipients' mail,
  ciphertext they are owed, and are delivered as the sender meant them to be. Each leaves the relay when
  collected or at the retention limit (``COVE_MESSAGE_RETENTION_DAYS``); no delivery receipt is queued
  back for them. Likewise other users' idempotency records of their sends to this account (the sender,
  their message id, the recipient's account id) expire with the same retention: they are found only by
  sender, and an index by recipient would cost every send on the hot path.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncConnection

from cove.accounts import reglock_storage, storage
from cove.accounts.storage import accounts, devices, verification_codes
from cove.accounts.usage_storage import delete_account_usage
from cove.clock import now_ms
from cove.context import Relay
from cove.errors import ApiError
from cove.events import AccountDeleted

CLOSE_REASON = "logged out: the account was deleted"


async def delete_account(relay: Relay, account_id: str) -> dict[str, Any]:
    """Delete it; returns the receipts the capabilities left for the person (``Relay.deletion_receipts``): the
    sharing gateway's erasure events, read in the same transaction, so a receipt names only what committed."""
    event = AccountDeleted(account_id, now_ms())
    receipts: dict[str, Any] = {}
    async with relay.engine.begin() as conn:
        account = await storage.account_by_id(conn, account_id)
        if account is None:
            raise ApiError(404, "unknown_account", "this account was already deleted")
        await delete_rows(conn, account_id, account.phone_number)
        await relay.hooks.in_transaction(conn, event)
        for receipt in relay.deletion_receipts:
            receipts.update(await receipt(conn, account_id))
    await relay.hooks.emit(event)
    return receipts


async def delete_rows(conn: AsyncConnection, account_id: str, phone_number: str) -> None:
    """Accounts' own rows; the other capabilities' go through their AccountDeleted handlers."""
    await delete_account_usage(conn, account_id)
    await reglock_storage.remove(conn, account_id)
    await conn.execute(delete(verification_codes).where(verification_codes.c.phone_number == phone_number))
    await conn.execute(delete(devices).where(devices.c.account_id == account_id))
    await conn.execute(delete(accounts).where(accounts.c.id == account_id))
