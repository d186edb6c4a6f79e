"""Latency histograms with fixed log-spaced buckets: constant memory, and mergeable across processes.

Bucket ``i`` holds the samples in ``(BOUNDS_MS[i - 1], BOUNDS_MS[i]]`` (bucket 0: up to 1 ms, negative ones
too); the bounds grow by 2^(1/4), so a quantile read from a histogram is the upper bound of the bucket the
exact quantile falls in: at most 19 % above it. The last bucket, past ``BOUNDS_MS[-1]`` (18.6 hours), holds
everything longer and reads as that bound. Because every process uses the same buckets, summing the counts of
several histograms gives the histogram of all their samples: the fleet's p99 comes from that sum, never from
an average of the processes' p99s (which is no quantile of anything).

Stored sparse, as ``[[bucket, count], ...]`` of the buckets that have samples.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence

STEPS_PER_DOUBLING = 4
DOUBLINGS = 26  # 2^26 ms: 18.6 hours, far past any live delivery
BOUNDS_MS: tuple[float, ...] = tuple(2 ** (i / STEPS_PER_DOUBLING) for i in range(DOUBLINGS * STEPS_PER_DOUBLING + 1))
BUCKETS = len(BOUNDS_MS) + 1  # and the overflow bucket


def bucket_of(ms: float) -> int:
    return bisect.bisect_left(BOUNDS_MS, ms)


def upper_ms(bucket: int) -> float:
    """What a quantile falling in ``bucket`` reads as: its upper bound (the last bound for the overflow)."""
    return BOUNDS_MS[min(bucket, len(BOUNDS_MS) - 1)]


def empty() -> list[int]:
    return [0] * BUCKETS


def merge(histograms: Iterable[Sequence[int]]) -> list[int]:
    merged = empty()
    for counts in histograms:
        for bucket, count in enumerate(counts):
            merged[bucket] += count
    return merged


def rank(q: float, n: int) -> int:
    """The 1-based rank of the ``q`` quantile among ``n`` sorted samples: the smallest sample with at least
    ``q`` of all samples at or below it."""
    return max(1, math.ceil(q * n))


def quantile(counts: Sequence[int], q: float) -> float | None:
    """The ``q`` quantile (0 < q <= 1) as the upper bound of its bucket; None when there is no sample."""
    total = sum(counts)
    if total == 0:
        return None
    wanted = rank(q, total)
    seen = 0
    for bucket, count in enumerate(counts):
        seen += count
        if seen >= wanted:
            return upper_ms(bucket)
    raise AssertionError("unreachable: the counts sum to total")


def quantile_ms(counts: Sequence[int], q: float) -> int | None:
    """:func:`quantile` in whole milliseconds, rounded up: still a bound at or above the samples it covers."""
    value = quantile(counts, q)
    return None if value is None else math.ceil(value)


def to_pairs(counts: Sequence[int]) -> list[list[int]]:
    return [[bucket, count] for bucket, count in enumerate(counts) if count]


def from_pairs(pairs: object) -> list[int]:
    """The histogram a stored value describes; ValueError for anything else (a row written by another version
    with other buckets would merge into the wrong ones, so it is refused rather than misread)."""
    counts = empty()
    if not isinstance(pairs, list):
        raise ValueError("a histogram is a list of [bucket, count] pairs")
    for pair in pairs:
        if not (isinstance(pair, list) and len(pair) == 2 and all(type(v) is int for v in pair)):
            raise ValueError(f"{str(pair)[:40]} is no [bucket, count] pair")
        bucket, count = pair
        if not 0 <= bucket < BUCKETS or count < 0:
            raise ValueError(f"bucket {bucket} or count {count} out of range")
        counts[bucket] += count
    return counts
