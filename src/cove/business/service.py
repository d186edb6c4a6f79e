"""Business accounts and templates on the relay: the operations the routes and the operator commands run.

Every rule lives in the pure modules (cove.protocol.templates, cove.business.optin); this module loads, applies
them and stores the result, answering with :class:`ApiError`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cove.accounts import storage as account_storage
from cove.business import optin, standing, tiers
from cove.business.identity_service import identities, phone_of, user_id_for
from cove.business.keys import BusinessKeys
from cove.business.optin import Actor, PairConsent
from cove.business.storage import (
    business_accounts,
    business_by_id,
    business_events,
    business_optins,
    business_preferences,
    business_template_versions,
    business_templates,
    business_user_ids,
    is_related,
    load_consent,
    related_accounts,
    store_consent,
)
from cove.business.template_registry import (  # noqa: F401 - the routes' template operations, re-exported
    delete_templates,
    edit_template,
    own_templates,
    submit_template,
)
from cove.business.template_registry import move as _move
from cove.business.template_registry import review_state as _review_state
from cove.clock import now_ms
from cove.errors import ApiError
from cove.protocol.business import BlockReason, Category, OptInSource
from cove.protocol.phone import normalise
from cove.protocol.templates import (
    Approve,
    Finding,
    Reject,
    ReviewStatus,
    Template,
    approved_payload,
    lint,
    sign_approved,
)

UNVERIFIED, VERIFIED = "unverified", "verified"
#: Statuses whose signed text a client may still fetch: messages sent before a pause must still render.
SERVED_STATUSES = (ReviewStatus.APPROVED, ReviewStatus.PAUSED)


# Profiles ----------------------------------------------------------------------------------------------------


async def put_profile(engine: AsyncEngine, account_id: str, profile: dict[str, Any]) -> dict[str, Any]:
    """Create or update the business profile, marking the account as a business. A new display name takes the
    verified badge away until the operator verifies the business again: the badge vouches for a name."""
    now = now_ms()
    values = {**profile, "websites": json.dumps(profile.get("websites") or []), "updated_at_ms": now}
    async with engine.begin() as conn:
        current = await business_by_id(conn, account_id)
        if current is None:
            await conn.execute(
                insert(business_accounts).values(
                    account_id=account_id, verification=UNVERIFIED, created_at_ms=now, **values
                )
            )
        else:
            if current.display_name != profile["display_name"]:
                values |= {"verification": UNVERIFIED, "verified_at_ms": None}
            t = business_accounts
            await conn.execute(update(t).where(t.c.account_id == account_id).values(**values))
        return profile_view(await business_by_id(conn, account_id))


def profile_view(row: Any) -> dict[str, Any]:
    return {
        "business_id": row.account_id,
        "display_name": row.display_name,
        "about": row.about,
        "description": row.description,
        "address": row.address,
        "email": row.email,
        "websites": json.loads(row.websites),
        "vertical": row.vertical,
        "verified": row.verification == VERIFIED,
    }


async def _business(conn: AsyncConnection, business_id: str) -> Any:
    row = await business_by_id(conn, business_id)
    if row is None:
        raise ApiError(404, "unknown_business", "no business has this account id")
    return row


async def public_profile(engine: AsyncEngine, business_id: str) -> dict[str, Any]:
    async with engine.connect() as conn:
        return profile_view(await _business(conn, business_id))


async def own_profile(engine: AsyncEngine, business_id: str) -> dict[str, Any]:
    async with engine.connect() as conn:
        row = await _business(conn, business_id)
    return profile_view(row) | {
        "quality": row.quality.upper(),
        "messaging_limit": tiers.LIMITS[tiers.Tier(row.tier)],
        "throughput_mps": row.throughput_mps,
    }


async def verify(engine: AsyncEngine, raw_phone: str) -> Any:
    """The operator's `cove business verify PHONE`: the badge. Returns the business row."""
    phone = normalise(raw_phone)
    async with engine.begin() as conn:
        account = await account_storage.account_by_phone(conn, phone)
        if account is None:
            raise ApiError(404, "unknown_account", f"no account has the number {phone}")
        row = await business_by_id(conn, account.id)
        if row is None:
            raise ApiError(409, "not_a_business", f"{phone} has no business profile (PUT /v1/business/profile)")
        t = business_accounts
        now = now_ms()
        await conn.execute(
            update(t).where(t.c.account_id == account.id).values(verification=VERIFIED, verified_at_ms=now)
        )
        if row.tier < tiers.Tier.T2K:  # the verification path: 250 -> 2,000 (cove.business.tiers)
            await standing.set_tier(conn, account.id, tiers.Tier.T2K, standing.day_of(now), now)
        return await business_by_id(conn, account.id)


async def set_limits(engine: AsyncEngine, raw_phone: str, tier: tiers.Tier | None, throughput_mps: int | None) -> Any:
    """The operator's override of a number's tier or throughput (Meta's upgrades to 1,000 mps and support's tier
    reviews); the daily evaluation moves the tier on from there."""
    phone = normalise(raw_phone)
    async with engine.begin() as conn:
        account = await account_storage.account_by_phone(conn, phone)
        row = await business_by_id(conn, account.id) if account is not None else None
        if row is None:
            raise ApiError(404, "unknown_business", f"no business has the number {phone}")
        now = now_ms()
        if tier is not None:
            await standing.set_tier(conn, row.account_id, tier, standing.day_of(now), now)
        if throughput_mps is not None:
            t = business_accounts
            await conn.execute(update(t).where(t.c.account_id == row.account_id).values(throughput_mps=throughput_mps))
        return await business_by_id(conn, row.account_id)


# Templates -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Signed:
    template_id: str
    version: int
    payload: bytes  # the exact bytes the signature covers
    signature: str


async def approved(engine: AsyncEngine, template_id: str, version: int | None = None) -> Signed:
    """The signed approved payload of a template, as the client verifies it: the current version, or the one a
    message was sent with (any version ever approved, while the template exists)."""
    t, v = business_templates, business_template_versions
    async with engine.connect() as conn:
        row = (await conn.execute(select(t).where(t.c.template_id == template_id))).first()
        if row is not None and version is not None and version != row.version:
            signed = (
                await conn.execute(select(v).where(v.c.template_id == template_id, v.c.version == version))
            ).first()
            if signed is not None:
                return Signed(template_id, version, signed.payload.encode(), signed.signature)
            row = None
    if row is None or row.status not in SERVED_STATUSES or row.signature is None:
        raise ApiError(404, "template_not_approved", "no approved template has this id and version")
    return Signed(row.template_id, row.version, _payload(row), row.signature)


def _payload(row: Any) -> bytes:
    template = Template.model_validate_json(row.body)
    return approved_payload(template, row.template_id, row.version, business_id=row.business_id)


@dataclass(frozen=True)
class Listed:
    row: Any
    business_name: str | None


async def list_templates(engine: AsyncEngine, status: ReviewStatus | None) -> list[Listed]:
    t, b = business_templates, business_accounts
    query = select(t, b.c.display_name).outerjoin(b, b.c.account_id == t.c.business_id).order_by(t.c.created_at_ms)
    if status is not None:
        query = query.where(t.c.status == status.value)
    async with engine.connect() as conn:
        return [Listed(r, r.display_name) for r in (await conn.execute(query)).all()]


async def _review(engine: AsyncEngine, template_id: str, apply: Callable[[AsyncConnection, Any], Any]) -> Any:
    t = business_templates
    async with engine.begin() as conn:
        row = (await conn.execute(select(t).where(t.c.template_id == template_id))).first()
        if row is None:
            raise ApiError(404, "unknown_template", f"no template has the id {template_id}")
        values = apply(conn, row)
        changed = await conn.execute(
            update(t)
            .where(t.c.template_id == template_id, t.c.status == row.status, t.c.version == row.version)
            .values(updated_at_ms=now_ms(), **values)
        )
        if changed.rowcount != 1:
            raise ApiError(409, "concurrent_change", "the template changed meanwhile; look again")
        after = (await conn.execute(select(t).where(t.c.template_id == template_id))).one()
        if after.status == ReviewStatus.APPROVED and after.version != row.version:
            await conn.execute(
                insert(business_template_versions).values(
                    template_id=after.template_id,
                    version=after.version,
                    business_id=after.business_id,
                    payload=_payload(after).decode(),
                    signature=after.signature,
                    approved_at_ms=now_ms(),
                )
            )
        body = {
            "template_id": after.template_id,
            "name": after.name,
            "language": after.language,
            "event": after.status,
            "reason": after.rejected_reason,
            "version": after.version,
        }
        await standing.emit(conn, after.business_id, "template_status", body, now_ms())
        return after


async def approve(engine: AsyncEngine, keys: BusinessKeys, template_id: str) -> Any:
    """PENDING -> APPROVED: bump the version and sign exactly what clients will verify."""

    def apply(_: AsyncConnection, row: Any) -> dict[str, Any]:
        state = _move(_review_state(row), Approve())
        template = Template.model_validate_json(row.body)
        errors: list[Finding] = [f for f in lint(template) if f.severity == "error"]
        if errors:  # the rules may have grown since it was submitted
            raise ApiError(409, "template_lint_errors", "; ".join(f"{f.path}: {f.message}" for f in errors))
        version = row.version + 1
        payload = approved_payload(template, row.template_id, version, business_id=row.business_id)
        return {"status": state.status.value, "version": version, "signature": sign_approved(keys.signing_key, payload)}

    return await _review(engine, template_id, apply)


async def reject(engine: AsyncEngine, template_id: str, reason: str) -> Any:
    def apply(_: AsyncConnection, row: Any) -> dict[str, Any]:
        state = _move(_review_state(row), Reject(reason=reason))
        return {"status": state.status.value, "rejected_reason": state.reason, "signature": None}

    return await _review(engine, template_id, apply)


# What users tell businesses --------------------------------------------------------------------------------------


def consent_view(consent: PairConsent, bsuid: str) -> dict[str, Any]:
    return {
        "user_id": bsuid,
        "opt_ins": [
            {"category": c.value, "source": o.source.value, "at": o.at_ms}
            for c, o in sorted(consent.opt_ins.items())
            if o.active
        ],
        "promotions_stopped": consent.promotions_stopped_at_ms is not None,
        "blocked": consent.block is not None,
        "block_reason": consent.block.reason.value if consent.block else None,
        # Outside a conversation window: what this business may send now ("why am I getting this").
        "sendable_categories": sorted(c.value for c in optin.sendable(consent, in_window=False)),
    }


async def change_consent(
    engine: AsyncEngine,
    keys: BusinessKeys,
    business_id: str,
    user_id: str,
    change: Callable[[PairConsent, int], PairConsent],
    feedback: Iterable[tuple[str, BlockReason]] = (),
) -> dict[str, Any]:
    """Apply one of the user's switches with the pure rules, store the difference, return the new state."""
    now = now_ms()
    async with engine.begin() as conn:
        await _business(conn, business_id)
        if business_id == user_id:
            raise ApiError(400, "own_business", "this is your own business")
        bsuid = await user_id_for(conn, keys, business_id, user_id)
        before = await load_consent(conn, business_id, user_id)
        after = change(before, now)
        await store_consent(conn, business_id, user_id, before, after, now)
        if feedback:
            await standing.record_feedback(conn, business_id, user_id, list(feedback), now)
        stopped_before, stopped_after = (
            before.promotions_stopped_at_ms is not None,
            after.promotions_stopped_at_ms is not None,
        )
        if stopped_before != stopped_after:  # the Cloud API's user_preferences webhook
            value = "stop" if stopped_after else "resume"
            await standing.emit(conn, business_id, "user_preferences", {"user_id": bsuid, "value": value}, now)
    return consent_view(after, bsuid)


async def my_consent(engine: AsyncEngine, keys: BusinessKeys, business_id: str, user_id: str) -> dict[str, Any]:
    """The user's own view; reading it records nothing, so looking at a business does not tell it anything."""
    async with engine.connect() as conn:
        await _business(conn, business_id)
        consent = await load_consent(conn, business_id, user_id)
        found = (await identities(conn, business_id, [user_id])).get(user_id)
        # Before the pair ever met: the id it would get, from the number the account has now.
        bsuid = found["user_id"] if found else keys.bsuid(business_id, user_id, await phone_of(conn, user_id) or "")
    return consent_view(consent, bsuid)


def grant(categories: list[Category], source: OptInSource) -> Callable[[PairConsent, int], PairConsent]:
    def change(consent: PairConsent, now: int) -> PairConsent:
        for category in categories:
            consent = optin.grant(consent, category, source, now)
        return consent

    return change


def withdraw(categories: list[Category]) -> Callable[[PairConsent, int], PairConsent]:
    def change(consent: PairConsent, now: int) -> PairConsent:
        for category in categories:
            consent = optin.withdraw(consent, category, now)
        return consent

    return change


def stop_promotions(consent: PairConsent, now: int) -> PairConsent:
    return optin.stop_promotions(consent, Actor.USER, now)


def resume_promotions(consent: PairConsent, _: int) -> PairConsent:
    return optin.resume_promotions(consent, Actor.USER)


def block(reason: BlockReason) -> Callable[[PairConsent, int], PairConsent]:
    return lambda consent, now: optin.block(consent, Actor.USER, reason, now)


def unblock(consent: PairConsent, _: int) -> PairConsent:
    return optin.unblock(consent, Actor.USER)


async def customers(engine: AsyncEngine, business_id: str) -> list[dict[str, Any]]:
    """The business's view: the per-business ids of the users with an active opt-in, their categories and
    promotion switch; never a number or an account id, nor who blocked it (blocked users are left out)."""
    u, o, p = business_user_ids, business_optins, business_preferences
    query = (
        select(u.c.bsuid, o.c.category, p.c.promotions_stopped_at_ms)
        .join(o, (o.c.business_id == u.c.business_id) & (o.c.user_account_id == u.c.user_account_id))
        .outerjoin(p, (p.c.business_id == u.c.business_id) & (p.c.user_account_id == u.c.user_account_id))
        .where(u.c.business_id == business_id, o.c.withdrawn_at_ms.is_(None), p.c.blocked_at_ms.is_(None))
        .order_by(u.c.bsuid, o.c.category)
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    found: dict[str, dict[str, Any]] = {}
    for r in rows:
        entry = found.setdefault(
            r.bsuid, {"user_id": r.bsuid, "opt_ins": [], "promotions_stopped": r.promotions_stopped_at_ms is not None}
        )
        entry["opt_ins"].append(r.category)
    return list(found.values())


# The business's feed and its users' ids -----------------------------------------------------------------------------


async def events(engine: AsyncEngine, business_id: str, after: int, limit: int) -> list[dict[str, Any]]:
    """The business's events after sequence number ``after``, oldest first."""
    e = business_events
    query = (
        select(e).where(e.c.business_id == business_id, e.c.seq > after).order_by(e.c.seq).limit(limit)
    )  # fmt: skip
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [{"seq": r.seq, "kind": r.kind, "at": r.at_ms, "body": json.loads(r.body)} for r in rows]


async def resolve_users(
    engine: AsyncEngine, keys: BusinessKeys, business_id: str, user_ids: list[str], account_ids: list[str]
) -> list[dict[str, Any]]:
    """Pair the business's user ids with account ids, both ways. Its gateway needs the account to encrypt to (the
    E2E sessions are per device) and the user id to show its own systems; an account id it only learns as the
    sender of a message to it. Only the business's users are paired (they wrote to it, opted in or set a
    preference: ``storage.is_related``); any other id is left out, so the answer confirms nothing else and no
    business gets an id for a user who never dealt with it."""
    u = business_user_ids
    async with engine.begin() as conn:
        await _business(conn, business_id)
        query = select(u.c.bsuid, u.c.user_account_id).where(
            u.c.business_id == business_id, u.c.bsuid.in_(user_ids), is_related(business_id, u.c.user_account_id)
        )
        found = {r.bsuid: r.user_account_id for r in await conn.execute(query)}
        for account_id in sorted(await related_accounts(conn, business_id, account_ids)):
            found[await user_id_for(conn, keys, business_id, account_id)] = account_id
        shown = await identities(conn, business_id, list(found.values()))
    # With each pair, what the user chose to show this business: a name, and the number while they share it.
    return [shown[account] | {"account_id": account} for account in found.values()]


async def withdraw_for_user(
    engine: AsyncEngine, keys: BusinessKeys, business_id: str, bsuid: str, categories: list[Category]
) -> dict[str, Any]:
    """The business records a user's opt-out (a STOP they wrote in the chat, which only the business can read).
    A business may withdraw an opt-in, never grant one."""
    u = business_user_ids
    async with engine.connect() as conn:
        account_id = (
            await conn.execute(select(u.c.user_account_id).where(u.c.business_id == business_id, u.c.bsuid == bsuid))
        ).scalar()
    if account_id is None:
        raise ApiError(404, "unknown_user", "none of your users has this id")
    return await change_consent(engine, keys, business_id, account_id, withdraw(categories))
