"""Token buckets: a pure rule (:func:`take`) and an in-process keyed store; and fixed windows (:func:`count`).

A bucket holds up to ``size`` permits and regains ``refill_per_second``; an action spends permits or is
refused with the seconds until it could succeed. A window allows ``count`` uses from its first use until
``window_seconds`` later, all of them at once if need be. Several relay processes would keep the same state
in Redis.
"""

from __future__ import annotations

import time
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
    """Spend ``cost`` permits. Returns the new bucket and 0, or the unchanged bucket and seconds to wait."""
    if bucket is None:
        bucket = Bucket(limit.size, now)
    tokens = min(limit.size, bucket.tokens + (now - bucket.updated_at) * limit.refill_per_second)
    if cost > limit.size:
        return Bucket(tokens, now), float("inf")
    if tokens >= cost:
        return Bucket(tokens - cost, now), 0.0
    return Bucket(tokens, now), (cost - tokens) / limit.refill_per_second


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


class RateLimiter:
    def __init__(self, name: str, limit: Limit, max_keys: int = 100_000) -> None:
        self.name = name
        self.limit = limit
        self._buckets: dict[str, Bucket] = {}
        self._max_keys = max_keys

    def check(self, key: str, cost: float = 1.0) -> None:
        """Spend permits for ``key`` or raise a 429 ``rate_limited`` error with ``Retry-After``."""
        now = time.monotonic()
        bucket, wait = take(self._buckets.get(key), self.limit, cost, now)
        if len(self._buckets) >= self._max_keys and key not in self._buckets:
            self._evict_full(now)
        self._buckets[key] = bucket
        if wait > 0:
            retry = int(wait) + 1 if wait != float("inf") else None
            err = ApiError(
                429,
                "rate_limited",
                f"too many {self.name} requests; "
                + (f"retry in {retry} s" if retry else "this request is larger than the limit allows"),
                retry_after=retry,
            )
            if retry:
                err.headers["Retry-After"] = str(retry)
            raise err

    def _evict_full(self, now: float) -> None:
        """Forget buckets that have refilled completely: they carry no information."""
        for key, bucket in list(self._buckets.items()):
            if bucket.tokens + (now - bucket.updated_at) * self.limit.refill_per_second >= self.limit.size:
                del self._buckets[key]
