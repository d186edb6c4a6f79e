"""Who is connected where: one live stream per device, and hand-off of freshly queued envelopes to it.

A stream is fed only after the envelope is committed, so a push never outruns durability. The hub is
in-process; several relay processes would put a pub/sub bus behind :meth:`Hub.deliver`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from cove.messaging.envelope import Envelope

DeviceKey = tuple[str, int]

# Close codes, 4000 + the HTTP status they resemble; the reason starts with a machine-readable word.
CLOSE_CONNECTED_ELSEWHERE = 4409
CLOSE_LOGGED_OUT = 4401
CLOSE_BAD_FRAMES = 4400  # too many frames the relay could not read
CLOSE_NOT_READING = 4408  # the client did not read what was sent to it
CLOSE_TOO_MANY_SOCKETS = 4429  # the account has as many open sockets as it may


class Stream(Protocol):
    def offer(self, item: Envelope | dict[str, Any]) -> None:
        """Never blocks: a stream that cannot take more (its client is not reading) drops it and closes itself.
        The hub's envelopes are stored, so that device gets them from its queue when it reconnects."""

    def close(self, code: int, reason: str) -> None: ...


class Hub:
    def __init__(self) -> None:
        self._streams: dict[DeviceKey, Stream] = {}

    def attach(self, key: DeviceKey, stream: Stream) -> None:
        previous = self._streams.get(key)
        self._streams[key] = stream
        if previous is not None:
            previous.close(CLOSE_CONNECTED_ELSEWHERE, "connected elsewhere")

    def detach(self, key: DeviceKey, stream: Stream) -> None:
        if self._streams.get(key) is stream:
            del self._streams[key]

    def connected(self) -> list[DeviceKey]:
        return list(self._streams)

    def deliver(self, batch: Iterable[Envelope]) -> None:
        for envelope in batch:
            stream = self._streams.get((envelope.account_id, envelope.device_id))
            if stream is not None:
                stream.offer(envelope)

    def push(self, key: DeviceKey, frame: dict[str, Any]) -> None:
        stream = self._streams.get(key)
        if stream is not None:
            stream.offer(frame)

    def log_out(
        self,
        account_id: str,
        device_ids: Iterable[int],
        reason: str = "logged out: the number was registered on another phone",
    ) -> None:
        for device_id in device_ids:
            stream = self._streams.pop((account_id, device_id), None)
            if stream is not None:
                stream.close(CLOSE_LOGGED_OUT, reason)

    def log_out_account(self, account_id: str, reason: str) -> None:
        """Close every stream of the account (its devices were logged out, banned or deleted)."""
        self.log_out(account_id, [device for account, device in self._streams if account == account_id], reason)

    def close_all(self) -> None:
        for stream in list(self._streams.values()):
            stream.close(1001, "relay shutting down")
        self._streams.clear()
