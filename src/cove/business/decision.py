"""The one send decision: may this business send this message to this user now?

Pure, like :mod:`cove.consent.decision`: it sees a snapshot the caller loaded (:class:`SendState`) and the time,
and answers :class:`Allowed` with what to store, or the :class:`~cove.business.errors.CloudApiError` to answer
with. Nothing is mutated and nothing is spent on a refusal, so a refused send leaves every counter as it was.
The relay sees only metadata (the template id and category in the envelope's visible header, never content),
which is all these rules need (VISION.md, "The business gateway is a Cove client").

The checks run in this fixed order; the first that fails answers. Malformed before forbidden, forbidden before
throttled, so a business is never told to slow down for a message it may not send at all:

 1. 131051  the message type is not one Cove carries.
 2. 131026  the recipient is not a Cove user, or blocked this business (one answer for both, so a business
            cannot tell a block from a missing account; Meta's 131026 hides the reason the same way).
 3. 132001  template not found in this language or not approved; 132016 disabled; 132015 paused;
            132000 parameter count differs from the template's.
 4. 131047  a free-form message outside the 24 h customer service window.
 5. 131050  a marketing template to a user who stopped promotions from this business (inside the window too).
 6. 131026  outside the window, no active opt-in for the template's category. Meta has no opt-in code (the
            Cloud API leaves opt-in to the business's honour); 131047 would tell the business "send a template
            instead", which is what it just did, while 131026 already means "do not retry blindly". The details
            name the cause: the opt-in is the business's own record, so nothing private is revealed.
 7. 130472  marketing outside the window to a user in the marketing experiment holdout ([M] https://developers.facebook.com/documentation/business-messaging/whatsapp/support/error-codes).
 8. 131048  marketing outside the window while the number's quality is RED (the spam rate limit: a number
            users block and report may still answer them, and still send utility and authentication
            templates, but may not start marketing).
 9. 131048  outside the window, a user not yet counted would exceed the messaging limit (tier). Meta has no
            code of its own for this; BSPs report it as the spam rate limit 131048
            ([3P] https://msg91.com/help/whatsapp/error-codes-for-whatsapp: "exceeded allowed conversation
            limits") and Twilio maps its tier error 63018 to Cloud/On-Prem rate-limit codes
            (https://www.twilio.com/docs/whatsapp/api/error-code-mapping). 131048 over 130429 because waiting
            seconds does not help: a slot frees when the oldest counted user is 24 h old (``retry_after_ms``).
10. 131049  a marketing template outside the window to a user who already got the per-user cap from all
            businesses in the last 24 h.
11. 131056  pair rate: this number is writing to this user too fast.
12. 130429  throughput: this number is sending too fast overall.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from cove.business import limits, optin, quality, tiers
from cove.business.errors import CloudApiError
from cove.business.optin import PairConsent, Refusal
from cove.business.quality import Quality, TemplateHealth, TemplateStatus
from cove.business.window import WindowState, free_form_allowed, window_state
from cove.limits.rules import Bucket
from cove.protocol.business import Category

TEMPLATE = "template"
# The Cloud API's message ``type`` values Cove carries (Meta's send-messages page).
SUPPORTED_TYPES = frozenset(
    {
        "text",
        "image",
        "video",
        "audio",
        "document",
        "sticker",
        "location",
        "contacts",
        "reaction",
        "interactive",
        TEMPLATE,
    }
)


@dataclass(frozen=True)
class SendRequest:
    user_id: str
    type: str  # the Cloud API ``type``: "text", "template", ...
    template_params: int = 0  # parameter values supplied (templates only)


@dataclass(frozen=True)
class TemplateState:
    """The requested template (name and language) as the registry and the quality loop see it."""

    category: Category
    param_count: int
    approved: bool = True
    quality: Quality = Quality.GREEN
    health: TemplateHealth = field(default_factory=TemplateHealth)


@dataclass(frozen=True)
class SendState:
    """Everything the decision reads, loaded by the caller; the scope of each field is in its comment."""

    recipient_is_user: bool = True
    consent: PairConsent = field(default_factory=PairConsent)  # this business × this user
    last_user_message_ms: int | None = None  # this user's last message or call to this business
    template: TemplateState | None = None  # None for a template send: not found in that language
    number_quality: Quality = Quality.GREEN  # the sending number's rating
    messaging_limit: int | None = tiers.LIMITS[tiers.Tier.T250]  # the portfolio's tier limit in force
    reached: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))  # portfolio: user -> last
    user_marketing_ms: tuple[int, ...] = ()  # marketing templates this user got, from every business
    marketing_holdout: bool = False  # this user is in the marketing experiment's holdout group
    throughput: Bucket | None = None  # the sending number's bucket
    throughput_mps: int = limits.DEFAULT_THROUGHPUT_MPS
    pair: Bucket | None = None  # this number × this user


@dataclass(frozen=True)
class Allowed:
    """A send that may go ahead, and what to store if it does."""

    window: WindowState
    category: Category | None  # None: a free-form (service) message
    throughput: Bucket
    pair: Bucket
    reached_at_ms: int | None  # set when sent outside a window: store ``reached[user_id] = reached_at_ms``
    user_marketing_ms: tuple[int, ...]  # the user's marketing log to store (pruned to the last 24 h)
    paced: bool  # accepted, but held back until early feedback on the template is in (cove.business.pacing)


def _template(request: SendRequest, template: TemplateState | None, now_ms: int) -> TemplateState | CloudApiError:
    """Step 3: the template as the registry holds it, or why it cannot be sent."""
    if template is None or not template.approved:
        return CloudApiError(132001)
    status = quality.status(template.health, now_ms)
    if status is TemplateStatus.DISABLED:
        return CloudApiError(132016)
    if status is TemplateStatus.PAUSED:
        return CloudApiError(132015, retry_after_ms=quality.paused_for_ms(template.health, now_ms))
    if request.template_params != template.param_count:
        return CloudApiError(
            132000, f"The template takes {template.param_count} parameters; {request.template_params} were given."
        )
    return template


def tier_refusal(limit: int | None, wait_ms: int) -> CloudApiError:
    """Step 9's answer, also given by the send path when the exact count refuses (:mod:`cove.business.reach`)."""
    return CloudApiError(
        131048,
        f"Messaging limit reached: {limit} unique users outside a customer service window in 24 hours.",
        retry_after_ms=wait_ms,
    )


def may_send(request: SendRequest, state: SendState, now_ms: int) -> Allowed | CloudApiError:
    """Apply the checks in the module's order; see there for each code and why it comes where it does."""
    if request.type not in SUPPORTED_TYPES:
        return CloudApiError(131051)
    if not state.recipient_is_user or state.consent.block is not None:
        return CloudApiError(131026)

    template: TemplateState | None = None
    if request.type == TEMPLATE:
        checked = _template(request, state.template, now_ms)
        if isinstance(checked, CloudApiError):
            return checked
        template = checked
    category = template.category if template is not None else None

    window = window_state(state.last_user_message_ms, now_ms)
    if template is None and not free_form_allowed(window):
        return CloudApiError(131047)
    refusal = optin.refusal(state.consent, category, window.open)  # BLOCKED was answered in step 2
    if refusal is Refusal.PROMOTIONS_STOPPED:
        return CloudApiError(131050)
    if refusal is Refusal.NO_OPT_IN:
        return CloudApiError(131026, f"No active {category} opt-in from this user is recorded for this business.")

    outside = not window.open
    marketing_outside = outside and category is Category.MARKETING
    if marketing_outside and state.marketing_holdout:
        return CloudApiError(130472)
    if marketing_outside and state.number_quality is Quality.RED:
        return CloudApiError(
            131048, "This number's quality rating is RED: marketing outside a service window is paused."
        )
    if outside:
        wait = tiers.room_for(state.reached, request.user_id, state.messaging_limit, now_ms)
        if wait is not None:
            return tier_refusal(state.messaging_limit, wait)
    marketing_log = limits.marketing_recent(state.user_marketing_ms, now_ms)
    if marketing_outside:
        wait = limits.marketing_wait(marketing_log, now_ms)
        if wait is not None:
            return CloudApiError(131049, retry_after_ms=wait)
        marketing_log = (*marketing_log, now_ms)

    pair = limits.spend(state.pair, limits.PAIR_LIMIT, now_ms)
    if pair.wait_ms is not None:
        return CloudApiError(131056, retry_after_ms=pair.wait_ms)
    throughput = limits.spend(state.throughput, limits.throughput_limit(state.throughput_mps), now_ms)
    if throughput.wait_ms is not None:
        return CloudApiError(130429, retry_after_ms=throughput.wait_ms)

    return Allowed(
        window=window,
        category=category,
        throughput=throughput.bucket,
        pair=pair.bucket,
        reached_at_ms=now_ms if outside else None,
        user_marketing_ms=marketing_log,
        paced=template is not None and quality.paced(template.category, template.quality, template.health, now_ms),
    )
