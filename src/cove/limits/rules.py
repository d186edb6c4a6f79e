"""The pure rules of every limit: token buckets (:func:`take`), fixed windows (:func:`count`) and sliding caps
(:func:`cap_wait`); and the refusal a caller gets.

A bucket holds up to ``size`` permits and regains ``refill_per_second``; an action spends permits or is
refused with the seconds until it could succeed. A window allows ``count`` uses from its first use until
``window_seconds`` later, all of them at once if need be. A cap allows ``count`` events in any ``period``.
Where the state lives (this process or Redis) is :mod:`cove.limits.store`'s business; the Redis scripts
in :mod:`cove.limits.redis_store` do exactly this arithmetic (``tests/test_limits_redis.py`` compares them).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from cove.errors import ApiError


@dataclass(frozen=True)
class Bucket:
    tokens: float
    updated_at: float


@dataclass(frozen=True)
class Limit:
    size: float
    refill_per_second: float


def take(bucket: Bucket | None, limit: Limit, cost: float, now: float) -> tuple[Bucket, float]:
    """Spend ``cost`` permits. Returns the new bucket and 0, or the bucket refilled to ``now`` and seconds to wait.

    Relays on several hosts share buckets, so ``now`` may lag a bucket's last update by their clocks' skew: such
    a ``now`` refills nothing and does not move the bucket back in time."""
    if bucket is None:
        bucket = Bucket(limit.size, now)
    tokens = min(limit.size, bucket.tokens + max(0.0, now - bucket.updated_at) * limit.refill_per_second)
    updated_at = max(now, bucket.updated_at)
    if cost > limit.size:
        return Bucket(tokens, updated_at), float("inf")
    if tokens >= cost:
        return Bucket(tokens - cost, updated_at), 0.0
    return Bucket(tokens, updated_at), (cost - tokens) / limit.refill_per_second


def seconds_to_full(bucket: Bucket, limit: Limit) -> float:
    """How long until ``bucket`` is full again, when it carries no more information than a missing one."""
    return (limit.size - bucket.tokens) / limit.refill_per_second


@dataclass(frozen=True)
class Quota:
    count: int
    window_seconds: float


@dataclass(frozen=True)
class Window:
    used: int
    started_at: float


def count(window: Window | None, quota: Quota, now: float) -> tuple[Window, float]:
    """Count one use. Returns the window with it counted and 0, or the window as it is and the seconds until
    it ends (a new window starts with the first use after that)."""
    if window is None or now - window.started_at >= quota.window_seconds:
        window = Window(0, now)
    if window.used >= quota.count:
        return window, window.started_at + quota.window_seconds - now
    return Window(window.used + 1, window.started_at), 0.0


def recent(times: Iterable[int], period: int, now: int) -> tuple[int, ...]:
    """The events of ``times`` that still count at ``now`` against a cap over ``period`` (same unit), oldest first."""
    return tuple(sorted(t for t in times if now - period < t <= now))


def cap_wait(times: Iterable[int], cap: int, period: int, now: int) -> int | None:
    """None if one more event may happen at ``now`` with at most ``cap`` in any ``period``; otherwise how long
    until one may (in the unit of the times)."""
    counted = recent(times, period, now)
    if len(counted) < cap:
        return None
    return counted[-cap] + period - now


def rate_limited(what: str, wait: float) -> ApiError:
    """The 429 ``rate_limited`` refusal of a bucket, with ``Retry-After`` unless no wait would help."""
    retry = int(wait) + 1 if wait != float("inf") else None
    err = ApiError(
        429,
        "rate_limited",
        f"too many {what} requests; "
        + (f"retry in {retry} s" if retry else "this request is larger than the limit allows"),
        retry_after=retry,
    )
    if retry:
        err.headers["Retry-After"] = str(retry)
    return err


def limiter_unavailable(what: str) -> ApiError:
    """The 503 of a limit that fails closed while its shared store cannot be reached."""
    err = ApiError(
        503,
        "limiter_unavailable",
        f"the fleet-wide {what} limit cannot be checked right now (its store is unreachable); retry shortly",
        retry_after=1,
    )
    err.headers["Retry-After"] = "1"
    return err
