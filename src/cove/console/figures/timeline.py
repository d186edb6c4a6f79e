"""The time axis of a chart: buckets of an hour, a day or a week, whichever keeps the chart readable.

Queries count events per bucket index (``at_ms // bucket_ms``, the same integer division on SQLite and
PostgreSQL); :class:`Timeline` lays those counts on every bucket of the axis, zeros included, so that a quiet
hour shows as a dip rather than vanishing from the axis. An axis runs from the first event to now
(:func:`timeline`), or over a fixed number of days ending today (:func:`days_ending`) where the tables keep no
more than that.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import accumulate
from typing import TypeVar

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
WEEK_MS = 7 * DAY_MS
MAX_BUCKETS = 120  # about what a chart 390 px wide can still show as separate points
WINDOW_DAYS = 30  # the business tables keep 30 days (cove.business.upkeep): the sections' one window
Moment = TypeVar("Moment")  # milliseconds: an int, or a SQL column of them


def bucket_for(first_ms: int, last_ms: int) -> int:
    """The smallest bucket (hour, day, week, then whole multiples of a week) giving at most MAX_BUCKETS."""
    for size in (HOUR_MS, DAY_MS, WEEK_MS):
        if last_ms // size - first_ms // size < MAX_BUCKETS:
            return size
    size = WEEK_MS * max(1, (last_ms - first_ms) // (WEEK_MS * MAX_BUCKETS))
    while last_ms // size - first_ms // size >= MAX_BUCKETS:  # at most a step or two: the estimate is close
        size += WEEK_MS
    return size


@dataclass
class Series:
    """One line or bar series of a chart: what the chart macro's ``series`` entries are."""

    label: str
    data: list[int] | list[float | None]  # counts, or measures that may be missing (a p99 with no deliveries)
    colour: str | None = None  # a colour that means something (a quality rating's); else the palette's next


@dataclass(frozen=True)
class Timeline:
    bucket_ms: int
    first: int  # bucket index of the first bucket
    last: int

    @property
    def indexes(self) -> range:
        return range(self.first, self.last + 1)

    @property
    def start_ms(self) -> int:
        return self.first * self.bucket_ms

    def index_of(self, ms: Moment) -> Moment:
        """The bucket of a moment, or in SQL of a column of moments: integer division on SQLite and PostgreSQL."""
        return ms // self.bucket_ms

    def label(self, index: int) -> str:
        shape = "%Y-%m-%d %H:00" if self.bucket_ms < DAY_MS else "%Y-%m-%d"
        return datetime.fromtimestamp(index * self.bucket_ms / 1000, UTC).strftime(shape)

    def labels(self) -> list[str]:
        return [self.label(i) for i in self.indexes]

    def align(self, counts: Mapping[int, int]) -> list[int]:
        """Counts keyed by bucket index, one per bucket of the axis (0 where none)."""
        return [int(counts.get(i, 0)) for i in self.indexes]

    def running(self, counts: Mapping[int, int], before: int = 0) -> list[int]:
        """Running totals per bucket, starting from ``before`` (what happened before the axis begins)."""
        return list(accumulate(self.align(counts), initial=before))[1:]

    @property
    def unit(self) -> str:
        return {HOUR_MS: "hour", DAY_MS: "day", WEEK_MS: "week"}.get(
            self.bucket_ms, f"{self.bucket_ms // WEEK_MS} weeks"
        )


def timeline(first_ms: int, now_ms: int) -> Timeline:
    last_ms = max(first_ms, now_ms)
    size = bucket_for(first_ms, last_ms)
    return Timeline(size, first_ms // size, last_ms // size)


def days_ending(now_ms: int, days: int = WINDOW_DAYS) -> Timeline:
    """The last ``days`` UTC days, today's included; a bucket's index is its day since the epoch."""
    today = now_ms // DAY_MS
    return Timeline(DAY_MS, today - days + 1, today)


def earliest(times: Iterable[int | None]) -> int | None:
    known = [t for t in times if t is not None]
    return min(known) if known else None
