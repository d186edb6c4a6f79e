"""The relay fleet's health as the operator sees it: ``relay_health`` rows summed over processes.

For the operator console and ``cove relay health``, which run beside the relay's database. Sums of a set of
rows (a time bucket, or a window):

- **connected**: each process's newest row, summed over the processes.
- **accepted/s, delivered/s**: each process's envelopes over the time its rows cover, summed over the
  processes (a process that started or stopped within the bucket counts for the time it ran).
- **p50, p99**: read from the sum of the rows' latency histograms (:mod:`cove.fleet.histogram`), so the
  fleet's p99 is the p99 of all its deliveries, to within a bucket (19 %).
- **queue depth**: the newest row's; every process counts the same fleet-wide queues.

Cost: every row from ``since_ms`` on is read once, streamed; memory is one accumulator per bucket and process.
An hour of 100 processes writing every 10 s is 36,000 rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncConnection

from cove.clock import now_ms
from cove.fleet import histogram
from cove.fleet.health_storage import KEEP_MS, HealthRow, rows_since

MAX_BUCKETS = 2000  # a chart's width in points, and the bound on what one series holds
LATEST_WINDOW_MS = 60_000
# A process is silent once its newest row is older than two of its intervals and this: it stopped, or cannot
# write. Its devices have reconnected elsewhere by then, so it no longer counts as holding them.
SILENT_SLACK_MS = 1000


@dataclass(frozen=True)
class Figures:
    start_ms: int
    end_ms: int  # the newest row's end
    processes: int
    silent: int  # of those, processes that stopped writing (only when read against a time: ``latest``)
    connected: int
    accepted_per_s: float
    delivered_per_s: float
    latency_samples: int
    p50_ms: int | None
    p99_ms: int | None
    queue_depth: int | None


@dataclass
class _Process:
    newest: HealthRow
    accepted: int = 0
    delivered: int = 0
    interval_ms: int = 0

    def rate(self, count: int) -> float:
        return count * 1000 / self.interval_ms if self.interval_ms else 0.0


@dataclass
class Summing:
    """Rows added one by one, in any order, summed into :class:`Figures`."""

    start_ms: int
    processes: dict[str, _Process] = field(default_factory=dict)
    latency: list[int] = field(default_factory=histogram.empty)
    newest: HealthRow | None = None  # with a queue depth

    def add(self, row: HealthRow) -> None:
        process = self.processes.get(row.process)
        if process is None:
            process = self.processes[row.process] = _Process(row)
        elif row.at_ms > process.newest.at_ms:
            process.newest = row
        process.accepted += row.accepted
        process.delivered += row.delivered
        process.interval_ms += row.interval_ms
        for bucket, count in enumerate(row.latency):
            self.latency[bucket] += count
        if row.queue_depth is not None and (self.newest is None or _later(row, self.newest)):
            self.newest = row

    def figures(self, now: int | None = None) -> Figures:
        """With ``now``, processes whose newest row is too old to be running hold no connections."""
        processes = [self.processes[name] for name in sorted(self.processes)]  # float sums in one order
        writing = [p for p in processes if now is None or not _silent(p.newest, now)]
        return Figures(
            start_ms=self.start_ms,
            end_ms=max((p.newest.at_ms for p in processes), default=self.start_ms),
            processes=len(processes),
            silent=len(processes) - len(writing),
            connected=sum(p.newest.connected for p in writing),
            accepted_per_s=sum(p.rate(p.accepted) for p in processes),
            delivered_per_s=sum(p.rate(p.delivered) for p in processes),
            latency_samples=sum(self.latency),
            p50_ms=histogram.quantile_ms(self.latency, 0.5),
            p99_ms=histogram.quantile_ms(self.latency, 0.99),
            queue_depth=self.newest.queue_depth if self.newest is not None else None,
        )


def _later(row: HealthRow, than: HealthRow) -> bool:
    """Rows of two processes can end in the same millisecond: the process name decides, not the reading order."""
    return (row.at_ms, row.process) > (than.at_ms, than.process)


def _silent(row: HealthRow, now: int) -> bool:
    return now - row.at_ms > 2 * row.interval_ms + SILENT_SLACK_MS


def summarise(rows: list[HealthRow], start_ms: int, now: int | None = None) -> Figures:
    summing = Summing(start_ms)
    for row in rows:
        summing.add(row)
    return summing.figures(now)


def check_series(since_ms: int, bucket_ms: int, now: int) -> None:
    """ValueError for a series the reader could not chart: too many buckets, or none."""
    if bucket_ms <= 0:
        raise ValueError("a bucket lasts at least 1 ms")
    if since_ms > now:
        raise ValueError("the series starts in the future")
    if (now - since_ms) // bucket_ms + 1 > MAX_BUCKETS:
        raise ValueError(f"at most {MAX_BUCKETS} buckets: make them longer or start later")


async def health_series(conn: AsyncConnection, since_ms: int, bucket_ms: int, now: int | None = None) -> list[Figures]:
    """The fleet's figures per ``bucket_ms`` from ``since_ms`` to now, oldest first; a row falls in the bucket
    its interval ended in. Buckets no process wrote in are left out (the chart shows a gap, not a zero).
    ValueError (:func:`check_series`) for more than MAX_BUCKETS buckets."""
    now = now_ms() if now is None else now
    check_series(since_ms, bucket_ms, now)
    buckets: dict[int, Summing] = {}
    async for row in rows_since(conn, since_ms):
        index = (row.at_ms - since_ms) // bucket_ms
        if index not in buckets:
            buckets[index] = Summing(since_ms + index * bucket_ms)
        buckets[index].add(row)
    return [buckets[index].figures() for index in sorted(buckets)]


@dataclass(frozen=True)
class Latest:
    fleet: Figures
    processes: dict[str, Figures]  # by process name, sorted


async def latest(conn: AsyncConnection, window_ms: int = LATEST_WINDOW_MS, now: int | None = None) -> Latest | None:
    """The fleet and each process over the last ``window_ms`` (at most the 7 days kept; ValueError otherwise);
    None when no process wrote in it."""
    if not 0 < window_ms <= KEEP_MS:
        raise ValueError(f"the window lasts from 1 ms to {KEEP_MS // 86_400_000} days")
    now = now_ms() if now is None else now
    start = now - window_ms
    fleet = Summing(start)
    each: dict[str, Summing] = {}
    async for row in rows_since(conn, start):
        fleet.add(row)
        each.setdefault(row.process, Summing(start)).add(row)
    if not fleet.processes:
        return None
    return Latest(fleet.figures(now), {name: each[name].figures(now) for name in sorted(each)})
