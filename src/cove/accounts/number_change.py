"""Moving an account to a new number (``PUT /v1/accounts/me/number``), the minimal honest flow: the owner asks
for a code to the new number (``POST /v1/verification/code`` with ``purpose: change_number``), then submits it
from a device of the account. The account keeps its id, devices, keys and messages; only the number moves.

In one transaction: the code is used up, the new number must be free (and not banned: the same refusal as a
registration), the account takes it, and the capabilities that derive something from the number redo it
(``NumberChanged``: a business's per-business user ids, which Meta regenerates with a new number). Then every
relay process forgets what it cached about the account (``AccountChanged``).
"""

from __future__ import annotations

from sqlalchemy import select, update

from cove.accounts import codes
from cove.accounts.service import _refuse_banned, use_code
from cove.accounts.storage import accounts
from cove.context import Relay
from cove.errors import ApiError
from cove.events import AccountChanged, NumberChanged


async def change_number(relay: Relay, account_id: str, raw_phone: str, code: str) -> str:
    """Move the account to the verified number; returns it in E.164 form."""
    phone = await use_code(relay, raw_phone, code, codes.CHANGE_NUMBER)
    async with relay.engine.begin() as conn:
        previous = (await conn.execute(select(accounts.c.phone_number).where(accounts.c.id == account_id))).scalar()
        if previous is None:
            raise ApiError(404, "unknown_account", "this account no longer exists")
        if previous == phone:
            raise ApiError(409, "same_number", "the account already has this number")
        taken = (await conn.execute(select(accounts.c.id).where(accounts.c.phone_number == phone))).scalar()
        if taken is not None:
            raise ApiError(409, "number_taken", "another account has this number; it must be deleted first")
        await _refuse_banned(relay, conn, phone, codes.CHANGE_NUMBER)
        await conn.execute(update(accounts).where(accounts.c.id == account_id).values(phone_number=phone))
        await relay.hooks.in_transaction(conn, NumberChanged(account_id, previous, phone))
    await relay.hooks.emit(AccountChanged(account_id))
    return phone
