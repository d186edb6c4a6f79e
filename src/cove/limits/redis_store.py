"""The limits of a fleet of relays, in Redis: each call one Lua script, so it is atomic across every process.

The scripts do :mod:`cove.limits.rules`'s arithmetic exactly (doubles in both, written back with 17
significant digits, which round-trip), all or nothing per call as :mod:`cove.limits.store` says. Each key
gets a TTL that ends when it would carry no information (a bucket full again, a window ended, a hold past its
time), so Redis holds only live state. Keys are ``PREFIX`` + the limit's name + a BLAKE2b digest of the
caller's key: a phone number, an address or an account id never reaches Redis as such, and any value is safe
in a key.

Time is the callers' clock (seconds as a float), passed in, so relays on several hosts must keep their clocks
in sync (NTP): a skew of ``d`` seconds lets a bucket refill ``d`` seconds early at most, and a clock behind
refills nothing (:func:`cove.limits.rules.take`). Every error and every answer slower than ``timeout``
becomes :class:`StoreUnavailable`; the caller decides whether that fails open or closed. One Redis (with
replicas if wanted) holds every key; a Redis Cluster would need hash tags for the multi-key scripts.
"""

from __future__ import annotations

import asyncio
import hashlib

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from cove.limits.store import Counted, Hold, Key, Spend, StoreUnavailable, Taken, Use

# KEYS: the buckets, then the hold's key if there is a hold.
# ARGV: now, the number of buckets, size refill cost per bucket; for a hold: at member cap period held, then the
# recorded events as member at pairs. Returns the hold's wait in ms (-1: none) and each bucket's wait in seconds.
_TAKE = """
local now, n = tonumber(ARGV[1]), tonumber(ARGV[2])
local ok, buckets, out = true, {}, {'-1'}
for i = 1, n do
  local size, rate, cost = tonumber(ARGV[3 * i]), tonumber(ARGV[3 * i + 1]), tonumber(ARGV[3 * i + 2])
  local saved = redis.call('HMGET', KEYS[i], 't', 'u')
  local tokens, updated = size, now
  if saved[1] then tokens, updated = tonumber(saved[1]), tonumber(saved[2]) end
  tokens = math.min(size, tokens + math.max(0, now - updated) * rate)
  updated = math.max(now, updated)
  local wait = '0'
  if cost > size then
    ok, wait = false, 'inf'
  elseif tokens >= cost then
    tokens = tokens - cost
  else
    ok, wait = false, string.format('%.17g', (cost - tokens) / rate)
  end
  buckets[i] = {tokens, updated, size, rate}
  out[i + 1] = wait
end
local hold = nil
if #KEYS > n then
  local h = 3 * n + 3
  local at, member, cap = tonumber(ARGV[h]), ARGV[h + 1], tonumber(ARGV[h + 2])
  local period, held = tonumber(ARGV[h + 3]), tonumber(ARGV[h + 4])
  redis.call('ZREMRANGEBYSCORE', KEYS[n + 1], '-inf', at - held)
  local events = {}
  local fresh = redis.call('ZRANGE', KEYS[n + 1], 0, -1, 'WITHSCORES')
  for j = 1, #fresh, 2 do events[fresh[j]] = tonumber(fresh[j + 1]) end
  for j = h + 5, #ARGV, 2 do events[ARGV[j]] = tonumber(ARGV[j + 1]) end
  local times = {}
  for _, t in pairs(events) do
    if at - period < t and t <= at then times[#times + 1] = t end
  end
  if #times >= cap then
    table.sort(times)
    ok, out[1] = false, string.format('%d', times[#times - cap + 1] + period - at)
  end
  hold = {KEYS[n + 1], at, member, held}
end
if ok then
  for i = 1, n do
    local b = buckets[i]
    local ttl = math.ceil((b[3] - b[1]) / b[4] * 1000)
    if ttl > 0 then
      redis.call('HSET', KEYS[i], 't', string.format('%.17g', b[1]), 'u', string.format('%.17g', b[2]))
      redis.call('PEXPIRE', KEYS[i], ttl)
    else
      redis.call('DEL', KEYS[i])
    end
  end
  if hold then
    redis.call('ZADD', hold[1], hold[2], hold[3])
    redis.call('PEXPIRE', hold[1], hold[4])
  end
end
return out
"""

# KEYS: the windows. ARGV: now, then count and seconds per window. Returns used and wait per window.
_COUNT = """
local now = tonumber(ARGV[1])
local ok, windows, out = true, {}, {}
for i = 1, #KEYS do
  local quota, length = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1])
  local saved = redis.call('HMGET', KEYS[i], 'n', 's')
  local used, started = 0, now
  if saved[1] and now - tonumber(saved[2]) < length then used, started = tonumber(saved[1]), tonumber(saved[2]) end
  local wait = '0'
  if used >= quota then
    ok, wait = false, string.format('%.17g', started + length - now)
  else
    used = used + 1
  end
  windows[i] = {used, started, length}
  out[2 * i - 1], out[2 * i] = tostring(used), wait
end
if ok then
  for i = 1, #KEYS do
    local w = windows[i]
    redis.call('HSET', KEYS[i], 'n', w[1], 's', string.format('%.17g', w[2]))
    redis.call('PEXPIRE', KEYS[i], math.max(1, math.ceil((w[2] + w[3] - now) * 1000)))
  end
end
return out
"""


class RedisStore:
    def __init__(self, url: str, prefix: str = "cove:", timeout: float = 0.1, max_connections: int = 64) -> None:
        # No retries: a limit answers within ``timeout`` or fails its way. The pool is bounded; a request waits
        # for a connection no longer than for an answer.
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=timeout,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )
        self._redis = Redis(connection_pool=pool)
        self._prefix = prefix
        self._timeout = timeout
        self._take = self._redis.register_script(_TAKE)
        self._count = self._redis.register_script(_COUNT)

    def key(self, key: Key) -> str:
        digest = hashlib.blake2b(key[1].encode(), digest_size=16).hexdigest()
        return f"{self._prefix}{key[0].replace(' ', '_')}:{digest}"

    async def take(self, spends: list[Spend], now: float, hold: Hold | None = None) -> Taken:
        keys = [self.key(s.key) for s in spends]
        args: list[str | int | float] = [repr(now), len(spends)]
        for s in spends:
            args += [repr(float(s.limit.size)), repr(float(s.limit.refill_per_second)), repr(float(s.cost))]
        if hold is not None:
            keys.append(self.key(hold.key))
            args += [hold.at, hold.member, hold.cap, hold.period, hold.held]
            for member, at in hold.recorded:
                args += [member, at]
        answer = await self._run(self._take, keys, args)
        held_wait = int(answer[0])
        return Taken(None if held_wait < 0 else held_wait, tuple(float(w) for w in answer[1:]))

    async def count(self, uses: list[Use], now: float) -> tuple[Counted, ...]:
        args: list[str | int | float] = [repr(now)]
        for u in uses:
            args += [u.quota.count, repr(float(u.quota.window_seconds))]
        answer = await self._run(self._count, [self.key(u.key) for u in uses], args)
        return tuple(Counted(int(answer[i]), float(answer[i + 1])) for i in range(0, len(answer), 2))

    async def _run(self, script, keys: list[str], args: list[str | int | float]) -> list[bytes]:  # noqa: ANN001
        try:
            # The socket timeout bounds each read; this bounds the whole call (a connection, a NOSCRIPT retry).
            async with asyncio.timeout(self._timeout * 3):
                return await script(keys=keys, args=args)
        except (RedisError, OSError, TimeoutError) as exc:
            raise StoreUnavailable(f"{type(exc).__name__}: {exc}") from exc

    async def aclose(self) -> None:
        await self._redis.aclose()
        await self._redis.connection_pool.disconnect()
