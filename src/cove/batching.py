"""Group commit: every job waiting at one moment is handed to one batch function, in arrival order.

One fsync-bound commit per job would cap a writer at a few hundred jobs a second; collecting the work
that arrives while the previous batch runs amortises the commit over the whole batch (the idea of
PostgreSQL's commit_delay; below, when it also waits). Each job carries a future; the batch function settles it
once the job's effects are durable, so no caller hears "done" before that.

Every commit costs about the same whatever it holds (a sync of the log, a thread hand-off and its wake-ups,
the transaction's fixed work), so two waits buy fewer commits where they pay:

- ``linger``: while urgent jobs come more often than once per ``linger``, a job nobody waits on
  (``urgent=False``: a message ack) waits up to this long for an urgent one to share its commit. At
  20 msg/s an ack rides the next send: one commit per message, not three. When urgent jobs are rarer,
  waiting would rarely pay, and the job is committed at once.
- ``delay``: PostgreSQL's commit_delay with its commit_siblings condition. Only while urgent jobs come
  faster than one per half the delay, a commit waits until ``delay`` after its oldest job, so that those
  arriving meanwhile join it. At 500 msg/s it turns ~500 commits a second into a few dozen for a
  few ms of latency; at light load, where no second job would come, nothing waits; and a writer already busy for
  longer than the delay never waits either.

The rate of urgent jobs is a moving average of the time between them (``_gap``).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any, Generic, Protocol, TypeVar


class Job(Protocol):
    future: asyncio.Future[Any]


J = TypeVar("J", bound=Job)


class GroupCommit(Generic[J]):
    def __init__(
        self,
        name: str,
        commit: Callable[[list[J]], Awaitable[None]],
        max_batch: int,
        linger: float = 0.0,
        delay: float = 0.0,
    ) -> None:
        self._name = name
        self._commit = commit
        self._max_batch = max_batch
        self._linger = linger
        self._delay = delay
        self._gap = 1.0  # smoothed seconds between urgent jobs (capped at one)
        self._last_urgent = -math.inf
        self._oldest = 0.0  # when the oldest waiting job came (time.monotonic)
        self._jobs: list[J] = []
        self._wake = asyncio.Event()
        self._urgent = asyncio.Event()  # set while an urgent job waits: lingering ends
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self._name)

    async def stop(self) -> None:
        """Stop taking batches; what still waits (lingering acks, say) is committed once more, not dropped."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        while self._jobs:
            batch, self._jobs = self._jobs[: self._max_batch], self._jobs[self._max_batch :]
            try:
                await self._commit(batch)
            except Exception as exc:
                for job in batch:
                    if not job.future.done():
                        job.future.set_exception(RuntimeError(f"relay shutting down: {exc}"))

    def submit(self, job: J, urgent: bool = True) -> asyncio.Future[Any]:
        """Queue a job without waiting; jobs reach the batch function in the order they were submitted."""
        now = time.monotonic()
        if not self._jobs:
            self._oldest = now
        self._jobs.append(job)
        if urgent:
            self._gap += (min(now - self._last_urgent, 1.0) - self._gap) / 8
            self._last_urgent = now
        if urgent or len(self._jobs) >= self._max_batch:
            self._urgent.set()
        self._wake.set()
        return job.future

    def _expected_gap(self) -> float:
        """Seconds until the next urgent job, as far as one can tell: at least the time since the last one."""
        return max(self._gap, time.monotonic() - self._last_urgent)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._linger and not self._urgent.is_set() and self._expected_gap() < self._linger:
                # Only jobs that may wait: commit when an urgent one comes, or when the first has waited enough.
                deadline = loop.call_later(self._linger, self._urgent.set)
                await self._urgent.wait()
                deadline.cancel()
            if self._delay and self._gap < self._delay / 2 and len(self._jobs) < self._max_batch:
                await asyncio.sleep(self._oldest + self._delay - time.monotonic())
            self._urgent.clear()
            if not self._jobs:  # taken by the previous batch, after they woke this one
                continue
            batch, self._jobs = self._jobs[: self._max_batch], self._jobs[self._max_batch :]
            self._oldest = time.monotonic()
            if self._jobs:  # more than one batch waits: no reason to linger over the rest
                self._urgent.set()
                self._wake.set()
            await self._commit(batch)


def new_future() -> asyncio.Future[Any]:
    return asyncio.get_running_loop().create_future()
