"""Volume limits on business sends: throughput per number, pair rate per user, a marketing cap per user.

Throughput and pair rate are token buckets, so they reuse :func:`cove.limits.rules.take` (already pure:
the caller passes the bucket and the time). It counts time in float seconds; these wrappers take and give
integer milliseconds, the relay's clock unit, and leave the bucket itself in ``take``'s own form so a stored
bucket means the same thing everywhere. The marketing cap is "at most N in any 24 h", a sliding count that a
refilling bucket only approximates, so it keeps the delivery times themselves. The sizes are rows of the
relay's one table of limits, :mod:`cove.limits.table`, which cites their sources.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from cove.limits.rules import Bucket, Limit, cap_wait, recent, take
from cove.limits.table import DEFAULT_THROUGHPUT_MPS, MARKETING_CAP_PER_USER, MARKETING_CAP_PERIOD_MS
from cove.limits.table import PAIR_BURST as PAIR_BURST  # the decision and its tests name them from here
from cove.limits.table import PAIR_LIMIT as PAIR_LIMIT


def throughput_limit(mps: int = DEFAULT_THROUGHPUT_MPS) -> Limit:
    """A number may send ``mps`` messages in any second, and no burst beyond one second's worth."""
    if mps < 1:
        raise ValueError("throughput must be at least 1 message per second")
    return Limit(size=mps, refill_per_second=mps)


@dataclass(frozen=True)
class Spent:
    bucket: Bucket  # store this if the send goes ahead
    wait_ms: int | None  # None: allowed; otherwise ms until it would be


def spend(bucket: Bucket | None, limit: Limit, now_ms: int) -> Spent:
    """One permit from ``bucket`` at ``now_ms`` (a missing bucket is a full one)."""
    after, wait = take(bucket, limit, 1.0, now_ms / 1000)
    return Spent(after, None if wait == 0 else math.ceil(wait * 1000))


def marketing_recent(deliveries_ms: Sequence[int], now_ms: int) -> tuple[int, ...]:
    """The marketing deliveries to one user (from any business) that still count at ``now_ms``."""
    return recent(deliveries_ms, MARKETING_CAP_PERIOD_MS, now_ms)


def marketing_wait(deliveries_ms: Sequence[int], now_ms: int) -> int | None:
    """None if one more marketing template may reach this user now; otherwise ms until one may."""
    return cap_wait(deliveries_ms, MARKETING_CAP_PER_USER, MARKETING_CAP_PERIOD_MS, now_ms)
