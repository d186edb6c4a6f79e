"""Consent use cases: publish, serve the notice, accept terms, choose per purpose, object, withdraw, show.

Every act is written to the current-state tables and appended to the ledger in one transaction.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cove.accounts.storage import accounts
from cove.clock import now_ms
from cove.consent import ledger_storage, notice, storage
from cove.consent.decision import ALLOWING, AgeBracket, PurposeState, why, window_closes_ms
from cove.consent.policy import Policy
from cove.consent.storage import consent_accounts, consent_policies, consent_purposes, consent_served
from cove.errors import ApiError
from cove.events import PolicyPublished
from cove.fleet import storage as fleet_storage
from cove.fleet.broadcast import stored

_LEDGER_RETRIES = 5


class PolicyBook:
    """The published policies, cached; reloaded on ``PolicyPublished`` (cove.consent.hooks), which reaches every
    relay process within ``COVE_FLEET_POLL_SECONDS`` of a `cove policy publish`, and every ``reload_seconds``
    in case an event went astray."""

    def __init__(self, engine: AsyncEngine, reload_seconds: float = 5.0) -> None:
        self._engine = engine
        self._reload_seconds = reload_seconds
        self._policies: list[Policy] = []
        self._loaded_at = 0.0

    async def all(self) -> list[Policy]:
        if time.monotonic() - self._loaded_at > self._reload_seconds:
            await self.reload()
        return self._policies

    async def reload(self) -> list[Policy]:
        async with self._engine.connect() as conn:
            self._policies = await storage.load_policies(conn)
        self._loaded_at = time.monotonic()
        return self._policies

    async def version(self, version: str) -> Policy:
        for policy in await self.all():
            if policy.version == version:
                return policy
        raise ApiError(404, "unknown_policy", f"no published policy has version {version!r}")


async def publish(engine: AsyncEngine, policy: Policy) -> None:
    """Store a version; its waves then open by the clock. Writes one row, whatever the number of accounts, and a
    fleet event on which every relay process reloads its policies (within ``COVE_FLEET_POLL_SECONDS``)."""
    now = now_ms()
    async with engine.begin() as conn:
        exists = await conn.execute(
            select(consent_policies.c.version).where(consent_policies.c.version == policy.version)
        )
        if exists.first() is not None:
            raise ApiError(
                409, "policy_exists", f"version {policy.version!r} is already published; versions are immutable"
            )
        await conn.execute(
            insert(consent_policies).values(
                version=policy.version,
                body=policy.model_dump_json(),
                text_hash=policy.text_hash(),
                effective_ms=int(policy.effective.timestamp() * 1000),
                published_at_ms=now,
            )
        )
        await fleet_storage.append(conn, stored(PolicyPublished(policy.version), now))


async def _placement(conn: AsyncConnection, account_id: str) -> tuple[int, int]:
    row = (
        await conn.execute(
            select(accounts.c.rollout_bucket, accounts.c.calling_code).where(accounts.c.id == account_id)
        )
    ).one()
    return row.rollout_bucket, row.calling_code


async def due_notice(engine: AsyncEngine, book: PolicyBook, account_id: str) -> Policy | None:
    policies = await book.all()
    if not policies:
        return None
    async with engine.connect() as conn:
        consent = await storage.load_consent(conn, account_id)
        bucket, code = await _placement(conn, account_id)
    return notice.due(policies, consent, bucket, code, datetime.now(UTC))


async def _write(engine: AsyncEngine, work: Callable[[AsyncConnection], Awaitable[None]]) -> None:
    """Run a consent write and its ledger entry in one transaction.

    Two acts of one account at the same moment race for the next ledger position; the loser's whole
    transaction rolls back and is run again on the new head.
    """
    for attempt in range(_LEDGER_RETRIES):
        try:
            async with engine.begin() as conn:
                await work(conn)
            return
        except IntegrityError:
            if attempt == _LEDGER_RETRIES - 1:
                raise ApiError(409, "busy", "another change to your privacy settings was being saved; retry") from None


def _context(**context: str | None) -> dict[str, Any]:
    """Where and how the user acted (surface, locale, app version), for the ledger; empty values dropped."""
    return {k: v for k, v in context.items() if v}


async def record_served(
    engine: AsyncEngine, book: PolicyBook, account_id: str, version: str, text_hash: str, **context: str | None
) -> None:
    policy = await book.version(version)
    _same_text(policy, text_hash)
    now = now_ms()

    async def work(conn: AsyncConnection) -> None:
        where = (consent_served.c.account_id == account_id, consent_served.c.policy_version == version)
        updated = await conn.execute(update(consent_served).where(*where).values(text_hash=text_hash, served_at_ms=now))
        if updated.rowcount == 0:
            await conn.execute(
                insert(consent_served).values(
                    account_id=account_id, policy_version=version, text_hash=text_hash, served_at_ms=now
                )
            )
        payload = {"policy_version": version, "text_hash": text_hash, **_context(**context)}
        await ledger_storage.append(conn, account_id, "notice_served", payload, now)

    await _write(engine, work)


def _same_text(policy: Policy, text_hash: str) -> None:
    if text_hash != policy.text_hash():
        raise ApiError(
            409, "notice_changed", "the notice you showed is not the published text of this version; fetch it again"
        )


async def accept_terms(
    engine: AsyncEngine,
    book: PolicyBook,
    account_id: str,
    version: str,
    text_hash: str,
    age_bracket: AgeBracket,
    **context: str | None,
) -> None:
    """Accept the terms of a version. This records no purpose as agreed: choices are separate acts (R1)."""
    policy = await book.version(version)
    _same_text(policy, text_hash)
    due = await due_notice(engine, book, account_id)
    if due is None or due.version != version:
        raise ApiError(409, "not_offered", f"version {version!r} is not the notice due for this account")
    now = now_ms()

    async def work(conn: AsyncConnection) -> None:
        values = {
            "policy_version": version,
            "accepted_at_ms": now,
            "age_bracket": age_bracket.value,
            "text_hash": text_hash,
        }
        updated = await conn.execute(
            update(consent_accounts).where(consent_accounts.c.account_id == account_id).values(values)
        )
        if updated.rowcount == 0:
            await conn.execute(insert(consent_accounts).values(account_id=account_id, **values))
        payload = {
            "policy_version": version,
            "text_hash": text_hash,
            "age_bracket": age_bracket.value,
            **_context(**context),
        }
        await ledger_storage.append(conn, account_id, "terms_accepted", payload, now)

    await _write(engine, work)


async def privacy_view(engine: AsyncEngine, book: PolicyBook, account_id: str) -> dict[str, Any]:
    """Transparency: the policy in force, every purpose's state with why, deadlines, and disclosures."""
    async with engine.connect() as conn:
        consent = await storage.load_consent(conn, account_id)
        choices = {
            r.purpose_id: r
            for r in await conn.execute(
                select(consent_purposes).where(
                    consent_purposes.c.account_id == account_id,
                    consent_purposes.c.policy_version == consent.policy_version,
                )
            )
        }
    due = await due_notice(engine, book, account_id)
    view: dict[str, Any] = {
        "policy": None,
        "pending_notice": {"version": due.version, "title": due.title} if due else None,
        "purposes": [],
        "disclosures": [],  # filled by the route from the sharing gateway's log (cove.sharing.disclosures)
    }
    if consent.policy_version is None:
        return view
    policy = await book.version(consent.policy_version)
    now = now_ms()
    view["policy"] = {
        "version": policy.version,
        "title": policy.title,
        "effective": policy.effective.isoformat(),
        "accepted_at": consent.accepted_at_ms,
        "age_bracket": consent.age_bracket.value,
    }
    for purpose in policy.purposes:
        state = consent.purposes.get(purpose.id, PurposeState())
        row = choices.get(purpose.id)
        closes = window_closes_ms(purpose, consent.accepted_at_ms)
        reason = why(policy, consent, purpose.id, now)
        view["purposes"].append(
            {
                "id": purpose.id,
                "title": purpose.title,
                "description": purpose.description,
                "legal_basis": purpose.legal_basis.value if purpose.legal_basis else None,
                "recipients": [policy.recipient(r).name for r in purpose.recipients],
                "active": reason in ALLOWING,
                "why": reason.value,
                "objectable": purpose.objectable,
                "your_choice": state.choice.value if state.choice else None,
                "chosen_at": state.chosen_at_ms,
                "method": row.method if row is not None else None,
                "objected_at": state.objected_at_ms,
                "can_change": purpose.optional and (closes is None or now <= closes),
                "deadline": closes,
            }
        )
    return view
