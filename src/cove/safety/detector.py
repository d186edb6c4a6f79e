"""The process's detector: it counts every act as it happens, and scores the accounts that acted in small batches
off the send path.

On a send it only updates the sender's counters and marks the account dirty (a few microseconds, no I/O). At
most every ``COVE_SAFETY_SCORE_INTERVAL_MS`` a task takes up to ``COVE_SAFETY_SCORE_BATCH`` dirty accounts, turns
their counters into features, runs the rules and the model on them together, and decides a step for each: the
higher of the rule that fired and the step whose score threshold the model reached (businesses have their own
thresholds). A step is asked for only when it is higher than the one the detector asked for before, and then
handed to ``act`` (the action ladder, cove.safety.actions), or nowhere when automatic actions are off.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from cove.activity import Action, Outbound
from cove.clock import now_ms
from cove.config import Settings
from cove.safety import rules
from cove.safety.counters import Counters
from cove.safety.features import FEATURES, vector
from cove.safety.model import Model, load
from cove.safety.signals import Signal
from cove.safety.verdicts import ReasonCode

if TYPE_CHECKING:
    from cove.context import Relay

log = logging.getLogger("cove.safety")


@dataclass(frozen=True, slots=True)
class Decision:
    account_id: str
    step: str
    reason: ReasonCode
    source: str  # "rule" or "model"
    score: float  # the model's score (NaN without a model)


Act = Callable[[Decision], Awaitable[None]]


# The reason a model's decision gives, from the feature that weighed most in its score; SPAM otherwise.
_GROUPS = ("groups_created_1h", "groups_created_1d", "members_added_1h", "members_added_1d")
_COMPLAINTS = ("blocks", "reports", "complaints_per_stranger")
_VOLUME = ("sends_15s", "sends_1h", "sends_1d", "burst_max_1h", "burst_max_1d", "five_minutes_max_1d", "sends")
_VOLUME += ("hour_share_1d", "five_minutes_share_1d")
_FAN_OUT = ("deliveries_1h", "deliveries_1d", "new_recipients_1h", "new_recipients_1d", "strangers_1h")
_FAN_OUT += ("strangers_1d", "recipients", "stranger_share", "unanswered_share", "stranger_rate_1h")
_FAN_OUT += ("stranger_rate_1d", "new_recipient_rate_1d", "sends_per_recipient")
REASONS = {
    **dict.fromkeys(_GROUPS, ReasonCode.MANY_GROUPS),
    **dict.fromkeys(_COMPLAINTS, ReasonCode.REPORTED_BY_USERS),
    **dict.fromkeys(_VOLUME, ReasonCode.BULK_MESSAGING),
    **dict.fromkeys(_FAN_OUT, ReasonCode.UNSOLICITED_FAN_OUT),
}


def model_step(score: float, thresholds: Mapping[str, float]) -> str | None:
    """The highest step whose threshold the score reaches."""
    step = None
    for name in rules.STEPS:
        if name in thresholds and score >= thresholds[name]:
            step = name
    return step


def decide(
    account_id: str, features: Sequence[float], score: float, thresholds: Mapping[str, float]
) -> Decision | None:
    """The step for one account from its features and its model score (NaN: no model), or ``None``."""
    rule = rules.matched(features)
    by_model = None if math.isnan(score) else model_step(score, thresholds)
    if rule is not None and (by_model is None or rules.RANK[rule.step] >= rules.RANK[by_model]):
        return Decision(account_id, rule.step, rule.reason, "rule", score)
    if by_model is not None:
        return Decision(account_id, by_model, ReasonCode.SPAM, "model", score)
    return None


class Detector:
    def __init__(
        self,
        counters: Counters,
        model: Model | None,
        thresholds: Mapping[str, float],
        business_thresholds: Mapping[str, float],
        *,
        interval_ms: int = 1000,
        batch: int = 1024,
        act: Act | None = None,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.counters = counters
        self.model = model
        self.thresholds = thresholds
        self.business_thresholds = business_thresholds
        self.interval_ms = interval_ms
        self.batch = batch
        self.act = act
        self.clock = clock
        # Accounts whose counters changed since they were last scored, oldest first. Never more than the
        # counters hold: an id is added only for an account just counted.
        self.dirty: dict[str, None] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None

    def observe(self, outbound: Outbound) -> None:
        """Count one act (the outbound check calls this on every send; it never refuses and never waits)."""
        account = self.counters.observe(outbound)
        if account is not None:
            self._mark(account.account_id)

    async def check(self, relay: Relay, outbound: Outbound) -> None:
        """The outbound check (cove.activity): count, never refuse."""
        self.observe(outbound)

    def hear(self, signal: Signal) -> None:
        account = self.counters.signal(signal)
        if account is not None:
            self._mark(account.account_id)

    def _mark(self, account_id: str) -> None:
        self.dirty[account_id] = None
        if len(self.dirty) > self.counters.max_accounts:
            del self.dirty[next(iter(self.dirty))]
        if self._timer is None and self._task is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return  # counted outside a relay (training, a benchmark): score_dirty is called directly
            self._timer = loop.call_later(self.interval_ms / 1000, self._start)

    def _start(self) -> None:
        self._timer = None
        self._task = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        try:
            for decision in self.score_dirty(self.clock()):
                if self.act is None:
                    continue
                try:
                    await self.act(decision)
                except Exception as e:  # one account's failure must not stop the others' actions
                    log.warning("safety action %s on %s failed: %s", decision.step, decision.account_id, e)
        finally:
            self._task = None
            if self.dirty:
                self._timer = asyncio.get_running_loop().call_later(self.interval_ms / 1000, self._start)

    def score_dirty(self, now: int) -> list[Decision]:
        """Score up to one batch of the accounts that changed; the decisions that raise an account's step."""
        ids = []
        while self.dirty and len(ids) < self.batch:
            account_id = next(iter(self.dirty))
            del self.dirty[account_id]
            ids.append(account_id)
        accounts = [a for a in map(self.counters.get, ids) if a is not None]
        if not accounts:
            return []
        rows = np.array([vector(a, now) for a in accounts], dtype=np.float64)
        scores = self.model.score(rows) if self.model is not None else np.full(len(accounts), np.nan)
        business = FEATURES.index("business")
        decisions = []
        for account, row, score in zip(accounts, rows, scores, strict=True):
            thresholds = self.business_thresholds if row[business] else self.thresholds
            decision = decide(account.account_id, row, float(score), thresholds)
            if decision is None:
                continue
            if account.step is not None and rules.RANK[decision.step] <= rules.RANK[account.step]:
                continue
            account.step = decision.step
            decisions.append(decision)
        return self._explained(decisions, rows, [a.account_id for a in accounts])

    def _explained(self, decisions: list[Decision], rows: np.ndarray, ids: list[str]) -> list[Decision]:
        """The model's decisions with the reason its strongest feature gives (computed for those rows only)."""
        by_model = [i for i, d in enumerate(decisions) if d.source == "model"]
        if not by_model or self.model is None:
            return decisions
        position = {account_id: i for i, account_id in enumerate(ids)}
        strongest = self.model.strongest(rows[[position[decisions[i].account_id] for i in by_model]])
        for i, feature in zip(by_model, strongest, strict=True):
            decisions[i] = replace(decisions[i], reason=REASONS.get(feature, ReasonCode.SPAM))
        return decisions

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def from_settings(settings: Settings, act: Act | None) -> Detector:
    return Detector(
        Counters(settings.safety_detector_accounts, settings.safety_detector_peers),
        load(settings.safety_model_path),
        settings.safety_thresholds,
        settings.safety_business_thresholds,
        interval_ms=settings.safety_score_interval_ms,
        batch=settings.safety_score_batch,
        act=act,
    )


def observe_cost_ms(sends: int = 200_000, accounts: int = 2_000, peers_each: int = 50) -> float:
    """CPU milliseconds one ``Detector.observe`` takes, over a stream of one-to-one sends between ``accounts``
    accounts each writing to ``peers_each`` peers (for bench/safety.py)."""
    detector = Detector(Counters(max_accounts=accounts * 2, max_peers=256), None, {}, {})
    start_ms = 1_700_000_000_000
    stream = [
        Outbound(
            Action.MESSAGE,
            f"account-{i % accounts}",
            1,
            False,
            f"account-{(i + 1 + (i // accounts) % peers_each) % accounts}",
            (),
            1,
            start_ms + i * 5,
        )
        for i in range(sends)
    ]
    started = time.process_time()
    for outbound in stream:
        detector.observe(outbound)
    return (time.process_time() - started) * 1000 / sends
