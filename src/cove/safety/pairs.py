"""What one account is to another, as a relay process remembers it: a bounded cache of ordered pairs.

An entry for ``(owner, peer)`` holds bit flags: :data:`ACCEPTS` (the owner wrote to the peer or accepted their
message request) and :data:`BLOCKS` (the owner blocked the peer). The database is the truth
(cove.safety.defences_storage); this is what lets every send be checked with two dictionary look-ups once warm.

Bounded twice: at most ``max_pairs`` entries (the oldest written goes first), each trusted for ``ttl_seconds``.
The time-to-live bounds how long an entry can outlive a change no event told this process about (see
cove.safety.contacts for which changes are announced and which are not).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

ACCEPTS = 1
BLOCKS = 2


class Pairs:
    def __init__(self, max_pairs: int, ttl_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_pairs = max_pairs
        self.ttl_seconds = ttl_seconds
        self._clock = clock
        self._entries: OrderedDict[tuple[str, str], tuple[int, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def both(self, a: str, b: str) -> tuple[int, int] | None:
        """The flags of ``a`` to ``b`` and of ``b`` to ``a`` (what a send looks up), or ``None`` unless this process
        knows both (read, not evicted, not expired)."""
        there, back = self._entries.get((a, b)), self._entries.get((b, a))
        if there is None or back is None:
            return None
        now = self._clock()
        if there[1] <= now or back[1] <= now:
            return None
        return there[0], back[0]

    def put(self, owner: str, peer: str, flags: int) -> None:
        key = (owner, peer)
        self._entries[key] = (flags, self._clock() + self.ttl_seconds)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_pairs:
            self._entries.popitem(last=False)

    def mark(self, owner: str, peer: str, flag: int) -> None:
        """Add ``flag`` to a pair this process knows (this process wrote it to the database); keeps its expiry."""
        hit = self._entries.get((owner, peer))
        if hit is not None:
            self._entries[(owner, peer)] = (hit[0] | flag, hit[1])

    def forget(self, owner: str, peer: str) -> None:
        self._entries.pop((owner, peer), None)
