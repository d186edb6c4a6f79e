"""What consent does when another capability acts: a deleted account's consent state goes with it (in its
deletion's transaction); a published policy is reloaded at once; a connecting device gets its due notice. Its part
of an account's data export: the consent state and the ledger's receipts, as ``cove ledger export`` gives them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from cove.accounts.export import LIST_LIMIT, listed
from cove.clock import now_ms
from cove.consent import ledger_storage, push, storage
from cove.consent.ledger_cli import receipts_document
from cove.context import Relay
from cove.events import AccountDeleted, PolicyPublished


async def _forget(conn: AsyncConnection, event: AccountDeleted) -> None:
    await storage.forget_account(conn, event.account_id)


async def _export(conn: AsyncConnection, account_id: str) -> dict[str, Any]:
    a, p, s = storage.consent_accounts.c, storage.consent_purposes.c, storage.consent_served.c
    terms = (
        await conn.execute(
            select(a.policy_version, a.accepted_at_ms.label("accepted_at"), a.age_bracket, a.text_hash).where(
                a.account_id == account_id
            )
        )
    ).first()
    # One entry more than is sent tells whether the receipts were cut; the chain of a prefix still verifies.
    entries = await ledger_storage.load_account(conn, account_id, LIST_LIMIT + 1)
    receipts = receipts_document(account_id, entries[:LIST_LIMIT], now_ms())
    receipts["truncated"] = len(entries) > LIST_LIMIT
    return {
        "consent": {
            "terms": None if terms is None else dict(terms._mapping),
            "choices": await listed(
                conn,
                select(
                    p.policy_version,
                    p.purpose_id,
                    p.choice,
                    p.chosen_at_ms.label("chosen_at"),
                    p.method,
                    p.objected_at_ms.label("objected_at"),
                )
                .where(p.account_id == account_id)
                .order_by(p.policy_version, p.purpose_id),
            ),
            "notices_served": await listed(
                conn,
                select(s.policy_version, s.text_hash, s.served_at_ms.label("served_at"))
                .where(s.account_id == account_id)
                .order_by(s.served_at_ms),
            ),
        },
        "consent_receipts": receipts,
    }


def register(relay: Relay) -> None:
    relay.export_sections.append(_export)

    async def reload(_event: PolicyPublished) -> None:
        await relay.policies.reload()

    relay.hooks.on_transaction(AccountDeleted, _forget)
    relay.hooks.on(PolicyPublished, reload)
    relay.connect_frames.append(push.on_connect)
