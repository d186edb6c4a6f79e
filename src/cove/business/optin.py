"""What one user has told one business: opt-ins per category, "stop promotions", and blocks.

Pure state (one frozen :class:`PairConsent` per business × user, loaded and stored by the caller) and the rule that
reads it. Sources: Meta's opt-in page ([M] https://developers.facebook.com/docs/whatsapp/overview/getting-opt-in: opt-in
before any business-initiated message, from any channel, best kept per category), WhatsApp's help centre (block with a
reason, report: https://faq.whatsapp.com/905446723757116/) and the user_preferences webhook ([M]
https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/user_preferences: "stop
promotions" per business, marketing only, utility, authentication and in-window replies still go through, only the user
can resume).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from types import MappingProxyType

from cove.protocol.business import BlockReason, Category, OptInSource


class Actor(StrEnum):
    USER = "user"
    BUSINESS = "business"


class Refusal(StrEnum):
    BLOCKED = "blocked"
    PROMOTIONS_STOPPED = "promotions_stopped"
    NO_OPT_IN = "no_opt_in"


class UserActRequired(PermissionError):
    """Stop and resume promotions, block and unblock are the user's own switches; nobody else flips them."""


@dataclass(frozen=True)
class OptIn:
    category: Category
    source: OptInSource
    at_ms: int
    withdrawn_at_ms: int | None = None

    @property
    def active(self) -> bool:
        return self.withdrawn_at_ms is None


@dataclass(frozen=True)
class Block:
    reason: BlockReason
    at_ms: int


@dataclass(frozen=True)
class PairConsent:
    """One business × user. A report is feedback for the quality rating, not state here; the block it usually
    comes with is."""

    opt_ins: Mapping[Category, OptIn] = field(default_factory=lambda: MappingProxyType({}))
    promotions_stopped_at_ms: int | None = None
    block: Block | None = None


def grant(consent: PairConsent, category: Category, source: OptInSource, at_ms: int) -> PairConsent:
    """Record an opt-in; a fresh one replaces an earlier (possibly withdrawn) record for the category."""
    return replace(consent, opt_ins=MappingProxyType({**consent.opt_ins, category: OptIn(category, source, at_ms)}))


def withdraw(consent: PairConsent, category: Category, at_ms: int) -> PairConsent:
    """Opt out of a category; either side may record it (a business honouring a STOP reply must)."""
    current = consent.opt_ins.get(category)
    if current is None or not current.active:
        return consent
    withdrawn = replace(current, withdrawn_at_ms=at_ms)
    return replace(consent, opt_ins=MappingProxyType({**consent.opt_ins, category: withdrawn}))


def _users_own(actor: Actor, what: str) -> None:
    if actor is not Actor.USER:
        raise UserActRequired(f"only the user can {what}")


def stop_promotions(consent: PairConsent, actor: Actor, at_ms: int) -> PairConsent:
    _users_own(actor, "stop promotions")
    if consent.promotions_stopped_at_ms is not None:
        return consent
    return replace(consent, promotions_stopped_at_ms=at_ms)


def resume_promotions(consent: PairConsent, actor: Actor) -> PairConsent:
    _users_own(actor, "resume promotions")
    return replace(consent, promotions_stopped_at_ms=None)


def block(consent: PairConsent, actor: Actor, reason: BlockReason, at_ms: int) -> PairConsent:
    _users_own(actor, "block a business")
    return replace(consent, block=Block(reason, at_ms))


def unblock(consent: PairConsent, actor: Actor) -> PairConsent:
    _users_own(actor, "unblock a business")
    return replace(consent, block=None)


def has_opt_in(consent: PairConsent, category: Category) -> bool:
    record = consent.opt_ins.get(category)
    return record is not None and record.active


def refusal(consent: PairConsent, category: Category | None, in_window: bool) -> Refusal | None:
    """Why this business may not send this user a message of ``category`` (None: a free-form message).

    A block stops everything. "Stop promotions" stops every marketing template, inside the window too; utility
    and authentication templates and free-form replies still go. Outside the window a template needs an active
    opt-in for its own category (Meta's best practice: a separate opt-in per category); inside it the user's own
    message is the invitation, so no opt-in is asked for.
    """
    if consent.block is not None:
        return Refusal.BLOCKED
    if category is Category.MARKETING and consent.promotions_stopped_at_ms is not None:
        return Refusal.PROMOTIONS_STOPPED
    if category is not None and not in_window and not has_opt_in(consent, category):
        return Refusal.NO_OPT_IN
    return None


def sendable(consent: PairConsent, in_window: bool) -> frozenset[Category]:
    """The template categories the business may send this user now (the "why am I getting this" view)."""
    return frozenset(c for c in Category if refusal(consent, c, in_window) is None)
