"""The relay's connection to NATS: publish, subscribe, and telling its users when messages may have been missed.

Core NATS delivers at most once: a message published while this process is disconnected, or dropped because a
subscriber fell behind, is gone. Nothing Cove sends on the bus is the only copy of anything (the database is),
so the bus only has to say when it may have missed something: :meth:`Bus.on_gap` listeners run when the
connection comes back, when a subscriber overflowed, and every ``poll_seconds`` while it is down, and they
re-read what they care about from the database.

The connection is kept in the background: a relay starts, and serves, with NATS down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable, Callable

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import Error as NatsError
from nats.errors import SlowConsumerError

log = logging.getLogger("cove.fleet")

# A subject token built from a caller's value must be one token: no dots, wildcards or whitespace.
TOKEN = re.compile(r"[A-Za-z0-9_-]{1,64}")

# How many messages one subscription may hold before NATS-py drops (and reports) the rest.
PENDING_MESSAGES = 65_536
PENDING_BYTES = 64 * 1024 * 1024
# Publishes buffered while disconnected; past this the publish fails, which a gap read makes good.
PENDING_PUBLISH_BYTES = 8 * 1024 * 1024

Handler = Callable[[Msg], Awaitable[None]]
GapListener = Callable[[str], None]


def token(value: str) -> str:
    """``value`` as one subject token, or ValueError: it must never become a wildcard or a second token."""
    if not TOKEN.fullmatch(value):
        raise ValueError(f"{value[:70]!r} cannot be a subject token")
    return value


class Bus:
    def __init__(self, url: str, prefix: str, poll_seconds: float) -> None:
        self.prefix = token(prefix)
        self._url = url
        self._poll_seconds = poll_seconds
        self._nc: Client | None = None
        self._gap_listeners: list[GapListener] = []
        self._connected = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._subscriptions: list[tuple[str, Handler]] = []

    def subject(self, *tokens: str) -> str:
        return ".".join((self.prefix, *(token(t) for t in tokens)))

    @property
    def connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    async def ready(self) -> None:
        """Wait until the first connection to NATS is made."""
        await self._connected.wait()

    def on_gap(self, listener: GapListener) -> None:
        """``listener(reason)`` runs whenever messages may have been missed."""
        self._gap_listeners.append(listener)

    async def start(self) -> None:
        self._tasks.append(asyncio.create_task(self._connect_forever()))
        self._tasks.append(asyncio.create_task(self._poll_while_down()))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._nc is not None:
            with contextlib.suppress(Exception):
                await self._nc.close()

    async def subscribe(self, subject: str, handler: Handler) -> None:
        """A subscription for the life of the process, made again after NATS comes back (NATS-py does that)."""
        self._subscriptions.append((subject, handler))
        if self._nc is not None and not self._nc.is_closed:
            await self._subscribe(self._nc, subject, handler)

    async def subscribe_now(self, subject: str, handler: Handler) -> Subscription | None:
        """A subscription that is in place at NATS when this returns, or None when NATS is unreachable."""
        nc = self._nc
        if nc is None or not nc.is_connected:
            return None
        try:
            sub = await self._subscribe(nc, subject, handler)
            await nc.flush(timeout=1)
        except (NatsError, TimeoutError, OSError) as exc:
            log.debug("subscribing to %s failed: %s", subject, exc)
            return None
        return sub

    async def publish(self, subject: str, payload: bytes) -> bool:
        """Hand a message to NATS; False when it could not be (the gap read makes good what it carried)."""
        nc = self._nc
        if nc is None or nc.is_closed:
            return False
        try:
            await nc.publish(subject, payload)
        except (NatsError, OSError) as exc:
            log.debug("publish to %s failed: %s", subject, exc)
            return False
        return True

    @staticmethod
    async def _subscribe(nc: Client, subject: str, handler: Handler) -> Subscription:
        return await nc.subscribe(
            subject, cb=handler, pending_msgs_limit=PENDING_MESSAGES, pending_bytes_limit=PENDING_BYTES
        )

    async def _connect_forever(self) -> None:
        while True:
            try:
                nc = await nats.connect(
                    self._url,
                    name="cove-relay",
                    no_echo=True,  # a process already handled what it published itself
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=1,
                    connect_timeout=2,
                    pending_size=PENDING_PUBLISH_BYTES,
                    disconnected_cb=self._disconnected,
                    reconnected_cb=self._reconnected,
                    error_cb=self._error,
                    allow_reconnect=True,
                )
            except (NatsError, OSError, TimeoutError) as exc:
                log.warning("NATS at %s unreachable (%s); retrying", self._url, exc)
                await asyncio.sleep(1)
                continue
            for subject, handler in self._subscriptions:
                await self._subscribe(nc, subject, handler)
            self._nc = nc
            self._connected.set()
            log.info("connected to NATS at %s", self._url)
            self._gap("connected")
            return

    async def _poll_while_down(self) -> None:
        while True:
            await asyncio.sleep(self._poll_seconds)
            if not self.connected:
                self._gap("disconnected")

    async def _disconnected(self) -> None:
        log.warning("lost NATS; delivery across processes falls back to reading the database")

    async def _reconnected(self) -> None:
        log.info("NATS is back")
        self._gap("reconnected")

    async def _error(self, exc: Exception) -> None:
        if isinstance(exc, SlowConsumerError):
            self._gap("slow consumer")
        else:
            log.debug("NATS error: %s", exc)

    def _gap(self, reason: str) -> None:
        for listener in self._gap_listeners:
            try:
                listener(reason)
            except Exception:
                log.exception("a bus gap listener failed")
