"""This relay process's health figures, counted as it works and written as one ``relay_health`` row an interval.

What is counted, and where (the messaging code calls the :class:`Recorder` its hub holds):

- **accepted**: message envelopes (Olm and Megolm; one per recipient device, receipts and group changes left
  out) committed to the queues by this process, counted when they are handed to the hub after the commit.
- **delivered**: message envelopes this process wrote to a recipient device's socket, the backlog a device
  reads on connecting included. Each socket writes an envelope once; a device that reconnects before it acked
  is sent it again, and that counts again.
- **latency**: from the relay accepting the envelope (its ``server_ts``, when the send's checks passed, before
  its commit) to this process writing it to the recipient's socket. The socket write rather than the device's
  ack: an ack reaches the process that holds the socket, which would then have to read when each acked
  envelope was accepted, and the ack's timing is the client's as much as the relay's. Only envelopes accepted
  after the socket connected are sampled: the backlog a device reads on connecting waited for the device, not
  for the relay. Sent from another host, an envelope's ``server_ts`` is that host's clock: a skew below zero
  reads as 0.
- **connected** and **queue depth** are read when the row is written (the hub's open streams, and the
  envelopes waiting in the database, a fleet-wide figure every process reads).

A :class:`Recorder` holds two counters and a fixed histogram (:mod:`cove.fleet.histogram`): constant memory
whatever the traffic, and a few operations per envelope.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cove.clock import now_ms
from cove.fleet import health_storage, histogram
from cove.fleet.health_storage import KEEP_MS, PROCESS_CHARS, HealthRow

log = logging.getLogger("cove.fleet")


def process_name() -> str:
    """``host:pid:nonce``: an operator finds the process by its host and pid; the nonce tells a restart with the
    same pid (a container's pid 1) from the process before it."""
    return f"{socket.gethostname()[:80]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"[:PROCESS_CHARS]


class Recorder:
    """Counts since the last :meth:`take`; pure accounting, no I/O."""

    __slots__ = ("_clock", "_since_ms", "_accepted", "_delivered", "_latency")

    def __init__(self, clock: Callable[[], int] = now_ms) -> None:
        self._clock = clock
        self._since_ms = clock()
        self._accepted = 0
        self._delivered = 0
        self._latency = histogram.empty()

    def accepted(self, envelopes: int) -> None:
        self._accepted += envelopes

    def delivered(self, accepted_at_ms: int, connected_at_ms: int, now: int) -> None:
        """A message envelope written at ``now`` to a socket that connected at ``connected_at_ms`` (the caller
        reads the clock once for a batch of them: reading it costs as much as the rest of this)."""
        self._delivered += 1
        if accepted_at_ms >= connected_at_ms:
            self._latency[histogram.bucket_of(max(0, now - accepted_at_ms))] += 1

    def take(self, process: str, connected: int, queue_depth: int | None) -> HealthRow:
        """The figures since the last take, as a row; counting starts again from zero."""
        now = self._clock()
        latency = tuple(self._latency)
        row = HealthRow(
            process=process,
            at_ms=now,
            interval_ms=max(0, now - self._since_ms),
            connected=connected,
            accepted=self._accepted,
            delivered=self._delivered,
            latency=latency,
            p50_ms=histogram.quantile_ms(latency, 0.5),
            p99_ms=histogram.quantile_ms(latency, 0.99),
            queue_depth=queue_depth,
        )
        self._since_ms = now
        self._accepted = self._delivered = 0
        self._latency = histogram.empty()
        return row


QueueDepth = Callable[[AsyncConnection], Awaitable[int]]


class HealthWriter:
    """Writes the recorder's row every interval and, every ``prune_seconds``, deletes rows older than 7 days
    (every process prunes; a delete by age is the same whoever runs it)."""

    def __init__(
        self,
        engine: AsyncEngine,
        recorder: Recorder,
        connected: Callable[[], int],
        queue_depth: QueueDepth,
        prune_seconds: float,
    ) -> None:
        self.process = process_name()
        self._engine = engine
        self._recorder = recorder
        self._connected = connected
        self._queue_depth = queue_depth
        self._prune_ms = prune_seconds * 1000
        self._pruned_at = -self._prune_ms

    async def write(self) -> HealthRow:
        """One row now; a queue depth that cannot be read is left empty rather than losing the row."""
        try:
            async with self._engine.connect() as conn:
                depth: int | None = await self._queue_depth(conn)
        except Exception:
            log.exception("counting the queued envelopes failed")
            depth = None
        row = self._recorder.take(self.process, self._connected(), depth)
        async with self._engine.begin() as conn:
            await health_storage.append(conn, row)
            if row.at_ms - self._pruned_at >= self._prune_ms:
                await health_storage.prune(conn, row.at_ms - KEEP_MS)
                self._pruned_at = row.at_ms
        return row

    async def run_forever(self, interval_seconds: float) -> None:
        while True:
            await asyncio.sleep(interval_seconds)
            try:
                await self.write()
            except Exception:
                # That interval's figures are lost; the next row covers only its own interval.
                log.exception("writing this process's health figures failed")
