"""The graduated actions as pure rules: the steps, what each forbids, how they escalate and when they end.

Steps, mildest first (each forbids more than the one below it):

- ``throttle``: sends are paced by a tight per-account bucket, for ``throttle`` long (an hour by default);
- ``challenge``: nothing goes out until the account's device proves work (cove.protocol.challenge); it ends when
  an answer verifies, not with time;
- ``restrict``: one-to-one messages only to people who accept the account (contacts, people who wrote first),
  no group created or added to; it runs for ``restrict`` (24 h) or until an operator reviews it;
- ``ban``: the account's devices are logged out and the number refused (cove.safety.service.ban) until lifted.

A new action never lowers a step in force: taking a step at or below the highest one in force changes nothing.
Read receipts pass every step below ban: they carry nothing anyone could spam with, and holding them back
would only break the account's chats with its contacts. Actions record a reason code and a score, never content.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, IntEnum, StrEnum

from cove.activity import Action as Act
from cove.safety.verdicts import ReasonCode


class Step(IntEnum):
    THROTTLE = 1
    CHALLENGE = 2
    RESTRICT = 3
    BAN = 4

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def named(cls, label: str) -> Step:
        return cls[label.upper()]


class Source(StrEnum):
    RULE = "rule"  # the detector's rules
    MODEL = "model"  # the detector's model
    OPERATOR = "operator"  # a person, with `cove safety act`


class Review(StrEnum):
    """Where an action stands in the operator's queue."""

    NONE = "none"  # nobody needs to look: an operator's own action, a throttle, a challenge
    PENDING = "pending"  # an automatic restrict or ban waits for a person
    CONFIRMED = "confirmed"
    OVERTURNED = "overturned"


class Rule(Enum):
    """What a step does to one act."""

    ALLOW = "allow"
    METER = "meter"  # spend from the throttle's bucket
    PROVE = "prove"  # refuse until the challenge is solved
    ACCEPTED_ONLY = "accepted_only"  # only if the recipient accepts the sender
    REFUSE = "refuse"


@dataclass(frozen=True)
class Durations:
    throttle_ms: int
    restrict_ms: int


@dataclass(frozen=True)
class Taken:
    """One action on an account, as stored (cove.safety.actions_storage)."""

    id: int
    account_id: str
    step: Step
    reason: ReasonCode
    source: Source
    score: float | None
    created_at_ms: int
    expires_at_ms: int | None  # None: until solved (challenge) or lifted (ban)
    lifted_at_ms: int | None = None
    lifted_by: str | None = None  # "operator", "challenge solved", "appeal", "review"
    review: Review = Review.NONE

    def in_force(self, now_ms: int) -> bool:
        return self.lifted_at_ms is None and (self.expires_at_ms is None or now_ms < self.expires_at_ms)


def expiry(step: Step, now_ms: int, durations: Durations) -> int | None:
    if step is Step.THROTTLE:
        return now_ms + durations.throttle_ms
    if step is Step.RESTRICT:
        return now_ms + durations.restrict_ms
    return None


def review_of(step: Step, source: Source) -> Review:
    """Automatic restricts and bans wait for a person; a person's own action, and the milder steps, do not."""
    if source is not Source.OPERATOR and step >= Step.RESTRICT:
        return Review.PENDING
    return Review.NONE


def highest(actions: list[Taken] | tuple[Taken, ...], now_ms: int) -> Taken | None:
    """The action in force with the highest step (the latest of equals), or ``None``."""
    live = [a for a in actions if a.in_force(now_ms)]
    return max(live, key=lambda a: (a.step, a.created_at_ms, a.id)) if live else None


def raises(current: Taken | None, step: Step) -> bool:
    """Whether taking ``step`` changes anything: never lower or repeat a step in force."""
    return current is None or step > current.step


def rule(step: Step, act: Act, receipt: bool) -> Rule:
    if step is Step.BAN:
        return Rule.REFUSE
    if receipt:
        return Rule.ALLOW
    if step is Step.THROTTLE:
        return Rule.METER
    if step is Step.CHALLENGE:
        return Rule.PROVE
    if act is Act.MESSAGE:
        return Rule.ACCEPTED_ONLY
    if act in (Act.GROUP_CREATE, Act.GROUP_ADD):
        return Rule.REFUSE
    return Rule.ALLOW  # a restricted account still talks in the groups it is already in
