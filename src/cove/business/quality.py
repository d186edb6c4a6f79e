"""Quality rating from user feedback, and the template pauses it drives.

The rating is GREEN, YELLOW or RED from the last 7 days of blocks and reports, weighted to recent ones and by reason
([M] https://developers.facebook.com/documentation/business-messaging/whatsapp/templates/template-quality: user feedback
of the last 7 days, weighted to recent ones: blocks, block reasons, reports; [3P]
https://docs.360dialog.com/docs/resources/phone-numbers/quality-rating). Meta publishes no formula, so Cove's is written
down here:

    score = Σ weight(feedback) · 2^(-age / 2 days)  /  max(unique users messaged in the 7 days, 300)

A report weighs most (the user asked the platform to act), then blocks whose reason says the business should
not have written at all (didn't sign up, spam, offensive), then "other", and least "no longer needed" (the user
once wanted these messages). Dividing by users messaged makes it a rate, so a large sender is not punished for
its size; the floor of 300 keeps one unhappy user of a small sender from being a verdict on their own (one
spam block today is YELLOW, RED takes about three). With these numbers 10 spam blocks today among 1,000 users
messaged make RED (0.03), 10 "no longer needed" blocks stay GREEN (0.005).

Template pauses follow Meta's template-pausing page (3 h, then 6 h, then disabled): the first time a
template goes RED it is paused 3 h, the second time 6 h, the third time it is disabled for good. Pacing follows
Meta's template-pacing page: marketing and utility sends of a template that is not GREEN, or was
unpaused in the last day, are accepted but flagged so the relay holds them until feedback on the first part
arrives (cove.business.pacing); "new template" pacing needs the template's age, which the registry owns, and
is not modelled here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from cove.business.window import DAY_MS, HOUR_MS
from cove.protocol.business import BlockReason, Category

RATING_PERIOD_MS = 7 * DAY_MS  # template-quality: the last 7 days of user feedback
HALF_LIFE_MS = 2 * DAY_MS  # recency weighting: feedback counts half after 2 days, 1/8 after 6 (Cove's choice)
MIN_USERS_FOR_RATE = 300  # denominator floor (Cove's choice, see the module docstring)

REPORT_WEIGHT = 4.0
UNEXPLAINED_BLOCK_WEIGHT = 1.0  # a block without a reason
BLOCK_WEIGHTS = {
    BlockReason.DIDNT_SIGN_UP: 3.0,
    BlockReason.SPAM: 3.0,
    BlockReason.OFFENSIVE: 3.0,
    BlockReason.OTHER: 1.5,
    BlockReason.NO_LONGER_NEEDED: 0.5,
}

YELLOW_AT = 0.01  # weighted negative feedback per user messaged (Cove's choice)
RED_AT = 0.03

PAUSE_DURATIONS_MS = (3 * HOUR_MS, 6 * HOUR_MS)  # template-pausing: 3 h, then 6 h, then disabled
PACED_AFTER_UNPAUSE_MS = DAY_MS  # how long an unpaused template stays paced (Cove's choice; Meta gives no number)
PACED_CATEGORIES = frozenset({Category.MARKETING, Category.UTILITY})  # template-pacing: marketing and utility only


class Quality(StrEnum):
    GREEN = "green"
    YELLOW = "yellow"
    RED = "red"


class FeedbackKind(StrEnum):
    BLOCK = "block"
    REPORT = "report"


@dataclass(frozen=True)
class Feedback:
    kind: FeedbackKind
    at_ms: int
    reason: BlockReason | None = None  # blocks only; a report is weighed as a report whatever its reason


def weight(feedback: Feedback) -> float:
    if feedback.kind is FeedbackKind.REPORT:
        return REPORT_WEIGHT
    return UNEXPLAINED_BLOCK_WEIGHT if feedback.reason is None else BLOCK_WEIGHTS[feedback.reason]


def score(feedback: Iterable[Feedback], users_messaged: int, now_ms: int) -> float:
    """Recency-weighted negative feedback per user messaged; feedback older than 7 days (or from the future,
    which a skewed clock can produce) does not count."""
    total = 0.0
    for item in feedback:
        age = now_ms - item.at_ms
        if 0 <= age < RATING_PERIOD_MS:
            total += weight(item) * 0.5 ** (age / HALF_LIFE_MS)
    return total / max(users_messaged, MIN_USERS_FOR_RATE)


def rating(value: float) -> Quality:
    if value >= RED_AT:
        return Quality.RED
    return Quality.YELLOW if value >= YELLOW_AT else Quality.GREEN


def rate(feedback: Iterable[Feedback], users_messaged: int, now_ms: int) -> Quality:
    """The rating of a business number, or of one template from the feedback on its messages."""
    return rating(score(feedback, users_messaged, now_ms))


class TemplateStatus(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    DISABLED = "disabled"


@dataclass(frozen=True)
class TemplateHealth:
    pauses: int = 0  # times the template has been paused so far
    paused_until_ms: int | None = None
    disabled: bool = False


def paused_for_ms(health: TemplateHealth, now_ms: int) -> int:
    """How much longer the current pause lasts (0 when not paused)."""
    return 0 if health.paused_until_ms is None else max(0, health.paused_until_ms - now_ms)


def status(health: TemplateHealth, now_ms: int) -> TemplateStatus:
    if health.disabled:
        return TemplateStatus.DISABLED
    return TemplateStatus.PAUSED if paused_for_ms(health, now_ms) > 0 else TemplateStatus.ACTIVE


def on_rating(health: TemplateHealth, quality: Quality, now_ms: int) -> TemplateHealth:
    """Apply a fresh template rating: RED while active pauses it (3 h, then 6 h) or, the third time, disables it.

    RED seen again during a pause is the same incident and changes nothing; a disabled template stays disabled.
    """
    if quality is not Quality.RED or status(health, now_ms) is not TemplateStatus.ACTIVE:
        return health
    pauses = health.pauses + 1
    if pauses > len(PAUSE_DURATIONS_MS):
        return TemplateHealth(pauses, health.paused_until_ms, disabled=True)
    return TemplateHealth(pauses, now_ms + PAUSE_DURATIONS_MS[pauses - 1])


def paced(category: Category, quality: Quality, health: TemplateHealth, now_ms: int) -> bool:
    """Should this template send be held back for pacing (accepted, delivered once early feedback is fine)?"""
    if category not in PACED_CATEGORIES:
        return False
    recently_unpaused = health.paused_until_ms is not None and now_ms < health.paused_until_ms + PACED_AFTER_UNPAUSE_MS
    return quality is not Quality.GREEN or recently_unpaused
