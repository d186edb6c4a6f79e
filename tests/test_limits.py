"""The relay's limits (cove.limits.table, limiters, limit_store, limits_redis): both stores enforce the same
limits; two relays sharing Redis allow each limit once between them; the Lua scripts do the pure rules'
arithmetic exactly; and with Redis unreachable or slow, each limit fails open or closed as its row says."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cove.accounts.code_limits import CodeLimits, CodeRequestsLimited
from cove.config import Settings
from cove.errors import ApiError
from cove.limits.limiters import Limits
from cove.limits.redis_store import RedisStore
from cove.limits.rules import Bucket, Limit, Quota, Window, count, take
from cove.limits.store import Hold, MemoryStore, Spend, Use
from cove.limits.table import Fails, Limiter, table
from cove.testing import LocalServer, redis_server

UNREACHABLE = "redis://127.0.0.1:1/0"  # nothing listens on port 1


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def small_table(**overrides: int):  # noqa: ANN201
    return table(Settings(_env_file=None, code_max_sends=2, code_max_sends_per_source=3, **overrides))


@pytest.fixture(params=["memory", "redis"])
def shared(request: pytest.FixtureRequest) -> Iterator[tuple[str, str] | None]:
    """None: this process's store; otherwise the (url, prefix) of a Redis namespace of the test's own."""
    if request.param == "memory":
        yield None
    else:
        env = request.getfixturevalue("redis_env")
        yield env["COVE_REDIS_URL"], env["COVE_REDIS_PREFIX"]


@contextlib.asynccontextmanager
async def limits_on(
    shared: tuple[str, str] | None,
    clock: Clock,
    rules=None,
    rest_seconds: float = 1.0,  # noqa: ANN001
) -> AsyncIterator[Limits]:
    store = RedisStore(*shared) if shared else None
    limits = Limits(rules or small_table(), store, clock, rest_seconds)
    try:
        yield limits
    finally:
        await limits.aclose()


def refused(code: str, caught: pytest.ExceptionInfo[ApiError]) -> ApiError:
    assert caught.value.code == code, caught.value.body()
    return caught.value


# the same limits in both stores -------------------------------------------------------------------------


async def test_a_bucket_refuses_with_429_and_retry_after_per_key(shared):
    clock = Clock()
    async with limits_on(shared, clock) as limits:
        for _ in range(5):
            await limits.check(Limiter.PIN_CHANGE, "alice")
        with pytest.raises(ApiError) as caught:
            await limits.check(Limiter.PIN_CHANGE, "alice")
        error = refused("rate_limited", caught)
        assert error.status == 429 and "PIN change" in error.message
        assert error.details["retry_after"] == 721  # 5 an hour: one permit back every 720 s
        assert error.headers["Retry-After"] == "721"
        await limits.check(Limiter.PIN_CHANGE, "bob")  # buckets are per key
        clock.now += 720
        await limits.check(Limiter.PIN_CHANGE, "alice")

        with pytest.raises(ApiError) as caught:
            await limits.check(Limiter.PIN_CHANGE, "carol", 6)
        too_big = refused("rate_limited", caught)
        assert too_big.details["retry_after"] is None and "Retry-After" not in too_big.headers


async def test_a_refused_code_request_spends_no_other_limit_and_each_budget_comes_back_after_its_window(shared):
    clock = Clock()
    rules = small_table(code_send_window_seconds=60)
    async with limits_on(shared, clock, rules) as limits:
        codes = CodeLimits(limits, 2)
        assert [await codes.spend("+14155550171", "a"), await codes.spend("+14155550171", "a")] == [1, 0]
        with pytest.raises(CodeRequestsLimited) as caught:
            await codes.spend("+14155550171", "a")
        assert (caught.value.limit, caught.value.retry_after) == ("number", 61)
        assert await codes.spend("+14155550171", "b") == 1  # another source has its own budget for the number
        assert await codes.spend("+14155550999", "a") == 1  # the refusal did not spend source a's third code
        with pytest.raises(CodeRequestsLimited) as by_source:
            await codes.spend("+14155550888", "a")
        assert by_source.value.limit == "source"
        clock.now += 60
        assert await codes.spend("+14155550171", "a") == 1


async def test_a_business_send_spends_its_pair_and_throughput_and_holds_marketing_all_or_nothing(shared):
    clock = Clock()
    pair, throughput = Limit(2, 0.01), Limit(3, 3)
    at = int(clock.now * 1000)

    def send(user: str, shop: str = "shop", recorded: tuple[tuple[str, int], ...] | None = None) -> tuple:
        """A send's spends, and with ``recorded`` (the database's log) a marketing delivery to hold."""
        spends = [
            Spend((Limiter.BUSINESS_PAIR, f"{shop}>{user}"), pair),
            Spend((Limiter.BUSINESS_THROUGHPUT, shop), throughput),
        ]
        if recorded is None:
            return spends, None
        return spends, Hold((Limiter.MARKETING_HELD, user), f"{shop}@{at}", at, recorded, 2, 86_400_000, 60_000)

    async with limits_on(shared, clock) as limits:
        assert (await limits.take(*send("ana"))).ok
        assert (await limits.take(*send("ana"))).ok
        third = await limits.take(*send("ana"))
        assert third.held_wait is None and third.waits == (100.0, 0.0)  # pair refused, throughput not spent
        assert (await limits.take(*send("bo"))).ok  # so bo still gets the number's last permit this second
        busy = await limits.take(*send("cy"))
        assert busy.waits[0] == 0 and busy.waits[1] == pytest.approx(1 / 3)

        # The marketing cap counts the deliveries recorded elsewhere and the ones held, each once.
        clock.now += 10
        at = int(clock.now * 1000)
        recorded = (("other@1", at - 1000),)
        assert (await limits.take(*send("dee", "s1", recorded))).ok  # held: the cap's second slot
        capped = await limits.take(*send("dee", "s2", recorded))
        assert (capped.held_wait, capped.waits) == (86_400_000 - 1000, (0.0, 0.0))  # refused, nothing spent
        # Held and then committed (recorded), a delivery counts once: the log alone would leave a slot.
        assert (await limits.take(*send("dee", "s3", ((f"s1@{at}", at),)))).ok
        clock.now += 61  # the holds have lapsed; only what was recorded counts now
        at = int(clock.now * 1000)
        assert (await limits.take(*send("dee", "s2", recorded))).ok


# two relays, one Redis ----------------------------------------------------------------------------------


async def test_two_relays_sharing_redis_allow_each_limit_once_between_them(redis_env):
    shared = redis_env["COVE_REDIS_URL"], redis_env["COVE_REDIS_PREFIX"]
    clock = Clock()
    async with limits_on(shared, clock) as one, limits_on(shared, clock) as two:
        # Concurrent checks from both: the script is atomic, so exactly the bucket's size passes.
        results = await asyncio.gather(
            *(relay.check(Limiter.PIN_CHANGE, "alice") for relay in [one, two] * 6), return_exceptions=True
        )
        assert sum(r is None for r in results) == 5
        assert all(isinstance(r, ApiError) and r.code == "rate_limited" for r in results if r is not None)

        codes = [CodeLimits(one, 2), CodeLimits(two, 2)]
        assert await codes[0].spend("+14155550171", "a") == 1
        assert await codes[1].spend("+14155550171", "a") == 0
        with pytest.raises(CodeRequestsLimited):
            await codes[0].spend("+14155550171", "a")

    # Each alone, as without Redis, would have let both through.
    async with limits_on(None, clock) as alone:
        await alone.check(Limiter.PIN_CHANGE, "alice")


async def test_redis_keys_carry_no_callers_value_and_expire_with_what_they_hold(redis_env):
    shared = redis_env["COVE_REDIS_URL"], redis_env["COVE_REDIS_PREFIX"]
    async with limits_on(shared, Clock()) as limits:
        await limits.check(Limiter.PIN_CHANGE, "+14155550171")  # one permit of 5 gone: back in 720 s
        await CodeLimits(limits, 2).spend("+14155550171", "198.51.100.7")  # windows of an hour
    client = redis.Redis.from_url(redis_env["COVE_REDIS_URL"])
    keys = sorted(k.decode() for k in client.scan_iter(match=f"{redis_env['COVE_REDIS_PREFIX']}*"))
    client.close()
    assert len(keys) == 5
    assert not any(needle in k for k in keys for needle in ("4155550171", "198.51.100"))
    client = redis.Redis.from_url(redis_env["COVE_REDIS_URL"])
    ttls = {k.split(":")[-2]: client.pttl(k) for k in keys}
    client.close()
    assert 719_000 < ttls["PIN_change"] <= 720_000
    assert 3_599_000 < ttls["code_number"] <= 3_600_000


# the Lua scripts are the pure rules ----------------------------------------------------------------------

# Costs of whole permits and refills of at most one a minute keep every key's TTL over a minute, so Redis never
# expires a key while the test's clock (which jumps freely) still needs it.
slow_limits = st.builds(Limit, size=st.integers(1, 20).map(float), refill_per_second=st.floats(1 / 3600, 1 / 60))
bucket_calls = st.lists(st.tuples(st.floats(-30, 7200), st.integers(1, 25).map(float)), min_size=1, max_size=30)
window_calls = st.lists(st.integers(-1, 40).map(lambda t: t * 10.0), min_size=1, max_size=30)


@pytest.fixture
def redis_store(redis_env) -> Iterator[tuple[asyncio.Runner, RedisStore]]:  # noqa: ANN001
    with asyncio.Runner() as runner:
        store = RedisStore(redis_env["COVE_REDIS_URL"], redis_env["COVE_REDIS_PREFIX"], timeout=2)
        yield runner, store
        runner.run(store.aclose())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(limit=slow_limits, calls=bucket_calls)
def test_the_redis_bucket_is_take_to_the_last_bit(redis_store, limit, calls):
    runner, store = redis_store
    key = (Limiter.KEY_FETCH.value, uuid.uuid4().hex)
    bucket: Bucket | None = None
    now = 1_000_000.0
    for elapsed, cost in calls:
        now += elapsed  # sometimes back: another host's clock
        after, wait = take(bucket, limit, cost, now)
        taken = runner.run(store.take([Spend(key, limit, cost)], now))
        assert taken.waits == (wait,)
        if wait == 0:
            bucket = after


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(quota=st.builds(Quota, st.integers(1, 5), st.integers(1, 20).map(lambda n: n * 10.0)), calls=window_calls)
def test_the_redis_window_is_count_to_the_last_bit(redis_store, quota, calls):
    runner, store = redis_store
    key = (Limiter.CODE_SOURCE.value, uuid.uuid4().hex)
    window: Window | None = None
    now = 1_000_000.0
    for elapsed in calls:
        now += max(0.0, elapsed)  # windows are per relay clock; a step back is a bucket's business
        after, wait = count(window, quota, now)
        (counted,) = runner.run(store.count([Use(key, quota)], now))
        assert (counted.used, counted.wait) == (after.used, wait)
        if wait == 0:
            window = after


# Redis away: open or closed ----------------------------------------------------------------------------


def test_every_limit_says_how_it_fails_and_why():
    rules = table(Settings(_env_file=None))
    assert set(rules) == set(Limiter)
    assert all(rule.why for rule in rules.values())
    closed = {name for name, rule in rules.items() if rule.fails is Fails.CLOSED}
    assert closed == {
        Limiter.CONTACT_DISCOVERY,
        Limiter.PIN_CHANGE,
        Limiter.CODE_NUMBER,
        Limiter.CODE_SOURCE,
        Limiter.CODE_RANGE,
        Limiter.CODE_OVERALL,
        Limiter.PROVISIONING,  # unauthenticated: without the shared count, one address could open channels freely
    }


async def test_with_redis_unreachable_closed_limits_answer_503_and_open_ones_are_kept_here(caplog):
    caplog.set_level(logging.WARNING, "cove.limits")
    async with limits_on((UNREACHABLE, "cove:"), Clock()) as limits:
        for _ in range(20):
            with pytest.raises(ApiError) as caught:
                await limits.check(Limiter.CONTACT_DISCOVERY, "alice")
            error = refused("limiter_unavailable", caught)
            assert error.status == 503 and error.headers["Retry-After"] == "1"
        with pytest.raises(ApiError) as caught:
            await CodeLimits(limits, 2).spend("+14155550171", "a")
        refused("limiter_unavailable", caught)
        # Open: this process keeps the bucket, so the limit still holds here.
        for _ in range(100):
            await limits.check(Limiter.KEY_FETCH, "alice>bob")
        with pytest.raises(ApiError) as caught:
            await limits.check(Limiter.KEY_FETCH, "alice>bob")
        refused("rate_limited", caught)
        # A business send fails open too: its pair and throughput permits and marketing hold, kept here.
        at = int(limits.clock() * 1000)
        spends = [
            Spend((Limiter.BUSINESS_PAIR, "shop>ana"), Limit(1, 0.01)),
            Spend((Limiter.BUSINESS_THROUGHPUT, "shop"), Limit(80, 80)),
        ]
        hold = Hold((Limiter.MARKETING_HELD, "ana"), f"shop@{at}", at, (), 2, 86_400_000, 60_000)
        assert (await limits.take(spends, hold)).ok
        assert (await limits.take(spends, hold)).waits[0] == 100.0
    warnings = [r for r in caplog.records if r.name == "cove.limits"]
    assert len(warnings) == 1 and "unreachable" in warnings[0].getMessage()  # not one line per request


async def test_a_redis_that_does_not_answer_in_time_counts_as_away():
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.read(1 << 16):  # takes commands until the client hangs up, never answers
            pass
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with limits_on((f"redis://127.0.0.1:{port}/0", "cove:"), Clock()) as limits:
            with pytest.raises(ApiError) as caught:
                await limits.check(Limiter.PIN_CHANGE, "alice")
            refused("limiter_unavailable", caught)
            await limits.check(Limiter.KEY_FETCH, "alice>bob")
    finally:
        server.close()


@contextlib.contextmanager
def running(server: LocalServer) -> Iterator[None]:
    """A Redis server of this test's own, which it may stop and start again (the shared one serves others)."""
    if shutil.which(server.binary) is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is not installed")
        pytest.skip("redis-server is not installed")
    server.start()
    try:
        yield
    finally:
        server.stop()


async def test_when_redis_comes_back_the_limits_are_fleet_wide_again_and_start_afresh(caplog, tmp_path):
    caplog.set_level(logging.WARNING, "cove.limits")
    server = redis_server(tmp_path)
    # No rest after a failure: Redis is tried again at the next check, not a second later.
    async with limits_on((f"{server.url}/0", "cove:"), Clock(), rest_seconds=0) as one:
        with running(server):
            for _ in range(4):
                await one.check(Limiter.PIN_CHANGE, "alice")
        with pytest.raises(ApiError) as caught:  # stopped: closed
            await one.check(Limiter.PIN_CHANGE, "alice")
        refused("limiter_unavailable", caught)
        with running(server):  # restarted, empty: what was counted before is gone (docs/scaling.md)
            for _ in range(5):
                await one.check(Limiter.PIN_CHANGE, "alice")
            with pytest.raises(ApiError) as caught:
                await one.check(Limiter.PIN_CHANGE, "alice")
            refused("rate_limited", caught)
    said = [r.getMessage() for r in caplog.records if r.name == "cove.limits"]
    assert len(said) == 2 and "unreachable" in said[0] and "again" in said[1]


async def test_this_process_keeps_a_bounded_number_of_keys_forgetting_the_spent_ones_last():
    store = MemoryStore(max_keys=10)
    slow, fast = Limit(1, 0.001), Limit(1, 1000)  # full again after 1,000 s, and after a millisecond

    async def spent(key: str, limit: Limit, now: float) -> bool:
        return not (await store.take([Spend(("key fetch", key), limit)], now)).ok

    for i in range(5):
        assert not await spent(f"slow-{i}", slow, 0.0)
    for i in range(6):  # at the eleventh key the five fast ones before it have expired: they go, the slow stay
        assert not await spent(f"fast-{i}", fast, i / 100)
    assert all([await spent(f"slow-{i}", slow, 1.0) for i in range(5)])
    for i in range(20):  # only live keys now: the least recently used tenth goes each time the bound is passed
        await spent(f"more-{i}", slow, 1.0)
    assert not await spent("slow-0", slow, 1.0)  # forgotten: a fresh, full bucket
    assert await spent("more-19", slow, 1.0)
