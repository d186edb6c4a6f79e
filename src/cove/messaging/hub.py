"""Who is connected where: one live stream per device, and hand-off of freshly queued envelopes to it.

A stream is fed only after the envelope is committed, so a push never outruns durability. In a fleet
(:mod:`cove.messaging.wakeups`) an envelope for a device held by another process reaches it as a wake-up on
the bus, and a device that connects here closes its older socket on any process. A wake-up the bus lost is
made good by :meth:`Hub.rescan`: every stream re-reads its device's queue.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
import zlib
from collections.abc import Iterable
from typing import Any, Protocol

from nats.aio.subscription import Subscription

from cove.clock import now_ms
from cove.fleet.health_recorder import Recorder
from cove.messaging.envelope import RECEIPTED_KINDS, Envelope
from cove.messaging.wakeups import Claim, Wakeups

log = logging.getLogger("cove.hub")

DeviceKey = tuple[str, int]

# Close codes, 4000 + the HTTP status they resemble; the reason starts with a machine-readable word.
CLOSE_CONNECTED_ELSEWHERE = 4409
CLOSE_LOGGED_OUT = 4401
CLOSE_BAD_FRAMES = 4400  # too many frames the relay could not read
CLOSE_NOT_READING = 4408  # the client did not read what was sent to it
CLOSE_TOO_MANY_SOCKETS = 4429  # the account has as many open sockets as it may


class Rescan:
    """Offered to a stream: re-read the device's queue and send what this socket has not sent yet."""


RESCAN = Rescan()
# Gaps reported close together (a burst of dropped messages) cause one re-read, this long after the first.
RESCAN_COALESCE_SECONDS = 0.2


class Stream(Protocol):
    def offer(self, item: Envelope | dict[str, Any] | Rescan) -> None:
        """Never blocks: a stream that cannot take more (its client is not reading) drops it and closes itself.
        The hub's envelopes are stored, so that device gets them from its queue when it reconnects."""

    def close(self, code: int, reason: str) -> None: ...


class Hub:
    def __init__(self, wakeups: Wakeups | None = None) -> None:
        self._streams: dict[DeviceKey, Stream] = {}
        self._wakeups = wakeups
        self._claims: dict[DeviceKey, Claim] = {}
        self._subscriptions: dict[DeviceKey, Subscription] = {}
        self._rescan_due: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Future[None]] = set()  # claims re-announced, subscriptions made after a gap
        # Every committed envelope passes through deliver, and every socket holds a stream: the health figures.
        self.health = Recorder()

    @property
    def node(self) -> str:
        return self._wakeups.node if self._wakeups is not None else ""

    async def attach(self, key: DeviceKey, stream: Stream) -> None:
        """Make ``stream`` the device's only one, here and on every process. When this returns, every
        envelope committed afterwards is offered to it; what was committed before is in the queue."""
        previous = self._streams.get(key)
        self._streams[key] = stream
        if previous is not None:
            previous.close(CLOSE_CONNECTED_ELSEWHERE, "connected elsewhere")
        if self._wakeups is None:
            return
        claim = Claim(now_ms(), self._wakeups.node)
        self._claims[key] = claim
        await self._subscribe(key, stream, claim)

    async def _subscribe(self, key: DeviceKey, stream: Stream, claim: Claim) -> bool:
        """Subscribe to the device's wake-ups and announce its claim; False when the bus is unreachable (then
        :meth:`bus_gap` subscribes once it is back)."""
        assert self._wakeups is not None
        subscription = await self._wakeups.claim(
            key, claim, lambda frame: self._woken(key, frame), lambda other: self._claimed(key, other)
        )
        if subscription is None:
            return False
        if self._streams.get(key) is not stream:  # closed or replaced while subscribing
            self._wakeups.release(subscription)
            return True
        older = self._subscriptions.pop(key, None)
        self._subscriptions[key] = subscription
        if older is not None:
            self._wakeups.release(older)
        return True

    def detach(self, key: DeviceKey, stream: Stream) -> None:
        if self._streams.get(key) is stream:
            del self._streams[key]
            self._claims.pop(key, None)
            subscription = self._subscriptions.pop(key, None)
            if subscription is not None and self._wakeups is not None:
                self._wakeups.release(subscription)

    def connected(self) -> list[DeviceKey]:
        return list(self._streams)

    async def deliver(self, batch: Iterable[Envelope]) -> None:
        elsewhere = []
        messages = 0
        for envelope in batch:
            messages += envelope.kind in RECEIPTED_KINDS
            stream = self._streams.get((envelope.account_id, envelope.device_id))
            if stream is not None:
                stream.offer(envelope)
            elif self._wakeups is not None:
                elsewhere.append(envelope)
        self.health.accepted(messages)
        if elsewhere:
            await self._wakeups.wake(elsewhere)  # type: ignore[union-attr]

    def _woken(self, key: DeviceKey, frame: dict[str, Any]) -> None:
        stream = self._streams.get(key)
        if stream is not None:
            stream.offer(frame)

    def _claimed(self, key: DeviceKey, other: Claim) -> None:
        mine = self._claims.get(key)
        stream = self._streams.get(key)
        if mine is None or stream is None or other.node == mine.node:
            return
        if other > mine:
            stream.close(CLOSE_CONNECTED_ELSEWHERE, "connected elsewhere")
        elif self._wakeups is not None:
            # The other socket is older but its process may never have heard our claim: tell it again.
            task = asyncio.ensure_future(self._wakeups.announce(key, mine))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def bus_gap(self, reason: str) -> None:
        """The bus may have lost wake-ups: every stream re-reads its queue. When the bus is back, devices that
        connected while it was away get their subscriptions first (nats-py renews only those it had)."""
        if reason in ("connected", "reconnected") and self._wakeups is not None:
            task = asyncio.ensure_future(self._subscribe_missing(reason))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        else:
            self.rescan(reason)

    async def _subscribe_missing(self, reason: str) -> None:
        for key, stream in list(self._streams.items()):
            claim = self._claims.get(key)
            if key in self._subscriptions or claim is None or self._streams.get(key) is not stream:
                continue
            if not await self._subscribe(key, stream, claim):
                break  # gone again: the next reconnect comes back here
        self.rescan(reason)  # after subscribing: what was committed before is in the queues

    def rescan(self, reason: str = "") -> None:
        """Every stream re-reads its queue soon (the bus may have lost wake-ups); bursts cause one re-read."""
        if self._rescan_due is None:
            log.info("re-reading the queues of %d connected devices (%s)", len(self._streams), reason)
            loop = asyncio.get_running_loop()
            self._rescan_due = loop.call_later(RESCAN_COALESCE_SECONDS, self._rescan_now)

    def _rescan_now(self) -> None:
        self._rescan_due = None
        for stream in list(self._streams.values()):
            stream.offer(RESCAN)

    async def rescan_forever(self, every_seconds: float, slices: int = 10) -> None:
        """The safety net for a wake-up lost while the bus seemed up (a process that died between commit and
        publish): each stream re-reads its queue every ``every_seconds``, a slice of them at a time."""
        turn = 0
        while True:
            await asyncio.sleep(every_seconds / slices)
            for key, stream in list(self._streams.items()):
                if zlib.crc32(f"{key[0]}.{key[1]}".encode()) % slices == turn:
                    stream.offer(RESCAN)
            turn = (turn + 1) % slices

    def push(self, key: DeviceKey, frame: dict[str, Any]) -> None:
        stream = self._streams.get(key)
        if stream is not None:
            stream.offer(frame)

    def log_out(
        self,
        account_id: str,
        device_ids: Iterable[int],
        reason: str = "logged out: the number was registered on another phone",
        before_ms: int | None = None,
    ) -> None:
        """Close these devices' streams; with ``before_ms``, only those attached before then (in a fleet a logout
        can arrive after the device's next phone, given the same device id, connected here)."""
        for device_id in device_ids:
            key = (account_id, device_id)
            claim = self._claims.get(key)
            if before_ms is not None and claim is not None and claim.at_ms > before_ms:
                continue
            stream = self._streams.get(key)
            if stream is not None:
                self.detach(key, stream)
                stream.close(CLOSE_LOGGED_OUT, reason)

    def log_out_account(self, account_id: str, reason: str, before_ms: int | None = None) -> None:
        """Close every stream of the account (its devices were logged out, banned or deleted)."""
        devices = [device for account, device in self._streams if account == account_id]
        self.log_out(account_id, devices, reason, before_ms)

    def close_all(self) -> None:
        for key, stream in list(self._streams.items()):
            stream.close(1001, "relay shutting down")
            self.detach(key, stream)


def new_node() -> str:
    """This process's name on the bus."""
    return uuid.uuid4().hex
