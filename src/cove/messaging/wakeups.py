"""Wake-ups between relay processes: one NATS subject per connected device, ``<prefix>.dev.<account>.<device>``.

The process holding a device's socket subscribes to its subject while the socket is open. After an envelope
for the device is committed, a process without the socket publishes the envelope's frame there; the holder
offers it to the socket. The frame is a copy: the envelope stays queued until the device acks it, so a lost
wake-up only delays it until the holder re-reads the device's queue (:meth:`cove.messaging.hub.Hub.rescan`).

A device that connects publishes a claim on its subject: a process holding an older socket of that device
closes it (4409, connected elsewhere), as one process does when the device connects twice to it. A process
that gets a claim older than its own answers with its own, so the older socket closes whichever process
heard the other first (hosts' clocks are assumed to agree within the time a device takes to reconnect).

Interest lives in NATS, so a wake-up goes only to the process holding the device (or nowhere, when the device
is offline): one bus message per envelope, whatever the number of processes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from cove.fleet.bus import Bus
from cove.messaging.envelope import Envelope

log = logging.getLogger("cove.fleet")

DeviceKey = tuple[str, int]


@dataclass(frozen=True, order=True)
class Claim:
    """When and where a device connected: the later claim wins."""

    at_ms: int
    node: str


class Wakeups:
    def __init__(self, bus: Bus, node: str) -> None:
        self._bus = bus
        self.node = node
        self._unsubscribing: set[asyncio.Task[None]] = set()

    def subject(self, key: DeviceKey) -> str | None:
        try:
            return self._bus.subject("dev", key[0], str(key[1]))
        except ValueError:
            log.warning("no wake-up subject for a device with an unexpected id")
            return None

    async def claim(
        self, key: DeviceKey, claim: Claim, on_wake: Callable[[dict[str, Any]], None], on_claim: Callable[[Claim], None]
    ) -> Subscription | None:
        """Subscribe to the device's wake-ups, then announce the claim. When this returns, every envelope
        committed from now on reaches ``on_wake`` (or a later queue re-read, if the bus drops it)."""
        subject = self.subject(key)
        if subject is None:
            return None

        async def received(msg: Msg) -> None:
            try:
                message = orjson.loads(msg.data)
            except orjson.JSONDecodeError:
                return
            if not isinstance(message, dict):
                return
            if message.get("type") == "envelope":
                on_wake(message)
            elif message.get("type") == "claim":
                try:
                    on_claim(Claim(int(message["at"]), str(message["node"])))
                except (KeyError, TypeError, ValueError):
                    return

        subscription = await self._bus.subscribe_now(subject, received)
        await self.announce(key, claim)
        return subscription

    async def announce(self, key: DeviceKey, claim: Claim) -> None:
        subject = self.subject(key)
        if subject is not None:
            await self._bus.publish(subject, orjson.dumps({"type": "claim", "at": claim.at_ms, "node": claim.node}))

    def release(self, subscription: Subscription) -> None:
        task = asyncio.ensure_future(self._unsubscribe(subscription))
        self._unsubscribing.add(task)
        task.add_done_callback(self._unsubscribing.discard)

    @staticmethod
    async def _unsubscribe(subscription: Subscription) -> None:
        try:
            await subscription.unsubscribe()
        except Exception as exc:  # the connection is gone: so is the interest
            log.debug("unsubscribe failed: %s", exc)

    async def wake(self, envelopes: list[Envelope]) -> None:
        for envelope in envelopes:
            subject = self.subject((envelope.account_id, envelope.device_id))
            if subject is not None:
                await self._bus.publish(subject, orjson.dumps(envelope.wire()))
