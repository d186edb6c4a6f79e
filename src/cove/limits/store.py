"""Where limits keep their state: the :class:`Store` interface, and :class:`MemoryStore`, this process's own.

A store applies the pure rules of :mod:`cove.limits.rules` to the state it keeps, all or nothing per call:
if one limit of a call refuses, nothing is spent in any (a business send spends its pair and throughput buckets
and holds a marketing slot together, or none of them). :class:`~cove.limits.redis_store.RedisStore` does the
same in Redis scripts, shared by a fleet of relays; this one serves a single relay, and stands in for Redis
while it is away for the limits that fail open.

Every entry expires once it carries no more information than a missing one (a bucket full again, a window
ended, a hold past its time): in Redis by a TTL, here by the same times, so both stores keep only live state.
Here each limit keeps at most ``max_keys`` entries; past that the ones that expired go, then the oldest.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Protocol

from cove.limits.rules import Bucket, Limit, Quota, Window, cap_wait, count, seconds_to_full, take

Key = tuple[str, str]  # (the limit's name, the caller's key: an account, a number, an address...)


@dataclass(frozen=True)
class Spend:
    key: Key
    limit: Limit
    cost: float = 1.0


@dataclass(frozen=True)
class Use:
    key: Key
    quota: Quota


@dataclass(frozen=True)
class Hold:
    """One more event (at ``at`` ms) to count against a sliding cap, with the events that another store (the
    database) has ``recorded``. A hold counts for ``held`` ms, by when its event is recorded or has failed;
    members name events, so one both held and recorded counts once."""

    key: Key
    member: str
    at: int
    recorded: tuple[tuple[str, int], ...]
    cap: int
    period: int
    held: int


@dataclass(frozen=True)
class Taken:
    held_wait: int | None  # ms until the hold could be taken; None if it was (or there was none)
    waits: tuple[float, ...]  # seconds until each spend could succeed; all 0 when they were spent

    @property
    def ok(self) -> bool:
        return self.held_wait is None and not any(self.waits)


@dataclass(frozen=True)
class Counted:
    used: int  # uses in the window, with this one if it was counted
    wait: float  # seconds until the window ends if it refused; else 0


class StoreUnavailable(Exception):
    """The store did not answer in time or at all (Redis down, slow, or refusing)."""


class Store(Protocol):
    async def take(self, spends: list[Spend], now: float, hold: Hold | None = None) -> Taken: ...

    async def count(self, uses: list[Use], now: float) -> tuple[Counted, ...]: ...

    async def aclose(self) -> None: ...


class MemoryStore:
    """This process's limits. Each call runs without an await, so concurrent requests cannot both spend the
    same permit."""

    def __init__(self, max_keys: int = 200_000) -> None:
        self._max_keys = max_keys
        self._limits: dict[str, OrderedDict[str, tuple[Any, float]]] = {}

    async def take(self, spends: list[Spend], now: float, hold: Hold | None = None) -> Taken:
        taken = [take(self._get(s.key, now), s.limit, s.cost, now) for s in spends]
        held_wait = None
        if hold is not None:
            events = {**self._held(hold, now), **dict(hold.recorded)}
            held_wait = cap_wait(events.values(), hold.cap, hold.period, hold.at)
        result = Taken(held_wait, tuple(wait for _, wait in taken))
        if result.ok:
            for spend, (bucket, _) in zip(spends, taken, strict=True):
                self._put(spend.key, bucket, now + seconds_to_full(bucket, spend.limit), now)
            if hold is not None:
                self._put(hold.key, {**self._held(hold, now), hold.member: hold.at}, now + hold.held / 1000, now)
        return result

    async def count(self, uses: list[Use], now: float) -> tuple[Counted, ...]:
        counted = [count(self._get(u.key, now), u.quota, now) for u in uses]
        if not any(wait for _, wait in counted):
            for use, (window, _) in zip(uses, counted, strict=True):
                self._put(use.key, window, window.started_at + use.quota.window_seconds, now)
        return tuple(Counted(window.used, wait) for window, wait in counted)

    async def aclose(self) -> None:
        self._limits.clear()

    def _held(self, hold: Hold, now: float) -> dict[str, int]:
        held: dict[str, int] = self._get(hold.key, now) or {}
        return {member: at for member, at in held.items() if hold.at - at < hold.held}

    def _get(self, key: Key, now: float) -> Any:
        entries = self._limits.get(key[0])
        entry = entries.get(key[1]) if entries is not None else None
        if entry is None or entry[1] <= now:
            return None
        return entry[0]

    def _put(self, key: Key, value: Bucket | Window | dict[str, int], expires_at: float, now: float) -> None:
        entries = self._limits.setdefault(key[0], OrderedDict())
        if expires_at <= now:
            entries.pop(key[1], None)
            return
        entries[key[1]] = (value, expires_at)
        entries.move_to_end(key[1])
        if len(entries) > self._max_keys:
            for name in [name for name, (_, expires) in entries.items() if expires <= now]:
                del entries[name]
            # Still full of live state: drop the least recently used tenth at once, not one key per call.
            while len(entries) > self._max_keys * 9 // 10:
                entries.popitem(last=False)
