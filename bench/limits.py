"""What a limit check costs: this process's store against Redis, one check at a time and many at once.

    .venv/bin/python bench/limits.py                          # Redis at redis://127.0.0.1:6379/0
    .venv/bin/python bench/limits.py --redis-url redis://host:6379/0 --checks 20000

Three calls, as the relay makes them (cove.limits.limiters.Limits):

bucket     one token bucket (key fetch, contact discovery, PIN change)
codes      a code request: four fixed windows counted all or nothing (cove.accounts.code_limits)
business   a business send: pair and throughput buckets and a marketing hold, all or nothing (one script)

For each: wall µs per check one at a time (the latency a request pays), checks/s with ``--concurrency`` checks
in flight, and this process's CPU µs per check (the relay's share; Redis's own CPU is read from its INFO).
Keys are spread over ``--keys`` callers so refusals are rare, as in normal traffic; the namespace is deleted
afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable

import redis

from cove.config import Settings
from cove.limits.limiters import Limits
from cove.limits.redis_store import RedisStore
from cove.limits.rules import Limit, Quota
from cove.limits.store import Hold, Spend, Use
from cove.limits.table import IN_FLIGHT_MS, Limiter, table

BIG = Limit(1e12, 1e9)  # never refuses: the bench measures the check, not the refusal


def calls(limits: Limits, keys: int) -> dict[str, Callable[[int], Awaitable[object]]]:
    window = Quota(10**9, 3600)

    async def bucket(i: int) -> object:
        return await limits.take([Spend((Limiter.KEY_FETCH, f"account-{i % keys}"), BIG)])

    async def codes(i: int) -> object:
        names = (Limiter.CODE_NUMBER, Limiter.CODE_SOURCE, Limiter.CODE_RANGE, Limiter.CODE_OVERALL)
        keys_ = (f"+1415555{i % keys:04d}|198.51.100.{i % 250}", f"198.51.100.{i % 250}", f"+1415555{i % 100:02d}", "")
        return await limits.count([Use((n, k), window) for n, k in zip(names, keys_, strict=True)])

    async def business(i: int) -> object:
        at = int(limits.clock() * 1000)
        user = f"user-{i % keys}"
        spends = [
            Spend((Limiter.BUSINESS_PAIR, f"shop>{user}"), BIG),
            Spend((Limiter.BUSINESS_THROUGHPUT, "shop"), BIG),
        ]
        hold = Hold(
            (Limiter.MARKETING_HELD, user),
            f"shop@{at}:{i}",
            at,
            (("other@1", at - 1000),),
            10**9,
            86_400_000,
            IN_FLIGHT_MS,
        )
        return await limits.take(spends, hold)

    return {"bucket": bucket, "codes": codes, "business": business}


async def measure(
    call: Callable[[int], Awaitable[object]], checks: int, concurrency: int
) -> tuple[float, float, float]:
    """(wall µs per check one at a time, checks/s with ``concurrency`` in flight, CPU µs per check)."""
    for i in range(200):  # warm: connections, script cache
        await call(i)
    cpu, start = time.process_time(), time.perf_counter()
    for i in range(checks):
        await call(i)
    serial = (time.perf_counter() - start) / checks * 1e6
    cpu_serial = time.process_time() - cpu

    queue = iter(range(checks))

    async def worker() -> None:
        for i in queue:
            await call(i)

    cpu, start = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    rate = checks / (time.perf_counter() - start)
    cpu_total = cpu_serial + time.process_time() - cpu
    return serial, rate, cpu_total / (2 * checks) * 1e6


def redis_cpu(url: str) -> float:
    info = redis.Redis.from_url(url).info("cpu")
    return info["used_cpu_sys"] + info["used_cpu_user"]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--checks", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--keys", type=int, default=5_000)
    args = parser.parse_args()
    prefix = f"cove-bench:{uuid.uuid4().hex[:8]}:"
    rules = table(Settings(_env_file=None))
    print(f"{args.checks} checks each; {args.concurrency} in flight for the rate; µs are wall time per check")
    print(f"{'store':8} {'call':9} {'serial µs':>10} {'checks/s':>10} {'CPU µs':>8} {'Redis CPU µs':>13}")
    try:
        for name in ("memory", "redis"):
            store = RedisStore(args.redis_url, prefix, timeout=1) if name == "redis" else None
            limits = Limits(rules, store)
            for call_name, call in calls(limits, args.keys).items():
                before = redis_cpu(args.redis_url)
                serial, rate, cpu = await measure(call, args.checks, args.concurrency)
                redis_us = (redis_cpu(args.redis_url) - before) / (2 * args.checks) * 1e6 if store else 0.0
                print(f"{name:8} {call_name:9} {serial:10.1f} {rate:10.0f} {cpu:8.1f} {redis_us:13.1f}")
            await limits.aclose()
    finally:
        client = redis.Redis.from_url(args.redis_url)
        for key in client.scan_iter(match=f"{prefix}*", count=1000):
            client.delete(key)


if __name__ == "__main__":
    asyncio.run(main())
