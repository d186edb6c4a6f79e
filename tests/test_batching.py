"""Group commit (cove.batching): jobs that may wait share the next urgent job's commit, and none is dropped."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from cove.batching import GroupCommit, new_future

A_LONG_TIME = 3600.0  # a linger or delay no test waits out: only an urgent job, a full batch or stop() ends it


@dataclass
class Job:
    name: str
    future: asyncio.Future[Any] = field(default_factory=new_future)


class Recorder:
    def __init__(self) -> None:
        self.batches: list[list[str]] = []

    async def __call__(self, batch: list[Job]) -> None:
        self.batches.append([job.name for job in batch])
        for job in batch:
            job.future.set_result(None)


async def _settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


async def test_a_job_that_may_wait_rides_along_the_next_urgent_one() -> None:
    commits = Recorder()
    batches = GroupCommit("test", commits, max_batch=10, linger=A_LONG_TIME)
    batches.start()
    try:
        await batches.submit(Job("send1"))  # urgent jobs come: lingering pays
        ack = batches.submit(Job("ack"), urgent=False)
        await _settle()
        assert commits.batches == [["send1"]] and not ack.done()
        await batches.submit(Job("send2"))
        assert commits.batches == [["send1"], ["ack", "send2"]]
        assert ack.done()
    finally:
        await batches.stop()


async def test_a_job_that_may_wait_is_committed_once_it_has_lingered() -> None:
    commits = Recorder()
    batches = GroupCommit("test", commits, max_batch=10, linger=0.01)
    batches.start()
    try:
        batches.submit(Job("send"))
        await asyncio.wait_for(batches.submit(Job("ack"), urgent=False), 10)
        assert [job for batch in commits.batches for job in batch] == ["send", "ack"]
    finally:
        await batches.stop()


async def test_without_urgent_jobs_around_nothing_lingers() -> None:
    commits = Recorder()
    # No urgent job came: waiting would not pay, and a linger this long would fail the wait below.
    batches = GroupCommit("test", commits, max_batch=10, linger=1.9)
    batches.start()
    try:
        await asyncio.wait_for(batches.submit(Job("ack"), urgent=False), 1.0)
        assert commits.batches == [["ack"]]
    finally:
        await batches.stop()


async def test_a_full_batch_does_not_linger() -> None:
    commits = Recorder()
    batches = GroupCommit("test", commits, max_batch=3, linger=A_LONG_TIME)
    batches.start()
    try:
        await batches.submit(Job("send"))
        await asyncio.gather(*(batches.submit(Job(f"ack{i}"), urgent=False) for i in range(3)))
        assert commits.batches == [["send"], ["ack0", "ack1", "ack2"]]
    finally:
        await batches.stop()


async def test_without_a_linger_every_job_is_committed_at_once() -> None:
    commits = Recorder()
    batches = GroupCommit("test", commits, max_batch=10)
    batches.start()
    try:
        await batches.submit(Job("ack"), urgent=False)
        await batches.submit(Job("send"))
        assert commits.batches == [["ack"], ["send"]]
    finally:
        await batches.stop()


async def test_stop_commits_what_still_lingers() -> None:
    commits = Recorder()
    batches = GroupCommit("test", commits, max_batch=10, linger=A_LONG_TIME)
    batches.start()
    await batches.submit(Job("send"))
    ack = batches.submit(Job("ack"), urgent=False)
    await _settle()
    assert not ack.done()
    await batches.stop()
    assert ack.done() and commits.batches == [["send"], ["ack"]]


async def test_while_urgent_jobs_come_fast_a_commit_waits_for_more() -> None:
    commits = Recorder()
    batches = GroupCommit("test", commits, max_batch=100, delay=A_LONG_TIME)
    burst = [batches.submit(Job(f"send{i}")) for i in range(20)]
    batches.start()
    await _settle()
    late = batches.submit(Job("late"))
    await _settle()
    assert commits.batches == []
    await batches.stop()
    assert commits.batches == [[f"send{i}" for i in range(20)] + ["late"]]
    assert all(f.done() for f in [*burst, late])


async def test_a_lone_urgent_job_does_not_wait_for_company() -> None:
    commits = Recorder()
    # Nothing came before: the job is alone, and a delay this long would fail the wait below.
    batches = GroupCommit("test", commits, max_batch=100, delay=1.9)
    batches.start()
    try:
        await asyncio.wait_for(batches.submit(Job("send")), 1.0)
        assert commits.batches == [["send"]]
    finally:
        await batches.stop()
