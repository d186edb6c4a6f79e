"""The overview's headline numbers: one or two per section, each a single count in the database."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from cove.business.storage import business_templates
from cove.consent import ledger
from cove.consent.ledger_storage import ledger_entries
from cove.consent.storage import consent_accounts, consent_policies, consent_served
from cove.console.figures.timeline import DAY_MS
from cove.protocol.templates import ReviewStatus
from cove.safety.actions_storage import safety_actions, safety_appeals
from cove.safety.ladder import Review
from cove.sharing.storage import sharing_batches, sharing_erasures


@dataclass(frozen=True)
class Headlines:
    policy_version: str | None  # the newest published policy
    served: int  # its notice served, accounts
    accepted: int  # its terms accepted, accounts
    acts_today: int  # choices, withdrawals and objections in the last 24 hours
    batches: int  # sharing batches ever exported
    erasures_outstanding: int  # erasures not yet acknowledged by their recipient
    templates_pending: int  # business templates awaiting review
    safety_pending: int  # automatic restricts and bans awaiting review
    appeals_open: int


async def _count(conn: AsyncConnection, table, *where) -> int:  # noqa: ANN001
    return int(await conn.scalar(select(func.count()).select_from(table).where(*where)) or 0)


async def headlines(conn: AsyncConnection, now_ms: int) -> Headlines:
    version = await conn.scalar(
        select(consent_policies.c.version).order_by(consent_policies.c.effective_ms.desc()).limit(1)
    )
    e = ledger_entries.c
    return Headlines(
        policy_version=version,
        served=await _count(conn, consent_served, consent_served.c.policy_version == version),
        accepted=await _count(conn, consent_accounts, consent_accounts.c.policy_version == version),
        acts_today=await _count(
            conn,
            ledger_entries,
            e.kind.in_((ledger.CHOICE, ledger.WITHDRAWAL, ledger.OBJECTION)),
            e.at_ms > now_ms - DAY_MS,
        ),
        batches=await _count(conn, sharing_batches),
        erasures_outstanding=await _count(conn, sharing_erasures, sharing_erasures.c.acked_at_ms.is_(None)),
        templates_pending=await _count(conn, business_templates, business_templates.c.status == ReviewStatus.PENDING),
        safety_pending=await _count(conn, safety_actions, safety_actions.c.review == Review.PENDING),
        appeals_open=await _count(conn, safety_appeals, safety_appeals.c.state == "open"),
    )
