"""Business tables: profiles, per-business user ids, templates, and what each user told each business.

The opt-in, preference and feedback rows are what the quality rating and the send decision read (next slice);
:func:`load_consent` and :func:`store_consent` turn them into and from the pure :class:`PairConsent`.
"""

from __future__ import annotations

from types import MappingProxyType

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    delete,
    exists,
    insert,
    or_,
    select,
    union,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from cove.accounts import storage as account_storage
from cove.business.optin import Block, OptIn, PairConsent
from cove.db import metadata
from cove.protocol.business import BlockReason, Category, OptInSource

business_accounts = Table(
    "business_accounts",
    metadata,
    Column("account_id", String(36), primary_key=True),
    Column("display_name", String(128), nullable=False),
    Column("about", String(139), nullable=True),
    Column("description", String(512), nullable=True),
    Column("address", String(256), nullable=True),
    Column("email", String(128), nullable=True),
    Column("websites", Text, nullable=False),  # a JSON list, at most two
    Column("vertical", String(20), nullable=True),
    Column("verification", String(12), nullable=False),  # 'unverified' | 'verified'
    Column("verified_at_ms", BigInteger, nullable=True),
    # The quality loop and the limits (cove.business.standing): the number's rating, its messaging tier with
    # the day it last moved and was last evaluated, and its throughput.
    Column("quality", String(8), nullable=False, server_default="green"),
    Column("tier", Integer, nullable=False, server_default="0"),
    Column("tier_changed_day", Integer, nullable=False, server_default="0"),
    Column("tier_evaluated_day", Integer, nullable=False, server_default="0"),
    Column("throughput_mps", Integer, nullable=False, server_default="80"),
    Column("created_at_ms", BigInteger, nullable=False),
    Column("updated_at_ms", BigInteger, nullable=False),
)
# Devices come with a business flag from this table (one join on the send path's cached lookup).
account_storage.flag_businesses(business_accounts.c.account_id)

business_user_ids = Table(
    "business_user_ids",
    metadata,
    Column("business_id", String(36), primary_key=True),
    Column("user_account_id", String(36), primary_key=True),
    Column("bsuid", String(64), nullable=False),
    Column("created_at_ms", BigInteger, nullable=False),
    # The user's own choices for this business (cove.business.identity_service): the name it shows, and since
    # when it shares its number (null: not shared, the business knows the user only by bsuid).
    Column("shown_name", String(64), nullable=True),
    Column("number_shared_at_ms", BigInteger, nullable=True),
    UniqueConstraint("business_id", "bsuid", name="uq_business_user_ids_bsuid"),
    Index("ix_business_user_ids_user", "user_account_id"),
)

business_templates = Table(
    "business_templates",
    metadata,
    Column("template_id", String(36), primary_key=True),
    Column("business_id", String(36), nullable=False),
    Column("name", String(512), nullable=False),
    Column("language", String(16), nullable=False),
    Column("category", String(20), nullable=False),
    Column("body", Text, nullable=False),  # the parsed template as canonical JSON
    Column("parameter_format", String(12), nullable=False),
    Column("status", String(12), nullable=False),
    Column("rejected_reason", Text, nullable=True),
    Column("findings", Text, nullable=False),  # lint warnings, a JSON list
    Column("version", Integer, nullable=False),  # 0 until first approved; each approval bumps it
    Column("signature", String(100), nullable=True),  # over the approved payload of `version`; NULL unless approved
    Column("quality", String(8), nullable=False, server_default="green"),
    Column("pauses", Integer, nullable=False, server_default="0"),  # times paused for quality: 3 h, 6 h, disabled
    Column("paused_until_ms", BigInteger, nullable=True),
    Column("created_at_ms", BigInteger, nullable=False),
    Column("updated_at_ms", BigInteger, nullable=False),
    UniqueConstraint("business_id", "name", "language", name="uq_business_templates_name_language"),
    Index("ix_business_templates_status", "status"),
)

# Every approved version as signed: a message renders with the version it was sent with, after the business
# edits the template and it is approved again.
business_template_versions = Table(
    "business_template_versions",
    metadata,
    Column("template_id", String(36), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("business_id", String(36), nullable=False),
    Column("payload", Text, nullable=False),  # the exact signed bytes (canonical JSON)
    Column("signature", String(100), nullable=False),
    Column("approved_at_ms", BigInteger, nullable=False),
    Index("ix_business_template_versions_business", "business_id"),
)

business_optins = Table(
    "business_optins",
    metadata,
    Column("business_id", String(36), primary_key=True),
    Column("user_account_id", String(36), primary_key=True),
    Column("category", String(20), primary_key=True),
    Column("source", String(20), nullable=False),
    Column("at_ms", BigInteger, nullable=False),
    Column("withdrawn_at_ms", BigInteger, nullable=True),
    Index("ix_business_optins_user", "user_account_id"),
)

business_preferences = Table(
    "business_preferences",
    metadata,
    Column("business_id", String(36), primary_key=True),
    Column("user_account_id", String(36), primary_key=True),
    Column("promotions_stopped_at_ms", BigInteger, nullable=True),
    Column("block_reason", String(20), nullable=True),
    Column("blocked_at_ms", BigInteger, nullable=True),
    Column("updated_at_ms", BigInteger, nullable=False),
    Index("ix_business_preferences_user", "user_account_id"),
)

business_feedback = Table(
    "business_feedback",
    metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True),
    Column("business_id", String(36), nullable=False),
    # NULL once the user deleted their account: the block still counts against the business, anonymously.
    Column("user_account_id", String(36), nullable=True),
    Column("kind", String(12), nullable=False),  # 'block' | 'report'
    Column("reason", String(20), nullable=False),
    Column("template_id", String(36), nullable=True),  # the last template this business sent the user, if any
    Column("at_ms", BigInteger, nullable=False),
    Index("ix_business_feedback_business", "business_id", "at_ms"),
    Index("ix_business_feedback_user", "user_account_id"),
    Index("ix_business_feedback_at", "at_ms"),  # the retention sweep (cove.business.upkeep)
    sqlite_autoincrement=True,
)

# The send path's own state (cove.business.sending): when each user last wrote to each business (the 24 h
# service window), and when the business last reached each user outside a window (its tier usage).
business_windows = Table(
    "business_windows",
    metadata,
    Column("business_id", String(36), primary_key=True),
    Column("user_account_id", String(36), primary_key=True),
    Column("last_user_message_ms", BigInteger, nullable=False),
    Index("ix_business_windows_user", "user_account_id"),
)

business_reach = Table(
    "business_reach",
    metadata,
    Column("business_id", String(36), primary_key=True),
    Column("user_account_id", String(36), primary_key=True),
    Column("reached_at_ms", BigInteger, nullable=False),
    Column("template_id", String(36), nullable=True),  # the template of that message (feedback is blamed on it)
    Index("ix_business_reach_business_time", "business_id", "reached_at_ms"),
    Index("ix_business_reach_user", "user_account_id"),
    Index("ix_business_reach_time", "reached_at_ms"),  # the retention sweep (cove.business.upkeep)
)

# Marketing templates each user got outside a service window, from every business: the per-user cap (131049).
business_marketing = Table(
    "business_marketing",
    metadata,
    Column("user_account_id", String(36), nullable=False),
    Column("business_id", String(36), nullable=False),
    Column("at_ms", BigInteger, nullable=False),
    Index("ix_business_marketing_user_time", "user_account_id", "at_ms"),
    Index("ix_business_marketing_business", "business_id"),
    Index("ix_business_marketing_at", "at_ms"),  # the retention sweep (cove.business.upkeep)
)

# One row per business and day: unique users reached outside windows and the rating at the day's end, which is
# what the tier moves read (cove.business.tiers.evaluate).
business_daily = Table(
    "business_daily",
    metadata,
    Column("business_id", String(36), primary_key=True),
    Column("day", Integer, primary_key=True),
    Column("unique_users", Integer, nullable=False),
    Column("quality", String(8), nullable=False),
)

# What the relay tells a business outside its chats (template reviews, quality and tier moves, users' promotion
# switches), in commit order; its gateway reads from its last sequence number and turns each into a webhook.
business_events = Table(
    "business_events",
    metadata,
    Column("seq", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True),
    Column("business_id", String(36), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("body", Text, nullable=False),
    Column("at_ms", BigInteger, nullable=False),
    Index("ix_business_events_business_seq", "business_id", "seq"),
    Index("ix_business_events_at", "at_ms"),  # the retention sweep (cove.business.upkeep)
    sqlite_autoincrement=True,
)

# Template pacing (cove.business.pacing): each paced template's current episode (its first sends go at once), and
# the sends held until the episode's feedback is in, with their envelopes as the queue would have stored them.
business_pacing = Table(
    "business_pacing",
    metadata,
    Column("template_id", String(36), primary_key=True),
    Column("business_id", String(36), nullable=False),
    Column("started_at_ms", BigInteger, nullable=False),
    Column("sent", Integer, nullable=False),  # sends let through at once in this episode
    Index("ix_business_pacing_business", "business_id"),
)

business_held = Table(
    "business_held",
    metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True),
    Column("business_id", String(36), nullable=False),
    Column("template_id", String(36), nullable=False),
    Column("user_account_id", String(36), nullable=False),
    Column("client_message_id", String(64), nullable=False),
    Column("envelopes", Text, nullable=False),  # JSON: the envelopes' rows, bodies in base64 (ciphertext)
    Column("held_at_ms", BigInteger, nullable=False),
    Column("release_at_ms", BigInteger, nullable=False),
    Index("ix_business_held_release", "release_at_ms"),
    Index("ix_business_held_business", "business_id"),
    Index("ix_business_held_user", "user_account_id"),
    sqlite_autoincrement=True,
)

_BUSINESS_TABLES = (
    business_feedback,
    business_templates,
    business_template_versions,
    business_marketing,
    business_daily,
    business_events,
)
_PAIR_TABLES = (business_user_ids, business_optins, business_preferences, business_windows, business_reach)
# What makes an account one of a business's users, by the user's own doing: it wrote to the business (a service
# window, open or closed), opted in (even if withdrawn since), or set a preference (stopped its promotions,
# blocked it). A business reaching a user needed one of these first.
_RELATIONSHIP_TABLES = (business_windows, business_optins, business_preferences)


def is_related(business_id: str, account_id: ColumnElement[str]) -> ColumnElement[bool]:
    """Whether the account is one of the business's users (see ``_RELATIONSHIP_TABLES``)."""
    return or_(
        *(
            exists().where(t.c.business_id == business_id, t.c.user_account_id == account_id)
            for t in _RELATIONSHIP_TABLES
        )
    )


async def related_accounts(conn: AsyncConnection, business_id: str, account_ids: list[str]) -> set[str]:
    """Those of ``account_ids`` that are the business's users (see ``_RELATIONSHIP_TABLES``)."""
    if not account_ids:
        return set()
    query = union(
        *(
            select(t.c.user_account_id).where(t.c.business_id == business_id, t.c.user_account_id.in_(account_ids))
            for t in _RELATIONSHIP_TABLES
        )
    )
    return set((await conn.execute(query)).scalars())


async def business_by_id(conn: AsyncConnection, account_id: str):  # noqa: ANN201 - a Row
    return (await conn.execute(select(business_accounts).where(business_accounts.c.account_id == account_id))).first()


async def load_consent(conn: AsyncConnection, business_id: str, user_id: str) -> PairConsent:
    t, p = business_optins, business_preferences
    rows = (await conn.execute(select(t).where(t.c.business_id == business_id, t.c.user_account_id == user_id))).all()
    opt_ins = {
        Category(r.category): OptIn(Category(r.category), OptInSource(r.source), r.at_ms, r.withdrawn_at_ms)
        for r in rows
    }
    pref = (await conn.execute(select(p).where(p.c.business_id == business_id, p.c.user_account_id == user_id))).first()
    blocked = None
    if pref is not None and pref.blocked_at_ms is not None:
        blocked = Block(BlockReason(pref.block_reason), pref.blocked_at_ms)
    return PairConsent(
        opt_ins=MappingProxyType(opt_ins),
        promotions_stopped_at_ms=pref.promotions_stopped_at_ms if pref is not None else None,
        block=blocked,
    )


async def store_consent(
    conn: AsyncConnection, business_id: str, user_id: str, before: PairConsent, after: PairConsent, now: int
) -> None:
    """Write what changed between ``before`` (as loaded in this transaction) and ``after``."""
    t, p = business_optins, business_preferences
    pair = {"business_id": business_id, "user_account_id": user_id}
    for category, record in after.opt_ins.items():
        if before.opt_ins.get(category) == record:
            continue
        values = {"source": record.source.value, "at_ms": record.at_ms, "withdrawn_at_ms": record.withdrawn_at_ms}
        if category in before.opt_ins:
            where = (t.c.business_id == business_id, t.c.user_account_id == user_id, t.c.category == category.value)
            await conn.execute(update(t).where(*where).values(**values))
        else:
            await conn.execute(insert(t).values(**pair, category=category.value, **values))
    if (before.promotions_stopped_at_ms, before.block) == (after.promotions_stopped_at_ms, after.block):
        return
    values = {
        "promotions_stopped_at_ms": after.promotions_stopped_at_ms,
        "block_reason": after.block.reason.value if after.block else None,
        "blocked_at_ms": after.block.at_ms if after.block else None,
        "updated_at_ms": now,
    }
    where = (p.c.business_id == business_id, p.c.user_account_id == user_id)
    if (await conn.execute(update(p).where(*where).values(**values))).rowcount == 0:
        await conn.execute(insert(p).values(**pair, **values))


async def forget_account(conn: AsyncConnection, account_id: str) -> None:
    """On AccountDeleted, in the deletion's transaction (cove.business.hooks): a deleted business takes its profile,
    templates and everything users told it with it; a deleted user takes their per-business ids, opt-ins and
    preferences, and their blocks and reports stay as anonymous feedback (so leaving Cove does not clean a
    spammer's quality record)."""
    for table in (
        *_PAIR_TABLES,
        business_feedback,
        business_templates,
        business_marketing,
        business_daily,
        business_events,
        business_pacing,
        business_held,
    ):
        await conn.execute(delete(table).where(table.c.business_id == account_id))
    await conn.execute(delete(business_accounts).where(business_accounts.c.account_id == account_id))
    for table in _PAIR_TABLES:
        await conn.execute(delete(table).where(table.c.user_account_id == account_id))
    await conn.execute(delete(business_marketing).where(business_marketing.c.user_account_id == account_id))
    await conn.execute(delete(business_held).where(business_held.c.user_account_id == account_id))
    f = business_feedback
    await conn.execute(update(f).where(f.c.user_account_id == account_id).values(user_account_id=None))
