"""Messaging tiers: how many unique users a business may reach outside a service window in a moving 24 h.

Counting ([M] https://developers.facebook.com/documentation/business-messaging/whatsapp/messaging-limits): a user counts
once however many messages they get, only for messages sent outside a customer service window, and only while the last
such message is less than 24 h old. Replies inside a window the user opened never count. Limits are per business
portfolio, shared by all its numbers, so the caller keeps one ``reached`` map per portfolio.

Tier moves (Meta publishes the gates only loosely, so Cove's reading is written down):
- 250 → 2,000 takes business verification (the "verification path" of the current portfolio tiers) and a
  quality that is not RED; the usage-only path is not modelled, so an unverified business stays at 250.
- Above that, one tier up when the unique users reached outside windows, summed over the days since the last
  move within the last 7, reach half the current limit and today's quality is not RED (the legacy rule
  "up after using ≥½ the limit in 7 days at Medium/High quality", with its worked example at
  https://help.buraq.ai/whatsapp-business-api/limitations summing daily counts).
- One tier down after 7 consecutive days at RED since the last move (legacy "down one tier after 7 days at
  Low"), never below 250. Only days after the last move count, so one bad week moves a business one tier,
  not one tier a day.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum

from cove.business.quality import Quality
from cove.business.window import WINDOW_MS

COUNTING_PERIOD_MS = WINDOW_MS  # "a moving 24 h" (messaging-limits), the same length as the service window
EVALUATION_DAYS = 7  # the legacy rule below: usage "in 7 days" up, "7 days at Low" down
UPGRADE_USAGE_SHARE = 0.5  # the legacy rule below: "using ≥½ the limit"


class Tier(IntEnum):
    """Ordered so that up and down are +1 and -1."""

    T250 = 0
    T2K = 1
    T10K = 2
    T100K = 3
    UNLIMITED = 4


LIMITS: Mapping[Tier, int | None] = {  # messaging-limits: the current tiers, per business portfolio
    Tier.T250: 250,
    Tier.T2K: 2_000,
    Tier.T10K: 10_000,
    Tier.T100K: 100_000,
    Tier.UNLIMITED: None,
}


@dataclass(frozen=True)
class DayRecord:
    day: int  # days since the epoch (``ms // window.DAY_MS``)
    unique_users: int  # unique users reached outside a service window that day
    quality: Quality  # the business's rating at the end of that day


@dataclass(frozen=True)
class TierState:
    tier: Tier
    changed_on_day: int  # the day of the last move (or of the business's creation)


def counted(reached: Mapping[str, int], now_ms: int) -> frozenset[str]:
    """Users still counting against the limit: ``reached`` maps a user to the last time the business reached
    them outside a window."""
    return frozenset(user for user, at in reached.items() if now_ms - COUNTING_PERIOD_MS < at <= now_ms)


def room_for(reached: Mapping[str, int], user_id: str, limit: int | None, now_ms: int) -> int | None:
    """None if reaching ``user_id`` now keeps within ``limit``; otherwise ms until the oldest counted user
    stops counting. A user already counted costs nothing: the same user twice counts once."""
    users = counted(reached, now_ms)
    if limit is None or user_id in users or len(users) < limit:
        return None
    oldest = min(reached[user] for user in users)
    return oldest + COUNTING_PERIOD_MS - now_ms


def evaluate(state: TierState, history: Sequence[DayRecord], today: int, verified: bool) -> TierState:
    """The tier after today's evaluation: at most one step, up or down (see the module docstring).

    ``history`` holds at most one record per day (a later record for the same day wins); days without a
    record are days without RED and without usage.
    """
    known = {r.day: r for r in history if r.day <= today}
    since = max(today - EVALUATION_DAYS + 1, state.changed_on_day + 1)
    days = [known[d] for d in range(since, today + 1) if d in known]
    all_red = len(days) == EVALUATION_DAYS and all(r.quality is Quality.RED for r in days)
    if all_red and state.tier > Tier.T250:
        return TierState(Tier(state.tier - 1), today)
    now_red = bool(known) and known[max(known)].quality is Quality.RED
    limit = LIMITS[state.tier]
    if limit is None or now_red:
        return state
    if state.tier is Tier.T250:
        return TierState(Tier.T2K, today) if verified else state
    if sum(r.unique_users for r in days) >= limit * UPGRADE_USAGE_SHARE:
        return TierState(Tier(state.tier + 1), today)
    return state
