"""Group commit: every job waiting at one moment is handed to one batch function, in arrival order.

One fsync-bound commit per job would cap a writer at a few hundred jobs a second; collecting the work
that arrives while the previous batch runs amortises the commit over the whole batch (the idea of
PostgreSQL's commit_delay, without the delay). Each job carries a future; the batch function settles it
once the job's effects are durable, so no caller hears "done" before that.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, Generic, Protocol, TypeVar


class Job(Protocol):
    future: asyncio.Future[Any]


J = TypeVar("J", bound=Job)


class GroupCommit(Generic[J]):
    def __init__(self, name: str, commit: Callable[[list[J]], Awaitable[None]], max_batch: int) -> None:
        self._name = name
        self._commit = commit
        self._max_batch = max_batch
        self._jobs: list[J] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self._name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for job in self._jobs:
            if not job.future.done():
                job.future.set_exception(RuntimeError("relay shutting down"))

    def submit(self, job: J) -> asyncio.Future[Any]:
        """Queue a job without waiting; jobs reach the batch function in the order they were submitted."""
        self._jobs.append(job)
        self._wake.set()
        return job.future

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._jobs:
                batch, self._jobs = self._jobs[: self._max_batch], self._jobs[self._max_batch :]
                await self._commit(batch)


def new_future() -> asyncio.Future[Any]:
    return asyncio.get_running_loop().create_future()
