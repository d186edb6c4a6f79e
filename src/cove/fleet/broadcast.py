"""Events emitted in one relay process, handled in all of them.

An event a process emits (:mod:`cove.events`) is written to ``fleet_events`` and published on
``<prefix>.events``. Other processes handle it when it arrives on the bus, within milliseconds, or, when
the bus lost it or is down, when they next read the table: every ``fleet_poll_seconds``. A command run
beside the relays (``cove safety ban``, ``cove policy publish``) writes the row alone with :func:`record`.

Each process remembers the events it handled for as long as a read could return them again, so an event
seen on the bus and then in the table is handled once.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

import orjson
from nats.aio.msg import Msg
from sqlalchemy.ext.asyncio import AsyncEngine

from cove.clock import now_ms
from cove.events import Event, Hooks, UnknownEvent, decode
from cove.fleet import storage
from cove.fleet.bus import Bus
from cove.fleet.storage import StoredEvent

log = logging.getLogger("cove.fleet")

# A row committed by a slow transaction can carry a time earlier than a read that missed it: read back this far.
OVERLAP_MS = 10_000
KEEP_MS = 3_600_000  # no process is behind by more than the poll, so an hour of events is plenty
PAGE = 1000


def stored(event: Event, at_ms: int) -> StoredEvent:
    return StoredEvent(uuid.uuid4().hex, event.kind, orjson.dumps(event.payload()).decode(), at_ms)


async def record(engine: AsyncEngine, event: Event) -> None:
    """Tell every running relay, from a command that runs beside them."""
    async with engine.begin() as conn:
        await storage.append(conn, stored(event, now_ms()))


class Broadcast:
    def __init__(self, engine: AsyncEngine, hooks: Hooks, bus: Bus | None, poll_seconds: float) -> None:
        self._engine = engine
        self._hooks = hooks
        self._bus = bus
        self._poll_seconds = poll_seconds
        self._handled: dict[str, int] = {}  # event id -> its time
        self._since = now_ms()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._hooks.forward_to(self.forward)
        if self._bus is not None:
            await self._bus.subscribe(self._bus.subject("events"), self._received)
        self._task = asyncio.create_task(self._poll_forever())

    async def stop(self) -> None:
        self._hooks.forward_to(None)
        if self._task is not None:
            self._task.cancel()

    async def forward(self, event: Event) -> None:
        row = stored(event, now_ms())
        self._handled[row.event_id] = row.at_ms
        try:
            async with self._engine.begin() as conn:
                await storage.append(conn, row)
        except Exception:
            # The bus alone still reaches every connected process; only one that missed it would not know.
            log.exception("could not record %s for the fleet", event.kind)
        if self._bus is not None:
            message = {"id": row.event_id, "kind": row.kind, "payload": row.payload, "at": row.at_ms}
            await self._bus.publish(self._bus.subject("events"), orjson.dumps(message))

    async def _received(self, msg: Msg) -> None:
        try:
            message = orjson.loads(msg.data)
            row = StoredEvent(message["id"], message["kind"], message["payload"], int(message["at"]))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            log.warning("ignored an unreadable fleet event on %s", msg.subject)
            return
        await self._handle(row)

    async def _handle(self, row: StoredEvent) -> None:
        if row.event_id in self._handled:
            return
        self._handled[row.event_id] = row.at_ms
        try:
            event = decode(row.kind, orjson.loads(row.payload))
        except (UnknownEvent, TypeError, orjson.JSONDecodeError) as exc:
            # A newer relay's event during a rolling upgrade: this process has nothing to do for it.
            log.warning("ignored fleet event %s: %s", row.kind, exc)
            return
        await self._hooks.handle(event)

    async def poll(self) -> None:
        """Handle what the table holds that this process has not handled yet."""
        started = now_ms()
        after_id = 0
        while True:
            async with self._engine.connect() as conn:
                page = await storage.since(conn, self._since - OVERLAP_MS, after_id, PAGE)
            for _, row in page:
                await self._handle(row)
            if len(page) < PAGE:
                break
            after_id = page[-1][0]
        self._since = started
        horizon = self._since - 2 * OVERLAP_MS
        self._handled = {k: at for k, at in self._handled.items() if at >= horizon}

    async def _poll_forever(self) -> None:
        purged_at = 0
        while True:
            await asyncio.sleep(self._poll_seconds)
            try:
                await self.poll()
                if now_ms() - purged_at > KEEP_MS / 4:
                    async with self._engine.begin() as conn:
                        await storage.purge(conn, now_ms() - KEEP_MS)
                    purged_at = now_ms()
            except Exception:
                log.exception("reading fleet events failed")
