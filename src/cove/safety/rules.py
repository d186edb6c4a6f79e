"""Rules for the obvious cases, which need no model: each names the step it asks for and the reason code.

WhatsApp's example sets the scale: "an account registered five minutes before attempting to send 100 messages in
15 seconds is almost certain to be engaged in abuse" ("Stopping Abuse", 2019), likewise dozens of groups or
thousands of adds. A burst rule alone harms businesses (a rule of 15 messages in 15 s flagged 37 % of small
businesses in a measured simulation, docs/safety.md), so businesses, whose users opted in, get their own limits.
Accounts of unknown age (registered before this process started) never meet a rule about new accounts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from cove.safety.features import INDEX
from cove.safety.verdicts import ReasonCode

STEPS = ("throttle", "challenge", "restrict", "ban")  # mildest first
RANK = {step: i for i, step in enumerate(STEPS)}


@dataclass(frozen=True)
class Limits:
    """What one kind of account (person or business) may do before a rule fires."""

    new_account_hours: float
    new_account_burst: int  # messages in 15 s from an account younger than new_account_hours
    burst: int  # messages in 15 s from any account
    groups: int  # groups created in an hour
    adds: int  # members added to groups in an hour
    reports: float  # reports from strangers, weighted by the reporters' reliability
    blocks: float  # blocks by strangers, weighted alike


PERSON = Limits(new_account_hours=1.0, new_account_burst=100, burst=60, groups=20, adds=1000, reports=5.0, blocks=8.0)
# A business answers many customers at once through the gateway, and more people block a shop than a friend.
BUSINESS = Limits(
    new_account_hours=1.0, new_account_burst=400, burst=300, groups=20, adds=1000, reports=10.0, blocks=20.0
)


@dataclass(frozen=True)
class Rule:
    name: str
    step: str
    reason: ReasonCode
    feature: str  # fires when this feature reaches
    limit: str  # ... this field of Limits
    new_accounts_only: bool = False

    def fires(self, features: Sequence[float], limits: Limits) -> bool:
        if features[INDEX[self.feature]] < getattr(limits, self.limit):
            return False
        if not self.new_accounts_only:
            return True
        age = features[INDEX["age_hours"]]
        return not math.isnan(age) and age < limits.new_account_hours


RULES: tuple[Rule, ...] = (
    Rule("burst_from_new_account", "ban", ReasonCode.BURST_FROM_NEW_ACCOUNT, "burst_max_1h", "new_account_burst", True),
    Rule("burst", "throttle", ReasonCode.BULK_MESSAGING, "burst_max_1h", "burst"),
    Rule("many_groups", "restrict", ReasonCode.MANY_GROUPS, "groups_created_1h", "groups"),
    Rule("many_adds", "restrict", ReasonCode.MANY_GROUPS, "members_added_1h", "adds"),
    Rule("reported", "restrict", ReasonCode.REPORTED_BY_USERS, "reports", "reports"),
    Rule("blocked", "challenge", ReasonCode.REPORTED_BY_USERS, "blocks", "blocks"),
)


def matched(features: Sequence[float]) -> Rule | None:
    """The firing rule with the highest step (the first listed of equals), or ``None``."""
    limits = BUSINESS if features[INDEX["business"]] else PERSON
    best: Rule | None = None
    for rule in RULES:
        if rule.fires(features, limits) and (best is None or RANK[rule.step] > RANK[best.step]):
            best = rule
    return best
