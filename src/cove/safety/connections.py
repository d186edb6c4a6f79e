"""Open-connection counts: how many connections a key (a source address, an account, everyone) holds now.

Unlike a token bucket this is occupancy, not rate: a slot is taken when a connection opens and given back
when it ends, so a client that holds connections open cannot exhaust the relay's sockets or file
descriptors for everyone else.
"""

from __future__ import annotations

from collections.abc import Hashable


class Occupancy:
    """At most ``limit`` open connections per key; keys with none are forgotten, so memory follows load."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open: dict[Hashable, int] = {}

    def acquire(self, key: Hashable) -> bool:
        """Take a slot for ``key``; False (and nothing taken) when it already holds ``limit``."""
        held = self._open.get(key, 0)
        if held >= self.limit:
            return False
        self._open[key] = held + 1
        return True

    def release(self, key: Hashable) -> None:
        held = self._open.get(key, 0)
        if held <= 1:
            self._open.pop(key, None)
        else:
            self._open[key] = held - 1
