"""The health figures' pure parts: the fixed histogram and its merge, the per-process recorder, and the sums
the operator reads (cove.fleet.histogram, cove.fleet.health_recorder, cove.fleet.health)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cove.fleet import histogram
from cove.fleet.health import MAX_BUCKETS, check_series, latest, summarise
from cove.fleet.health_recorder import Recorder
from cove.fleet.health_storage import KEEP_MS, HealthRow

# Latencies from 0 to past the last bound (the overflow bucket), in whole ms as the relay measures them.
LATENCIES = st.integers(min_value=0, max_value=2**27)
PROCESSES = st.lists(st.lists(LATENCIES, max_size=60), min_size=1, max_size=6)
QUANTILES = st.sampled_from([0.5, 0.9, 0.99, 0.999, 1.0]) | st.floats(min_value=0.001, max_value=1.0)


def _histogram(samples: list[int]) -> list[int]:
    counts = histogram.empty()
    for ms in samples:
        counts[histogram.bucket_of(ms)] += 1
    return counts


@given(PROCESSES, QUANTILES)
def test_merged_histograms_give_the_quantile_of_all_samples_to_within_one_bucket(processes, q):
    merged = histogram.merge(_histogram(samples) for samples in processes)
    everything = sorted(ms for samples in processes for ms in samples)
    if not everything:
        assert histogram.quantile(merged, q) is None
        return
    exact = everything[histogram.rank(q, len(everything)) - 1]
    read = histogram.quantile(merged, q)
    # The exact quantile's bucket, read as its upper bound: never below it, at most one bucket's width above.
    assert read == histogram.upper_ms(histogram.bucket_of(exact))
    assert read >= min(exact, histogram.BOUNDS_MS[-1])
    if 1 <= exact <= histogram.BOUNDS_MS[-1]:
        assert read <= exact * 2 ** (1 / histogram.STEPS_PER_DOUBLING) * (1 + 1e-12)


@given(st.lists(LATENCIES, max_size=200))
def test_a_histogram_survives_its_stored_form(samples):
    counts = _histogram(samples)
    assert histogram.from_pairs(histogram.to_pairs(counts)) == counts
    assert len(histogram.to_pairs(counts)) <= len(set(map(histogram.bucket_of, samples)))


@pytest.mark.parametrize(
    "stored",
    [{"1": 2}, [[1]], [[1, 2, 3]], [["1", 2]], [[1.0, 2]], [[-1, 2]], [[histogram.BUCKETS, 1]], [[3, -1]], [[1, True]]],
)
def test_a_stored_histogram_of_another_shape_is_refused(stored):
    with pytest.raises(ValueError):
        histogram.from_pairs(stored)


class Clock:
    def __init__(self, ms: int) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


def test_the_recorder_counts_an_interval_and_starts_again():
    clock = Clock(1_000_000)
    recorder = Recorder(clock)
    connected_at = 999_000
    recorder.accepted(3)
    recorder.accepted(0)
    clock.ms += 40
    recorder.delivered(accepted_at_ms=1_000_000, connected_at_ms=connected_at, now=clock.ms)  # 40 ms
    recorder.delivered(accepted_at_ms=1_000_030, connected_at_ms=connected_at, now=clock.ms)  # 10 ms
    recorder.delivered(accepted_at_ms=998_000, connected_at_ms=connected_at, now=clock.ms)  # waited for the device
    clock.ms += 10
    row = recorder.take("host:1:abc", connected=7, queue_depth=12)

    assert (row.process, row.at_ms, row.interval_ms) == ("host:1:abc", 1_000_050, 50)
    assert (row.connected, row.accepted, row.delivered, row.queue_depth) == (7, 3, 3, 12)
    assert sum(row.latency) == 2
    assert row.latency[histogram.bucket_of(40)] == 1 and row.latency[histogram.bucket_of(10)] == 1
    # 10 ms falls in (2^3.25, 2^3.5] = (9.5, 11.3], 40 ms in (2^5.25, 2^5.5] = (38.1, 45.3]: bounds rounded up.
    assert (row.p50_ms, row.p99_ms) == (12, 46)


def test_a_delivery_from_a_host_whose_clock_runs_ahead_reads_as_zero():
    clock = Clock(5000)
    recorder = Recorder(clock)
    recorder.delivered(accepted_at_ms=5300, connected_at_ms=0, now=clock.ms)
    row = recorder.take("p", 0, None)
    assert row.latency[0] == 1 and row.p99_ms == 1
    assert row.queue_depth is None


def test_an_empty_interval_has_no_latency_and_zero_counts():
    clock = Clock(0)
    recorder = Recorder(clock)
    recorder.delivered(5, 10, 10)
    recorder.accepted(2)
    recorder.take("p", 1, 0)
    clock.ms = 10_000
    row = recorder.take("p", 1, 0)
    assert (row.accepted, row.delivered, sum(row.latency), row.p50_ms, row.p99_ms) == (0, 0, 0, None, None)
    assert row.interval_ms == 10_000


def _row(process: str, at_ms: int, **kw: object) -> HealthRow:
    fields = {
        "interval_ms": 10_000,
        "connected": 0,
        "accepted": 0,
        "delivered": 0,
        "latency": tuple(histogram.empty()),
        "p50_ms": None,
        "p99_ms": None,
        "queue_depth": None,
        **kw,
    }
    return HealthRow(process, at_ms, **fields)  # type: ignore[arg-type]


def test_the_fleet_sums_each_process_newest_connections_and_its_own_rates():
    slow = _histogram([900] * 2)
    fast = _histogram([3] * 198)
    rows = [
        _row("a", 10_000, connected=5, accepted=100, delivered=90, latency=tuple(fast), queue_depth=40),
        _row("a", 20_000, connected=8, accepted=300, delivered=310, queue_depth=50),
        _row("b", 15_000, connected=2, accepted=50, delivered=50, interval_ms=5_000, latency=tuple(slow)),
    ]
    figures = summarise(list(reversed(rows)), start_ms=0)
    assert (figures.processes, figures.silent, figures.connected) == (2, 0, 10)
    # a: 400 over 20 s; b: 50 over 5 s (it started later): 20 + 10 messages/s.
    assert figures.accepted_per_s == pytest.approx(30.0)
    assert figures.delivered_per_s == pytest.approx(400 / 20 + 50 / 5)
    assert figures.latency_samples == 200
    # 2 slow of 200 is 1 %: the 99th percentile is the last fast one, 3 ms in (2^1.5, 2^1.75] = (2.8, 3.4]; b's own
    # p99 is 1024 ms, and averaging the processes' p99s would say 514.
    assert (figures.p50_ms, figures.p99_ms) == (4, 4)
    assert summarise(rows + [_row("b", 16_000, latency=tuple(slow))], 0).p99_ms == 1024  # 4 slow of 202: 2 %
    assert (figures.end_ms, figures.queue_depth) == (20_000, 50)


ROWS = st.lists(
    st.builds(
        _row,
        st.sampled_from(["a:1:x", "b:2:y", "c:3:z"]),
        st.integers(0, 100_000),
        interval_ms=st.integers(0, 20_000),
        connected=st.integers(0, 1000),
        accepted=st.integers(0, 10_000),
        delivered=st.integers(0, 10_000),
        latency=st.lists(LATENCIES, max_size=20).map(lambda samples: tuple(_histogram(samples))),
        queue_depth=st.none() | st.integers(0, 10**6),
    ),
    max_size=12,
    unique_by=lambda row: (row.process, row.at_ms),  # the table's key
)


@given(ROWS, st.randoms(use_true_random=False))
def test_the_sums_do_not_depend_on_the_order_rows_are_read_in(rows, random):
    shuffled = list(rows)
    random.shuffle(shuffled)
    assert summarise(shuffled, 0, now=60_000) == summarise(rows, 0, now=60_000)


@given(ROWS)
def test_the_fleet_is_the_sum_of_its_processes(rows):
    fleet = summarise(rows, 0)
    each = [summarise([r for r in rows if r.process == name], 0) for name in {r.process for r in rows}]
    assert fleet.processes == len(each)
    assert fleet.connected == sum(f.connected for f in each)
    assert fleet.accepted_per_s == pytest.approx(sum(f.accepted_per_s for f in each))
    assert fleet.latency_samples == sum(f.latency_samples for f in each)
    merged = histogram.merge(r.latency for r in rows)
    assert fleet.p99_ms == histogram.quantile_ms(merged, 0.99)


def test_a_process_that_stopped_writing_holds_no_connections_now():
    rows = [_row("gone", 10_000, connected=50, accepted=10), _row("up", 60_000, connected=3)]
    now = 61_000
    figures = summarise(rows, start_ms=0, now=now)
    assert (figures.processes, figures.silent, figures.connected) == (2, 1, 3)
    assert figures.accepted_per_s == pytest.approx(1.0)  # what it did while it ran still counts
    assert summarise(rows, start_ms=0).connected == 53  # a past bucket: both were writing then


@pytest.mark.parametrize(
    ("since", "bucket", "problem"),
    [(0, 0, "at least 1 ms"), (2_000_000, 1000, "future"), (0, 1, f"at most {MAX_BUCKETS}")],
)
def test_a_series_that_cannot_be_charted_is_refused(since, bucket, problem):
    with pytest.raises(ValueError, match=problem):
        check_series(since, bucket, now=1_000_000)


def test_a_series_of_max_buckets_is_allowed_and_one_more_refused():
    check_series(0, 1, now=MAX_BUCKETS - 1)  # buckets 0 .. MAX_BUCKETS - 1, the last holding now
    with pytest.raises(ValueError):
        check_series(0, 1, now=MAX_BUCKETS)


@pytest.mark.parametrize("window_ms", [0, -1, KEEP_MS + 1])
async def test_a_window_outside_what_is_kept_is_refused_before_reading(window_ms):
    with pytest.raises(ValueError, match="the window lasts"):
        await latest(None, window_ms)  # type: ignore[arg-type]  # refused before the connection is used
