"""The relay's limits as its services use them: :class:`Limits` keeps the state in Redis when a fleet shares
it (``COVE_REDIS_URL``), or in this process, and applies each limit's fail mode from the table
(:mod:`cove.limits.table`) when Redis cannot be reached.

Once Redis has failed, it is left alone for :data:`REST_SECONDS`, so an outage costs each request nothing but
the fallback (this process's store for a limit that fails open, a 503 for one that fails closed) rather than
a timeout. Warnings are logged at most every :data:`WARN_EVERY_SECONDS`, with how many checks went without
Redis since the last one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TypeVar

from cove.clock import now_ms
from cove.config import Settings
from cove.limits.rules import Limit, limiter_unavailable, rate_limited
from cove.limits.store import Counted, Hold, MemoryStore, Spend, Store, StoreUnavailable, Taken, Use
from cove.limits.table import Fails, Limiter, Rule, table

log = logging.getLogger("cove.limits")

REST_SECONDS = 1.0
WARN_EVERY_SECONDS = 10.0
_T = TypeVar("_T")


def wall_clock() -> float:
    return now_ms() / 1000


class Limits:
    def __init__(
        self,
        rules: Mapping[Limiter, Rule],
        shared: Store | None = None,
        clock: Callable[[], float] = wall_clock,
        rest_seconds: float = REST_SECONDS,
    ) -> None:
        self.rules = rules
        self._rest_seconds = rest_seconds
        self._shared = shared
        self._local = MemoryStore()
        self.clock = clock
        self._resting_until = 0.0
        self._down = False
        self._without_shared = 0  # checks that went without Redis since the last warning
        self._warned_at = -WARN_EVERY_SECONDS

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        shared = None
        if settings.redis_url:
            from cove.limits.redis_store import RedisStore  # only a fleet needs the Redis client

            shared = RedisStore(settings.redis_url, settings.redis_prefix, settings.redis_timeout_seconds)
        return cls(table(settings), shared)

    async def check(self, limiter: Limiter, key: str, cost: float = 1.0) -> None:
        """Spend ``cost`` from ``key``'s bucket of ``limiter``, or raise 429 ``rate_limited`` with Retry-After."""
        limit = self.rules[limiter].size
        assert isinstance(limit, Limit)
        taken = await self.take([Spend((limiter, key), limit, cost)])
        if not taken.ok:
            raise rate_limited(limiter.value, taken.waits[0])

    async def take(self, spends: list[Spend], hold: Hold | None = None, now: float | None = None) -> Taken:
        """Spend from buckets and take a hold, all or none (:meth:`cove.limits.store.Store.take`)."""
        at = self.clock() if now is None else now
        names = [s.key[0] for s in spends] + ([hold.key[0]] if hold else [])
        return await self._in_store(names, lambda store: store.take(spends, at, hold))

    async def count(self, uses: list[Use]) -> tuple[Counted, ...]:
        """Count one use in each window, in all or none (:meth:`cove.limits.store.Store.count`)."""
        now = self.clock()
        return await self._in_store([u.key[0] for u in uses], lambda store: store.count(uses, now))

    async def _in_store(self, names: Iterable[str], call: Callable[[Store], Awaitable[_T]]) -> _T:
        if self._shared is None:
            return await call(self._local)
        if time.monotonic() >= self._resting_until:
            try:
                answer = await call(self._shared)
            except StoreUnavailable as exc:
                self._resting_until = time.monotonic() + self._rest_seconds
                self._went_without(str(exc))
            else:
                if self._down:
                    log.warning("the limit store answers again: limits are fleet-wide again")
                    self._down, self._without_shared, self._warned_at = False, 0, -WARN_EVERY_SECONDS
                return answer
        else:
            self._went_without(None)
        closed = [n for n in names if self.rules[Limiter(n)].fails is Fails.CLOSED]
        if closed:
            raise limiter_unavailable(closed[0])
        return await call(self._local)

    def _went_without(self, error: str | None) -> None:
        self._down = True
        self._without_shared += 1
        if time.monotonic() - self._warned_at < WARN_EVERY_SECONDS:
            return
        self._warned_at = time.monotonic()
        log.warning(
            "the limit store (Redis) is unreachable%s: %d checks since the last warning were kept in this process "
            "(limits that fail open) or refused with 503 (closed)",
            f" ({error})" if error else "",
            self._without_shared,
        )
        self._without_shared = 0

    async def aclose(self) -> None:
        if self._shared is not None:
            await self._shared.aclose()
